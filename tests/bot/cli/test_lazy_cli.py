"""The lazy `clinicbot` group (issue 23): it lists every command with the help the commands themselves give,
imports a command's modules only when that command is used, and so starts without the server, the engine or
the integrations for `--version`, `--help` and `db`."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import bot.cli as cli_pkg
from bot.cli import COMMANDS, main
from tests.conftest import TEST_KEY
from tests.servers import clean_env


def _eager() -> click.Group:
    """What `main` was before it became lazy: one group with every command module imported and merged."""
    group = click.Group(name=main.name, callback=main.callback, params=main.params, help=main.help,
                        context_settings=main.context_settings)
    for _, targets in COMMANDS.values():
        for target in targets:
            cli_pkg._merge(group, cli_pkg.load(target))
    return group


def _help(group: click.Group, args: list[str], width: int) -> str:
    result = CliRunner().invoke(group, [*args, "--help"], prog_name="clinicbot", terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in sorted(group.commands.items()):
        out.append((*prefix, name))
        if isinstance(command, click.Group):
            out.extend(_paths(command, (*prefix, name)))
    return out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_listing_is_the_eager_groups(width: int) -> None:
    """`clinicbot --help` from the table reads exactly as the listing of the imported commands."""
    eager = _eager()
    assert _help(main, [], width) == _help(eager, [], width)
    assert main.list_commands(click.Context(main)) == eager.list_commands(click.Context(eager))


def test_every_command_helps_as_before() -> None:
    """`clinicbot <cmd> [<sub>...] --help` for every command and subcommand, through the lazy group."""
    eager = _eager()
    paths = _paths(eager)
    assert len(paths) > 50
    for path in paths:
        assert _help(main, list(path), 80) == _help(eager, list(path), 80), path


def test_no_command_module_is_left_out() -> None:
    """Every click command a module in bot/cli defines at top level is in `COMMANDS`, under its own name:
    a new command module, or a new group in an old one, fails here until it is listed."""
    listed = {id(cli_pkg.load(target)): name for name, (_, targets) in COMMANDS.items() for target in targets}
    commands: dict[int, tuple[str, click.Command]] = {}
    for info in pkgutil.iter_modules(cli_pkg.__path__):
        if info.name == "__main__":
            continue  # `python -m bot.cli`: it runs the command
        module = importlib.import_module(f"bot.cli.{info.name}")
        for attribute, value in vars(module).items():
            if isinstance(value, click.Command):
                commands[id(value)] = (f"bot.cli.{info.name}:{attribute}", value)
    below = {id(sub) for _, command in commands.values() if isinstance(command, click.Group)
             for sub in command.commands.values()}
    top = {key: where for key, (where, _) in commands.items() if key not in below and commands[key][1] is not main}
    missing = sorted(where for key, where in top.items() if key not in listed)
    assert not missing, f"add these to bot.cli.COMMANDS: {missing}"
    for key, name in listed.items():
        assert commands[key][1].name == name


PROBE = """
import json, sys
from bot.cli import main
try:
    main(sys.argv[1:], prog_name="clinicbot")
except SystemExit as exc:
    code = exc.code
mods = sorted(sys.modules)
print(json.dumps({"code": code, "modules": mods}))
"""


def _modules(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    env = clean_env({"CLINICBOT_DATABASE_URL": f"sqlite+aiosqlite:///{cwd / 'db.sqlite3'}",
                     "CLINICBOT_SECRET_KEY": TEST_KEY})
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"])


def _ours(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if m.split(".")[0] in packages}


def test_version_and_help_import_no_command_and_no_core(tmp_path: Path) -> None:
    for args in (["--version"], ["--help"], []):
        code, modules = _modules(args, tmp_path)
        assert code in (0, None, 2), args
        assert _ours(modules, "bot", "sync", "adapters") <= {"bot", "bot.cli", "bot.cli.output", "bot.logs"}, args
        assert not _ours(modules, "sqlalchemy", "pydantic", "aiohttp", "botbuilder", "slack_bolt", "slack_sdk"), args


def test_db_upgrade_imports_no_integration_no_engine_and_no_server(tmp_path: Path) -> None:
    code, modules = _modules(["db", "upgrade"], tmp_path)
    assert code in (0, None)
    assert not _ours(modules, "adapters")
    assert not {m for m in modules if m.startswith(("sync.engine", "sync.integrations", "bot.cli.sync_commands"))}
    assert not _ours(modules, "aiohttp", "botbuilder", "slack_bolt", "slack_sdk", "msal", "apscheduler", "httpx")
    # and it did its work: the schema is current
    code, _ = _modules(["db", "current"], tmp_path)
    assert code in (0, None)


def test_a_command_imports_what_it_needs(tmp_path: Path) -> None:
    """The first use of a merged group brings every module that adds to it (practice: people and mirrors)."""
    code, modules = _modules(["practice", "--help"], tmp_path)
    assert code in (0, None)
    assert {"bot.cli.people", "bot.cli.mirror_commands"} <= modules
    assert "bot.cli.sync_commands" not in modules


def test_doctor_for_one_integration_loads_only_that_one(tmp_path: Path) -> None:
    assert _modules(["db", "upgrade"], tmp_path)[0] in (0, None)
    code, modules = _modules(["doctor", "--integration", "ics"], tmp_path)
    assert code == 0
    assert {m.split(".")[1] for m in _ours(modules, "adapters") if "." in m} == {"ics", "kit"}
    code, _ = _modules(["doctor", "--integration", "no-such-thing"], tmp_path)
    assert code == 2


def test_doctor_for_one_integration_reports_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.bot.cli.kit import cli_env

    cli_env(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["doctor", "--integration", "ics"])
    assert result.exit_code == 0, result.output
    assert "✓ configuration is valid" in result.output
    assert "ICS feed needs no app registration" in result.output
    assert "CalDAV" not in result.output
    result = CliRunner().invoke(main, ["doctor", "--integration", "nope"])
    assert result.exit_code == 2
    assert "no integration is named 'nope'; the names are: " in result.output


def test_importing_a_command_module_loads_no_integration(tmp_path: Path) -> None:
    """`connection add` and `connection set` make their integration flags when used, so `connection --help`
    (and importing sync_commands for `sync`, `calendar`, `appointments`) loads no adapter."""
    for args in (["connection", "--help"], ["sync", "--help"], ["calendar", "--help"]):
        code, modules = _modules(args, tmp_path)
        assert code in (0, None)
        assert not _ours(modules, "adapters"), args
    code, modules = _modules(["connection", "add", "--help"], tmp_path)
    assert code in (0, None)
    assert "adapters.graph" in modules  # its flags are every integration's options


def test_the_integration_flags_keep_their_place() -> None:
    """The flags come where they were declared: after the command's own options, before --json."""
    from bot.cli.settings_commands import connection_set
    from bot.cli.sync_commands import connection_add

    for command, last_own in ((connection_add, "code"), (connection_set, "days_ahead")):
        names = [p.name for p in command.params]
        assert names[-1] == "as_json"
        assert names.index(last_own) < len(names) - 2, names
        assert "send_updates" in names[names.index(last_own) + 1:-1], names

"""Routes, not adapters: `connect <word>` in chat and `clinicbot connection add <word>` answer every name and
alias of a route with its working steps, never "unknown provider"; any other name gets what is supported."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from adapters.graph.settings import GraphSettings
from adapters.routes import ROUTES
from bot.commands import ParseError, handle, parse
from bot.commands.grammar import Connect
from bot.views import ConnectInfo
from sync.contract import Refused
from sync.contract.integration import ConnectSpec, Integration
from sync.integrations import registry
from sync.runtime.core import Core
from tests.bot.clinic import make_actor, seed
from tests.conftest import TEST_KEY

#: (route name, word typed) for every word of every route.
WORDS = [(r.name, w) for r in ROUTES.values() for w in r.words]
#: The platforms the issue asks routes for, by the words a clinic types.
ASKED = {"jane": "jane", "janeapp": "jane", "simplepractice": "simplepractice", "doodle": "doodle",
         "outlook.com": "outlookcom", "office365": "office365", "o365": "office365", "bookafy": "bookafy"}


def test_every_route_is_registered_and_goes_through_integrations_that_work() -> None:
    for name, route in ROUTES.items():
        assert registry.get(name) is route and route.is_route
        for via in route.connect.via:
            target = registry.get(via)
            assert not target.is_route and (target.calendars is not None or target.booking_source is not None)
        # The steps name how to reach each integration it goes through (chat word or CLI name).
        text = " ".join(route.connect.steps)
        for via in route.connect.via:
            words = registry.get(via).words
            assert any(f"connect {w}`" in text or f"connection add {w} " in text for w in words), (name, via)


def test_no_word_names_two_integrations() -> None:
    seen: dict[str, str] = {}
    for integration in registry.integrations():
        for word in integration.words:
            assert seen.setdefault(word, integration.name) == integration.name, word


@pytest.mark.parametrize(("word", "name"), sorted(ASKED.items()))
def test_the_asked_platforms_are_recognised(word: str, name: str) -> None:
    assert parse(f"connect {word}") == Connect(name, word)


def test_a_route_is_only_a_route() -> None:
    with pytest.raises(ValueError, match="route"):
        ConnectSpec(kinds=("route",), steps=("x",))
    with pytest.raises(ValueError, match="route"):
        ConnectSpec(kinds=("route", "feed_url"), via=("ics",), steps=("x",))
    with pytest.raises(ValueError, match="via"):
        ConnectSpec(kinds=("feed_url",), via=("ics",), steps=("x",))
    with pytest.raises(ValueError, match="capabilities"):
        Integration("x", "X", ConnectSpec(kinds=("route",), via=("ics",), steps=("x",)), publishing=object())


@pytest.mark.parametrize(("name", "word"), WORDS)
async def test_chat_answers_each_route_word_with_its_steps(core: Core, name: str, word: str) -> None:
    await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    view = await handle(core, admin, parse(f"connect {word.upper()}"))
    route = ROUTES[name]
    assert isinstance(view, ConnectInfo) and view.title == f"Connect {route.title}"
    assert view.steps[: len(route.connect.steps)] == route.connect.steps
    assert not any("not loaded" in s or "unknown" in s for s in view.steps)
    if route.connect.via == ("graph",):  # Graph is not set up on this test server: its setup is named
        assert view.url is None and any("CLINICBOT_GRAPH_CLIENT_ID" in s for s in view.steps)
    else:
        assert view.url is None and view.steps == route.connect.steps


@pytest.mark.parametrize("word", ["office365", "outlook.com", "hotmail"])
async def test_a_route_through_one_sign_in_gives_its_link(core: Core, word: str) -> None:
    await seed(core)
    core.settings = core.settings.with_sections(
        GraphSettings(_env_file=None, graph_client_id="gid", graph_client_secret="gsecret")  # type: ignore[call-arg]
    )
    asked: list[str] = []

    async def sign_in(core_: Core, provider: str, *ids: object) -> str:  # the embedders' sign-in hook
        asked.append(provider)
        return f"https://clinic.example.org/sign-in/{provider}"

    core.services.connect_url = sign_in
    admin = await make_actor(core, "UA", ("admin",))
    view = await handle(core, admin, parse(f"connect {word}"))
    route = registry.resolve(word)
    assert route is not None and route.is_route
    assert isinstance(view, ConnectInfo) and view.steps == route.connect.steps
    assert view.url == "https://clinic.example.org/sign-in/graph" and asked == ["graph"]


def test_any_other_name_gets_what_is_supported() -> None:
    with pytest.raises(ParseError) as err:
        parse("connect zoomcal")
    for word in ("jane", "simplepractice", "doodle", "office365", "outlook.com", "google", "acuity"):
        assert word in str(err.value)
    with pytest.raises(Refused) as refused:
        registry.get("zoomcal")
    assert "Jane App (jane" in str(refused.value) and "unknown provider" not in str(refused.value)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    import bot.cli as cli_pkg
    from bot.cli import sync_commands

    monkeypatch.setenv("CLINICBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("CLINICBOT_SECRET_KEY", TEST_KEY)
    monkeypatch.chdir(tmp_path)
    cli_pkg._merge(cli_pkg.main, sync_commands.connection)
    return cli_pkg.main


@pytest.mark.parametrize(("name", "word"), WORDS)
def test_cli_connection_add_answers_each_route_word_with_its_steps(cli: click.Group, name: str, word: str) -> None:
    result = CliRunner().invoke(cli, ["connection", "add", word], catch_exceptions=False)
    route = ROUTES[name]
    assert result.exit_code == 2, result.output  # nothing was connected: a script can tell
    assert result.output.startswith(f"{route.title} connects through")
    for number, step in enumerate(route.connect.steps, 1):
        assert f"{number}. {step}" in result.output


def test_cli_connection_add_of_an_unknown_name_lists_what_is_supported(cli: click.Group) -> None:
    result = CliRunner().invoke(cli, ["connection", "add", "zoomcal"], catch_exceptions=False)
    assert result.exit_code == 1
    for word in ("Jane App (jane", "SimplePractice", "Doodle", "Office 365", "Outlook.com", "ICS feed"):
        assert word in result.output


async def test_sync_off_by_a_route_word_switches_the_connection_it_goes_through(core: Core) -> None:
    from sqlalchemy import select

    from bot.views import Notice
    from sync.store.model import Connection

    c = await seed(core)
    admin = await make_actor(core, "UA", ("admin",))
    async with core.store.session() as s:
        s.add(Connection(practice_id=c.practice_id, provider="graph", account="lee@x.org", config={},
                         status="active"))
    off = await handle(core, admin, parse("sync off office365"))
    assert isinstance(off, Notice) and "off" in off.text
    async with core.store.session() as s:
        assert (await s.scalar(select(Connection.sync_enabled))) is False

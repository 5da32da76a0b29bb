"""Changes made from the CLI that matter to compliance are in the audit log, named as the CLI user."""

from __future__ import annotations

import json

import click

from tests.bot.cli.test_sync_commands import cli, run  # noqa: F401  (the fixture)


def test_practitioner_map_is_audited_with_before_and_after(cli: click.Group) -> None:  # noqa: F811
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee")
    run(cli, "practitioner", "map", "dr-lee", "--upn", "dr.lee@clinic.example")
    run(cli, "practitioner", "map", "dr-lee", "--clear")
    entries = [json.loads(line) for line in run(cli, "audit", "export").splitlines() if line.strip()]
    mapped = [e for e in entries if e["action"] == "staff.identities"]
    assert [(e["before"], e["after"]) for e in mapped] == [
        (None, {"upn": "dr.lee@clinic.example"}), ({"upn": "dr.lee@clinic.example"}, None)]
    assert all(e["actor"].startswith("cli:") for e in mapped)
    assert run(cli, "audit", "verify").strip()

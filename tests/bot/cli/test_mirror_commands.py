"""`clinicbot practice mirror-edits`: shows and sets what a hand edit of a calendar copy does, audited."""

from __future__ import annotations

import json

import click

from tests.bot.cli.kit import cli, run

__all__ = ["cli"]  # the fixture, used by name


def test_show_set_and_audit(cli: click.Group) -> None:
    run(cli, "practice", "create", "North Clinic", "--tz", "UTC")
    shown = json.loads(run(cli, "practice", "mirror-edits", "--practice", "North Clinic", "--json"))
    assert (shown["mirror_edits"], shown["changed"]) == ("card", False)
    out = run(cli, "practice", "mirror-edits", "follow", "--practice", "North Clinic")
    assert "Calendar edits for North Clinic is now 'follow'" in out and "always get the card" in out
    again = json.loads(run(cli, "practice", "mirror-edits", "follow", "--practice", "North Clinic", "--json"))
    assert (again["before"], again["changed"]) == ("follow", False)
    refused = run(cli, "practice", "mirror-edits", "always", code=2)
    assert "'always' is not one of 'card', 'follow', 'keep'" in refused
    missing = run(cli, "practice", "mirror-edits", "keep", "--practice", "Nowhere", code=1)
    assert "no practice named 'Nowhere'" in missing
    entries = [json.loads(line) for line in run(cli, "audit", "export", "--format", "jsonl").splitlines() if line]
    changes = [e for e in entries if e["action"] == "practice.mirror_edits"]
    assert [(c["before"], c["after"]) for c in changes] == [({"mirror_edits": "card"}, {"mirror_edits": "follow"})]
    assert changes[0]["actor"].startswith("cli:")

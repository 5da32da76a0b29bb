"""Settings from the CLI: opt-out and back, a calendar's show-as-free and projection (copies
rewritten), a connection's window (a booking it newly covers arrives); each audited as the CLI user."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click
from click.testing import CliRunner

from sync.contract.items import EventData
from tests.bot.cli.test_sync_commands import cli, run  # noqa: F401  (the fixture)
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter


def _booking(uid: str, start: datetime) -> EventData:
    return EventData(uid=uid, summary="Physio", start=start, end=start + timedelta(minutes=30),
                     client_name="Jane Roe", service="Physio")


def test_opt_out_show_as_free_and_window_from_the_cli(cli: click.Group) -> None:  # noqa: F811
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    memory_adapter.SERVERS.clear()
    for name in ("bookings", "outlook"):
        memory_adapter.SERVERS[f"memory://x/{name}"] = MemoryServer()
    bookings, outlook = memory_adapter.SERVERS["memory://x/bookings"], memory_adapter.SERVERS["memory://x/outlook"]
    bookings.put(_booking("b1", soon))
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "practitioner", "add", "Dr Lee")

    out = json.loads(run(cli, "practitioner", "opt-out", "dr-lee", "--json"))
    assert (out["opted_out"], out["changed"]) == (True, True)
    assert json.loads(run(cli, "practitioner", "list", "--json"))[0]["opted_out"] is True
    assert json.loads(run(cli, "practitioner", "opt-out", "dr-lee", "--json"))["changed"] is False
    assert json.loads(run(cli, "practitioner", "opt-in", "Dr Lee", "--json"))["opted_out"] is False
    missing = CliRunner().invoke(cli, ["practitioner", "opt-out", "dr-nobody"])
    assert missing.exit_code == 1 and "no practitioner 'dr-nobody'" in missing.output

    source = json.loads(run(cli, "connection", "add", "caldav", "--url", "memory://x/bookings", "--practitioner",
                            "dr-lee", "--json"))
    run(cli, "connection", "add", "caldav", "--url", "memory://x/outlook", "--practitioner", "dr-lee")
    cals = json.loads(run(cli, "calendar", "list", "--json"))
    run(cli, "calendar", "set", str(cals[0]["id"]), "--role", "source")
    run(cli, "calendar", "set", str(cals[1]["id"]), "--role", "mirror")
    run(cli, "sync", "run")
    [copy] = outlook.items.values()
    assert copy.event.summary == "Physio (J.R.)" and not copy.event.transparent

    run(cli, "calendar", "set", str(cals[1]["id"]), "--show-as-free", "on", "--projection", "busy")
    run(cli, "sync", "run")  # performs the queued rewrites
    [copy] = outlook.items.values()
    assert copy.event.summary == "Busy" and copy.event.transparent

    far = soon + timedelta(days=300)
    bookings.put(_booking("far", far))
    run(cli, "sync", "run")
    assert len(outlook.items) == 1  # 300 days ahead: outside the default window of 180
    conn = str(source["connection"])
    window = json.loads(run(cli, "connection", "set", conn, "--days-ahead", "400", "--json"))
    assert (window["days_back"], window["days_ahead"], window["changed"]) == (30, 400, True)
    run(cli, "sync", "run")
    assert sorted(i.event.start for i in outlook.items.values()) == [soon, far]
    bad = CliRunner().invoke(cli, ["connection", "set", conn, "--days-back", "-1"])
    assert bad.exit_code == 1 and "days back must be 0 to 3650" in bad.output
    not_a_feed = CliRunner().invoke(cli, ["connection", "set", conn, "--summary-pattern", "title"])
    assert not_a_feed.exit_code == 1 and "has no option 'summary-pattern'" in not_a_feed.output
    nothing = CliRunner().invoke(cli, ["connection", "set", conn])
    assert nothing.exit_code == 1 and "--days-back" in nothing.output

    entries = [json.loads(line) for line in run(cli, "audit", "export").splitlines() if line.strip()]
    actions = [(e["action"], e["actor"].split(":")[0]) for e in entries]
    for action in ("practitioner.opt_out", "practitioner.opt_in", "calendar.settings", "connection.window"):
        assert (action, "cli") in actions, action
    assert [a for a, _ in actions].count("practitioner.opt_out") == 1  # the repeat wrote nothing

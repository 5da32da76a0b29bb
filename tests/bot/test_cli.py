"""The admin CLI as an operator uses it: tables for people, --json for machines, clear errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.servers import run_cli


def test_practice_and_practitioner_commands(tmp_path: Path) -> None:
    assert run_cli(["db", "upgrade"], tmp_path).returncode == 0
    listed = json.loads(run_cli(["practice", "list", "--json"], tmp_path).stdout)
    assert [p["name"] for p in listed] == ["default"]
    made = run_cli(["practice", "create", "Lee Clinic", "--tz", "Europe/London", "--json"], tmp_path)
    assert made.returncode == 0 and json.loads(made.stdout)["timezone"] == "Europe/London"
    dup = run_cli(["practice", "create", "Lee Clinic", "--tz", "Europe/London"], tmp_path)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    bad_tz = run_cli(["practice", "create", "X", "--tz", "Mars/Olympus"], tmp_path)
    assert bad_tz.returncode == 1 and "unknown time zone" in bad_tz.stderr
    added = run_cli(["practitioner", "add", "Dr Ann Lee", "--email", "ann@example.org", "--json"], tmp_path)
    assert json.loads(added.stdout)["handle"] == "dr-lee"
    table = run_cli(["practitioner", "list"], tmp_path).stdout
    assert "Dr Ann Lee" in table and "dr-lee" in table
    bad_email = run_cli(["practitioner", "add", "Bob", "--email", "not-an-email"], tmp_path)
    assert bad_email.returncode == 1 and "not an email" in bad_email.stderr


def test_audit_verify_names_the_edited_row(tmp_path: Path) -> None:
    run_cli(["db", "upgrade"], tmp_path)
    for name in ("A", "B", "C"):
        assert run_cli(["practice", "create", name, "--tz", "UTC"], tmp_path).returncode == 0
    ok = run_cli(["audit", "verify"], tmp_path)
    assert ok.returncode == 0 and "3 entries" in ok.stdout
    with sqlite3.connect(tmp_path / "clinicbot.sqlite3") as db:
        db.execute("UPDATE audit_entry SET action = 'practice.delete' WHERE seq = 2")
    broken = run_cli(["audit", "verify"], tmp_path)
    assert broken.returncode == 1
    assert "seq 2" in broken.stderr and "edited" in broken.stderr
    out = tmp_path / "audit.csv"
    exported = run_cli(["audit", "export", "--since", "2000-01-01", "--format", "csv", "-o", str(out)], tmp_path)
    assert exported.returncode == 0 and len(out.read_text().splitlines()) == 4
    bad = run_cli(["audit", "export", "--since", "yesterday-ish"], tmp_path)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_audit_verify_catches_a_cut_tail_and_a_replayed_head_with_exported_checkpoints(tmp_path: Path) -> None:
    run_cli(["db", "upgrade"], tmp_path)
    assert run_cli(["practice", "create", "A", "--tz", "UTC"], tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "clinicbot.sqlite3") as db:
        old_head = db.execute("SELECT seq, hash, mac FROM audit_head").fetchone()
    assert run_cli(["practice", "create", "B", "--tz", "UTC"], tmp_path).returncode == 0
    marks = tmp_path / "checkpoints.jsonl"
    made = run_cli(["audit", "checkpoint"], tmp_path)
    assert made.returncode == 0
    marks.write_text(made.stdout)
    ok = run_cli(["audit", "verify", "--checkpoints", str(marks)], tmp_path)
    assert ok.returncode == 0 and "2 entries" in ok.stdout and "1 checkpoints matched" in ok.stdout
    with sqlite3.connect(tmp_path / "clinicbot.sqlite3") as db:
        db.execute("DELETE FROM audit_entry WHERE seq = 2")
    cut = run_cli(["audit", "verify"], tmp_path)
    assert cut.returncode == 1 and "truncated" in cut.stderr
    with sqlite3.connect(tmp_path / "clinicbot.sqlite3") as db:
        db.execute("UPDATE audit_head SET seq = ?, hash = ?, mac = ?", old_head)
    assert run_cli(["audit", "verify"], tmp_path).returncode == 0  # the database alone cannot tell
    replayed = run_cli(["audit", "verify", "--checkpoints", str(marks)], tmp_path)
    assert replayed.returncode == 1 and "seq 2" in replayed.stderr and "truncated" in replayed.stderr


def test_doctor_reports_each_check(tmp_path: Path) -> None:
    result = run_cli(["doctor"], tmp_path)
    lines = result.stdout.splitlines()
    assert any(ln.startswith("✓ database reachable") for ln in lines)
    assert any(ln.startswith("✗ schema") and "clinicbot db upgrade" in ln for ln in lines)
    assert any("the database has no clinicbot tables yet" in ln for ln in lines), lines
    assert "nothing" not in result.stdout
    assert result.returncode == 1
    run_cli(["db", "upgrade"], tmp_path)
    healthy = run_cli(["doctor"], tmp_path)
    assert healthy.returncode == 0, healthy.stdout
    assert "✓ schema is current" in healthy.stdout
    assert "Teams: authentication OFF" in healthy.stdout


def test_wrong_key_stops_commands_clearly(tmp_path: Path) -> None:
    run_cli(["db", "upgrade"], tmp_path)
    run_cli(["practitioner", "add", "Dr Ann Lee"], tmp_path)
    (tmp_path / "clinicbot.key").unlink()
    (tmp_path / "clinicbot.key").write_text("A" * 43 + "=\n")
    with sqlite3.connect(tmp_path / "clinicbot.sqlite3") as db:
        db.execute(
            "INSERT INTO connection (practice_id, provider, account, config, credentials, status, "
            "window_days_back, window_days_ahead, sync_enabled, created_at) VALUES "
            "(1, 'ics', 'x', '{}', 'v1:deadbeef:AAAA', 'active', 30, 180, 1, '2026-01-01')"
        )
    result = run_cli(["doctor"], tmp_path)
    assert "✗ credentials do not decrypt" in result.stdout
    assert "deadbeef" in result.stdout


def test_an_empty_database_is_named_in_plain_words(tmp_path: Path) -> None:
    started = run_cli(["appointments", "list"], tmp_path, {"CLINICBOT_AUTO_MIGRATE": "false"})
    assert started.returncode == 2
    assert "the database has no clinicbot tables yet" in started.stderr and "clinicbot db upgrade" in started.stderr
    assert "at nothing" not in started.stderr


def test_doctor_fails_when_teams_is_open_on_a_reachable_address(tmp_path: Path) -> None:
    run_cli(["db", "upgrade"], tmp_path)
    exposed = run_cli(["doctor"], tmp_path, {"CLINICBOT_HOST": "0.0.0.0"})  # noqa: S104  (checked, not bound)
    assert exposed.returncode == 1, exposed.stdout
    assert any(ln.startswith("✗ Teams: authentication OFF") for ln in exposed.stdout.splitlines())
    local = run_cli(["doctor"], tmp_path)
    assert local.returncode == 0 and "- Teams: authentication OFF" in local.stdout


def test_a_role_is_granted_from_the_cli_to_a_person_clinicbot_has_seen(tmp_path: Path) -> None:
    import asyncio

    from bot.commands.identity import resolve_actor
    from sync.boot import open_core
    from sync.runtime.settings import Settings

    assert run_cli(["db", "upgrade"], tmp_path).returncode == 0

    async def seen() -> None:  # two people have talked to the bot in Teams
        core = open_core(Settings(_env_file=None, CLINICBOT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'clinicbot.sqlite3'}",
                                  CLINICBOT_SECRET_KEY_FILE=tmp_path / "clinicbot.key"))  # type: ignore[call-arg]
        try:
            await resolve_actor(core, "teams", "tenant-1", "29:one", "Ann Admin")
            await resolve_actor(core, "teams", "tenant-1", "29:two", "Alex Wilber")
        finally:
            await core.close()

    asyncio.run(seen())
    granted = run_cli(["role", "grant", "staff", "Alex Wilber"], tmp_path)
    assert granted.returncode == 0 and "Alex Wilber now has the staff role" in granted.stdout, granted.stderr
    again = run_cli(["role", "grant", "staff", "alex wilber"], tmp_path)
    assert again.returncode == 0 and "already has" in again.stdout
    nobody = run_cli(["role", "grant", "staff", "Nobody Here"], tmp_path)
    assert nobody.returncode == 1 and "nobody" in nobody.stderr
    listed = run_cli(["role", "list", "--json"], tmp_path)
    roles = {(r["person"], r["role"]) for r in json.loads(listed.stdout)}
    assert ("Alex Wilber", "staff") in roles and ("Ann Admin", "admin") in roles
    revoked = run_cli(["role", "revoke", "staff", "Alex Wilber"], tmp_path)
    assert revoked.returncode == 0 and "no longer has" in revoked.stdout
    last = run_cli(["role", "revoke", "admin", "Ann Admin"], tmp_path)
    assert last.returncode == 1 and "last admin" in last.stderr


def test_connection_add_with_a_malformed_url_prints_a_refusal(tmp_path: Path) -> None:
    run_cli(["db", "upgrade"], tmp_path)
    for url in ("http://0177.0.0.1/", "http://①②⑦.0.0.1/", "http://[::1"):
        for provider in ("ics", "caldav"):
            result = run_cli(["connection", "add", provider, "--url", url], tmp_path)
            assert result.returncode == 1, (provider, url, result.stderr)
            assert "Traceback" not in result.stderr
            assert "not a valid URL" in result.stderr, result.stderr
    listed = run_cli(["connection", "list", "--json"], tmp_path)
    assert json.loads(listed.stdout) == []

"""`clinicbot audit verify|checkpoint|export`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from bot.cli import with_core
from bot.cli.output import fail
from sync.runtime.core import Core
from sync.store import audit as audit_log


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command()
@click.option("--checkpoints", "checkpoints", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Also check the signed checkpoints exported to this file (CLINICBOT_AUDIT_CHECKPOINT_FILE).")
@with_core
async def verify(core: Core, checkpoints: str | None) -> None:
    """Check the keyed chain and its signed head; exit 1 naming the first bad row."""
    lines = _read_lines(checkpoints) if checkpoints else []
    async with core.store.session() as session:
        count, problem = await audit_log.verify(session)
        if problem is None and lines:
            problem = await audit_log.verify_checkpoints(session, lines)
    if problem is not None:
        click.echo(f"audit chain BROKEN at {problem} ({count} rows read)", err=True)
        raise SystemExit(1)
    checked = f", {len([ln for ln in lines if ln.strip()])} checkpoints matched" if lines else ""
    click.echo(f"audit chain intact: {count} entries verified{checked}")


def _read_lines(path: str) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


@audit.command()
@with_core
async def checkpoint(core: Core) -> None:
    """Print a signed checkpoint of the chain's end; keep it where the database's users cannot write."""
    async with core.store.session() as session:
        mark = await audit_log.checkpoint(session)
    click.echo(mark.line())


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time", code=2)
        raise
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@audit.command()
@click.option("--since", default=None, help="Only entries at or after this date (YYYY-MM-DD, UTC).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
def export(since: str | None, fmt: str, output: str | None) -> None:
    """Write the audit log as CSV or JSON Lines."""
    since_dt = _parse_since(since)

    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout

    @with_core
    async def go(core: Core) -> None:
        async with core.store.session() as session:
            async for chunk in audit_log.export(session, fmt, since_dt):
                out.write(chunk)

    try:
        go()
    finally:
        if output:
            out.close()

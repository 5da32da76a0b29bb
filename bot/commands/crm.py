"""`crm` and `crm log on|off <connection>`: the practice's CRM logging, shown to admins and switched by them.

`crm` lists each CRM connection (HubSpot, Salesforce) with its logging on or off, when a visit was
last written there, and what waits or failed (the last failure's words). `crm log off 7` stops
logging visits to connection 7 (it stays a booking source where it is one); `crm log on 7` starts
again. The connection is named as `status` names it: its number, account or integration. Audited.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.commands.access import require_admin
from bot.commands.errors import ParseError
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services.appointment_views import moment_label
from sync.services.crm_settings import CrmConnection, crm_overview, set_crm_logging

__all__ = ["EXAMPLE", "CrmSettings", "crm", "parse_crm"]

EXAMPLE = "crm log off hubspot"


@dataclass(frozen=True, slots=True)
class CrmSettings:
    """`crm`: show the CRM connections; `crm log on|off <connection>`: switch one's logging."""

    connection: str | None = None
    logging: bool | None = None


def parse_crm(args: list[str], rest: str) -> CrmSettings:
    if not args:
        return CrmSettings()
    if args[0].lower() != "log":
        raise ParseError(f"{args[0]!r} is not a crm setting; say `crm` or `crm log on|off <connection>`", EXAMPLE)
    if len(args) < 2 or args[1].lower() not in ("on", "off"):
        raise ParseError("say `crm log on <connection>` or `crm log off <connection>`", EXAMPLE)
    if len(args) < 3:
        raise ParseError("which connection? `crm` lists them", EXAMPLE)
    if len(args) > 3:
        raise ParseError(f"one connection at a time; {' '.join(args[3:])!r} is too much", EXAMPLE)
    return CrmSettings(args[2], args[1].lower() == "on")


def _line(c: CrmConnection) -> str:
    state = "logging on" if c.logging else "logging off"
    last = f"last write {moment_label(c.last_write, c.timezone)}" if c.last_write else "nothing written yet"
    counts = f"{c.logged} visits logged"
    if c.pending:
        counts += f", {c.pending} waiting"
    if c.failed:
        counts += f", {c.failed} failed"
    text = f"• {c.connection_id} {c.provider} ({c.account}): {state}; {last}; {counts}"
    if c.status != "active":
        text += f"; connection {c.status.replace('_', ' ')}"
    if c.failed and c.last_error:
        text += f"\n    last failure: {c.last_error[:200]}"
    return text


async def crm(core: Core, actor: Actor, cmd: CrmSettings) -> View:
    """Show the CRM connections, or switch one's logging (admins only: a CRM holds client details)."""
    if cmd.connection is None or cmd.logging is None:
        require_admin(actor, "see the CRM logging")
        found = await crm_overview(core, actor.practice_id)
        if not found:
            return Notice("No CRM is connected. An admin connects one with `connect hubspot` or "
                          "`connect salesforce`.", title="CRM logging")
        lines = [_line(c) for c in found]
        lines.append(f"Admins switch one with e.g. `{EXAMPLE}`.")
        return Notice("\n".join(lines), title="CRM logging")
    require_admin(actor, "change the CRM logging")
    shown, changed = await set_crm_logging(core, actor.practice_id, cmd.connection, cmd.logging,
                                           actor=actor.audit_name)
    word = "on" if cmd.logging else "off"
    head = (f"Visit logging to {shown.provider} ({shown.account}) is now {word}." if changed
            else f"Visit logging to {shown.provider} ({shown.account}) was already {word}.")
    return Notice(f"{head}\n{_line(shown)}", title="CRM logging")

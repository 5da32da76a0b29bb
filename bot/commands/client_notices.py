"""`client-notices ...`: what the practice tells its clients, shown to staff and changed by admins.

`client-notices` shows the settings (and how many messages failed); an admin changes one thing at a
time: `on|off`, `channel email|sms|both`, `new on|off`, `reminders on|off`, `quiet 21:00-08:00|off`,
`details on|off`, `language en|es`, `template <kind> <text>` or `template <kind> reset`. The words are
read by the same parser as the CLI's `clinicbot clients settings`; each change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.commands.access import require_admin, require_staff
from bot.commands.errors import ParseError
from bot.commands.identity import Actor
from bot.views import Notice, View
from sync.runtime.core import Core
from sync.services.client_notices import Change, change_client_notices, client_message_health, parse_change
from sync.services.errors import Invalid

__all__ = ["SetClientNotices", "client_notices", "parse_client_notices"]

EXAMPLE = "client-notices channel both"


@dataclass(frozen=True, slots=True)
class SetClientNotices:
    """Show the practice's client-message settings, or change one of them."""

    change: Change = field(default_factory=Change)


def parse_client_notices(args: list[str], rest: str) -> SetClientNotices:
    try:
        return SetClientNotices(parse_change(args, rest))
    except Invalid as exc:
        raise ParseError(str(exc), EXAMPLE) from None


async def client_notices(core: Core, actor: Actor, cmd: SetClientNotices) -> View:
    """Show the settings, or (admins) change one."""
    if cmd.change.what is None:
        require_staff(actor, "see what clients are told")
    else:
        require_admin(actor, "change what clients are told")
    found = await change_client_notices(core, actor.practice_id, cmd.change, actor=actor.audit_name)
    lines = found.lines()
    if cmd.change.what is None:
        lines += await client_message_health(core, actor.practice_id)
        lines.append("Admins change them with e.g. `client-notices channel both`, `client-notices reminders on`, "
                     "`client-notices template moved Your visit with {practitioner} is now {date} {time}.`")
    return Notice("\n".join(lines), title="Client messages")

"""Routes, not adapters: platforms clinics use whose bookings reach clinicbot through an integration it has.

A route is an Integration whose connect kind is `route`: it has no capability of its own, only the
integrations it goes `via` and the steps a clinic follows. `connect <name>` in chat and
`clinicbot connection add <name>` answer with those steps (chat adds the sign-in link of the first
`via` integration when it signs in), so nobody hears "unknown provider" for a platform clinics use.

Sources and what could not be verified are in this folder's README.md. A platform that gets an
adapter of its own later replaces its route here by its own entry point of the same name.
"""

from __future__ import annotations

from sync.contract.integration import ConnectSpec, Integration, Profile

__all__ = [
    "APPOINTLET",
    "BOOKAFY",
    "DOODLE",
    "JANE",
    "OFFICE365",
    "OUTLOOK_COM",
    "ROUTES",
    "SIMPLEPRACTICE",
]

#: The last step of every route that ends in a calendar: which calendar becomes the source.
_SOURCE_ROLE = ("`status` then lists the calendars found; the server's admin gives the one {platform} books "
                "into the source role (`clinicbot calendar set <id> --role source`), and its bookings show in "
                "`/clinic today`.")
_ICS_ADD = ("The server's admin adds the feed with `clinicbot connection add ics --url <feed address> "
            "--practitioner <practitioner>` (the address is stored encrypted); it is read every "
            "CLINICBOT_SYNC_POLL_SECONDS and its bookings show in `/clinic today`.")


def _calendar_route(name: str, title: str, aliases: tuple[str, ...], first: str, *, note: str,
                    writes: str, setup: str) -> Integration:
    """A platform that books into a Google or Microsoft calendar: connect that calendar, mark it source."""
    return Integration(
        name=name,
        title=title,
        aliases=aliases,
        connect=ConnectSpec(
            kinds=("route",),
            via=("google", "graph"),
            steps=(
                f"{title} is reached through the calendar it books into: {note}",
                first,
                "Connect that calendar in chat: `connect google` for Google Calendar, `connect outlook` for "
                "Microsoft 365 or Outlook.com; each practitioner signs in with their own account.",
                _SOURCE_ROLE.format(platform=title),
            ),
        ),
        profile=Profile(reads=f"{title} bookings as events of the calendar it books into",
                        writes=writes, arrives="as Google / Microsoft 365 push it", setup=setup),
    )


#: Jane App: the practitioner's iCal feed (Jane's API is for approved partners only).
JANE = Integration(
    name="jane",
    title="Jane App",
    aliases=("janeapp", "jane.app"),
    connect=ConnectSpec(
        kinds=("route",),
        via=("ics",),
        steps=(
            "Jane App is read through each practitioner's calendar feed (iCal), which clinicbot reads today. "
            "Jane's API is open to its approved partners only, so clinicbot does not call it; reschedules and "
            "cancels are made in Jane, and the feed brings them back.",
            "In Jane, each practitioner turns on calendar sync in their own profile and copies the feed's "
            "address (it is secret: treat it like a password).",
            _ICS_ADD,
        ),
    ),
    profile=Profile(reads="appointments from each practitioner's iCal feed (read only)",
                    writes="nothing: reschedule and cancel in Jane", arrives="poll of the feed",
                    setup="turn on calendar sync per practitioner and hand the feed address to the admin"),
)

#: SimplePractice: its own Google / Microsoft 365 calendar sync, or its iCal feed.
SIMPLEPRACTICE = Integration(
    name="simplepractice",
    title="SimplePractice",
    aliases=("simple-practice", "simple_practice"),
    connect=ConnectSpec(
        kinds=("route",),
        via=("ics", "google", "graph"),
        steps=(
            "SimplePractice has no API clinicbot may use; it is reached through its own calendar sync.",
            "Either: SimplePractice's calendar sync gives each clinician a subscription (iCal) address in its "
            "calendar settings. " + _ICS_ADD,
            "Or: when SimplePractice already syncs into the clinician's Google or Microsoft 365 calendar, "
            "connect that calendar in chat (`connect google` or `connect outlook`). "
            + _SOURCE_ROLE.format(platform="SimplePractice"),
            "Either way reschedules and cancels are made in SimplePractice; its sync brings them back.",
        ),
    ),
    profile=Profile(reads="appointments from its iCal feed or the Google / Microsoft 365 calendar it syncs to",
                    writes="nothing: reschedule and cancel in SimplePractice",
                    arrives="poll of the feed, or as the synced calendar pushes",
                    setup="turn on SimplePractice's calendar sync (feed address, or its Google/Microsoft sync)"),
)

DOODLE = _calendar_route(
    "doodle", "Doodle", ("doodle.com",),
    "In Doodle, check which Google or Outlook calendar is connected (Doodle books into it).",
    note="Doodle's bookings are written into the Google or Outlook calendar connected to Doodle.",
    writes="moves and cancels of the calendar events (not Doodle's own booking page)",
    setup="connect Doodle to a Google or Outlook calendar, then that calendar to clinicbot",
)


def _microsoft_route(name: str, title: str, aliases: tuple[str, ...], account: str) -> Integration:
    return Integration(
        name=name,
        title=title,
        aliases=aliases,
        connect=ConnectSpec(
            kinds=("route",),
            via=("graph",),
            steps=(
                f"{title} works through Microsoft Graph, which clinicbot already speaks (`connect outlook`).",
                f"Each practitioner signs in with their {account} (delegated): the main calendar becomes the "
                "source of their bookings, the others count as busy time.",
                "For a practice-wide connection an IT admin grants consent once for the tenant; the server's "
                "admin then runs `clinicbot connection add graph --application --tenant <tenant id>` "
                "(Microsoft 365 work accounts only).",
                "The server needs CLINICBOT_GRAPH_CLIENT_ID and CLINICBOT_GRAPH_CLIENT_SECRET (an app "
                "registration that allows " + ("personal Microsoft accounts)." if "Outlook.com" in title
                                               else "work accounts)."),
            ),
        ),
        profile=Profile(reads="calendar events and bookings (through Microsoft Graph)",
                        writes="mirror copies; moves and cancels", arrives="push (Graph change notifications)",
                        setup="an app registration; sign-in per person, or tenant consent"),
    )


OUTLOOK_COM = _microsoft_route("outlookcom", "Outlook.com", ("outlook.com", "hotmail", "live.com"),
                               "Outlook.com (personal Microsoft) account")
OFFICE365 = _microsoft_route("office365", "Office 365", ("o365", "m365", "microsoft365"),
                             "Microsoft 365 work account")

BOOKAFY = _calendar_route(
    "bookafy", "Bookafy", (),
    "In Bookafy, open the calendar sync settings and check it syncs to a Google or Outlook calendar.",
    note="Bookafy's API documentation could not be verified, so clinicbot reads the Google or Outlook "
         "calendar Bookafy already syncs its appointments to.",
    writes="moves and cancels of the synced calendar events",
    setup="turn on Bookafy's Google or Outlook calendar sync",
)
APPOINTLET = _calendar_route(
    "appointlet", "Appointlet", (),
    "In Appointlet, check which Google or Outlook calendar each member's bookings are added to.",
    note="Appointlet documents only unsigned webhooks, and no API to read a meeting back that a webhook "
         "could be checked against; it adds every booking to the member's connected Google or Outlook "
         "calendar, which clinicbot reads.",
    writes="moves and cancels of the calendar events",
    setup="connect each Appointlet member to a Google or Outlook calendar",
)

#: Every route of this folder, by name.
ROUTES = {r.name: r for r in (JANE, SIMPLEPRACTICE, DOODLE, OUTLOOK_COM, OFFICE365, BOOKAFY, APPOINTLET)}

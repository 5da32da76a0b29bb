"""Words for the connection failures a person can act on, read from what the provider said.

Work calendars reached through Nylas or Graph fail in a few ways that no retry fixes and that the
person (or their IT) can: app passwords switched off for a basic-auth (IMAP/EWS) account, an Azure
app that needs an administrator's consent, a tenant that only lets known IP addresses in, and
accounts in protected administrator groups, which Microsoft does not let apps read. The adapters
keep the provider's own error code and message (Nylas `provider_error`, Graph's `error.code`, the
AADSTS codes of Microsoft's sign-in) in the error they raise; `advice` recognises them, and
`doctor`, the sign-in page, the reconnect card and `status` show the words. Plain words with no
imports, in the contract so every layer (adapters, engine, front ends) reads the same table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ADVICE", "Advice", "advice"]


@dataclass(frozen=True, slots=True)
class Advice:
    key: str
    title: str
    words: str


ADVICE: tuple[tuple[re.Pattern[str], Advice], ...] = (
    (re.compile(r"\b(?:AADSTS)?(65001|90094|90008|65004)\b|admin[_ ]?consent|consent[_ ]required|need admin approval",
                re.IGNORECASE),
     Advice("admin_consent", "an administrator must approve the app",
            "Your organisation lets only approved apps read calendars. Ask an IT administrator to grant admin "
            "consent to the calendar app (Microsoft Entra admin center > Enterprise applications > the app > "
            "Permissions > Grant admin consent), then connect again.")),
    (re.compile(r"\b(?:AADSTS)?(53003|50097|530032)\b|conditional access|IpAddressBlocked|ip (address )?(is )?not "
                r"allowed|blocked by (a |the )?firewall|connection (refused|timed out) .*(imap|ews|exchange)",
                re.IGNORECASE),
     Advice("firewall", "the organisation's network policy blocks the calendar service",
            "Your tenant only lets known addresses in (a firewall or a Conditional Access policy). Ask IT to "
            "allow the calendar service's IP addresses (Nylas publishes its list: "
            "https://developer.nylas.com/docs/dev-guide/best-practices/ip-addresses/), or to exclude the app "
            "from the policy, then connect again.")),
    (re.compile(r"application[- ]specific password|app[- ]?passwords?( are)? (required|disabled|off|not "
                r"allowed)|BasicAuthBlocked|basic auth(entication)? (is )?(disabled|blocked)|"
                r"AUTHENTICATIONFAILED.*app password|LOGIN failed.*app password", re.IGNORECASE),
     Advice("app_password", "this account needs an app password",
            "This account signs in with a password (basic authentication), and its provider refuses the "
            "normal password for apps. Create an app password (Microsoft 365: IT must first allow app "
            "passwords for the account's multi-factor sign-in; Google and iCloud: the account's security "
            "settings), then connect again with it.")),
    (re.compile(r"ErrorImpersonateUserDenied|ErrorImpersonationDenied|protected (admin(istrator)?|privileged) "
                r"group|AdminSDHolder|admin(istrator)?[- ]group account", re.IGNORECASE),
     Advice("admin_group", "administrator accounts cannot be synced",
            "This account is in a protected administrators group (such as Domain Admins), and Microsoft does "
            "not let apps read those mailboxes' calendars. Connect a regular (non-admin) account for the "
            "calendar instead, or ask IT to move the calendar to one.")),
)


def advice(*texts: str | None) -> Advice | None:
    """The advice that fits what the provider said (an error message, an OAuth error and its description)."""
    said = " ".join(t for t in texts if t)
    if not said:
        return None
    for pattern, found in ADVICE:
        if pattern.search(said):
            return found
    return None

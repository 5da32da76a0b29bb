"""Messages to a practice's clients as plain data: what the core asks a mail integration to send.

An email about a visit carries an iCalendar invitation (`METHOD:REQUEST` for a new or moved visit,
`METHOD:CANCEL` for a cancelled one) with the visit's stable UID and a SEQUENCE that rises with every
change, so the visit updates itself in the client's own calendar. The integration builds the wire
format (MIME, iCalendar); the core decides who is told what, and when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["ClientEmail", "ClientSms", "InboundSms", "Invitation", "MailSender", "MailSlot", "SmsSender", "SmsStatus"]


@dataclass(frozen=True, slots=True)
class Invitation:
    """The visit as the client's calendar should hold it."""

    uid: str
    sequence: int
    method: Literal["REQUEST", "CANCEL"]
    start: datetime
    end: datetime
    tzid: str
    summary: str
    location: str
    organizer_email: str
    organizer_name: str
    attendee_email: str
    attendee_name: str


@dataclass(frozen=True, slots=True)
class ClientEmail:
    """One email to one client. `key` is stable per message, so a resend carries the same Message-ID."""

    key: str
    to: str
    to_name: str
    subject: str
    text: str
    invitation: Invitation | None = None
    #: The one-click opt-out address (List-Unsubscribe), also written in the text.
    unsubscribe_url: str | None = None


class MailSender(Protocol):
    """Sends client emails: Unavailable (retry later) or Refused (never retry) on failure."""

    async def send(self, email: ClientEmail) -> None: ...


@dataclass(frozen=True, slots=True)
class MailSlot:
    """The mail capability: a sender for this server's settings (None when it is not set up)."""

    open: Callable[[Any], MailSender | None]


@dataclass(frozen=True, slots=True)
class ClientSms:
    """One text message to one client: `to` in E.164 (+447700900123), `key` stable per message."""

    key: str
    to: str
    text: str
    #: Where the platform reports the message's delivery (sent, delivered, undelivered), if anywhere.
    status_url: str | None = None


class SmsSender(Protocol):
    """Sends client text messages.

    `send` raises Unavailable or RateLimited only when the platform certainly did not take the message
    (safe to send again later), and Refused when it never will (or when the outcome is unknown: a
    resend could reach the client twice). `find` looks for a message already taken since `since`
    with the same recipient and text (the check after a crash mid-send), returning its id or None.
    """

    async def send(self, sms: ClientSms) -> str: ...

    async def find(self, sms: ClientSms, since: datetime) -> str | None: ...

    async def aclose(self) -> None:
        """Close its connections (the end of a sending run)."""
        ...


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A text a client sent to the practice's number, after its signature was checked.

    `intent` is what the platform's opt-out keywords make of it: "stop" (STOP, UNSUBSCRIBE...),
    "start" (START, UNSTOP) or "other".
    """

    message_id: str
    sender: str
    to: str
    intent: Literal["stop", "start", "other"]


@dataclass(frozen=True, slots=True)
class SmsStatus:
    """The platform's report on a message it took, after its signature was checked.

    `outcome`: "delivered", "bounced" (the carrier or handset did not take it) or "pending" (queued,
    sent, anything not final); `error` is the platform's code and words, without the number.
    """

    message_id: str
    outcome: Literal["delivered", "bounced", "pending"]
    error: str = ""

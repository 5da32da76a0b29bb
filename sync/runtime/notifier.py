"""Outbound notifications to people, platform-free.

The core says *what* to tell *whom* (`Notification`); the bot layer implements `Notifier`: it turns
the notification into a View, finds the person's ChatIdentity and sends a Slack or Teams DM.
Reminders, agenda DMs, follow-ups, consent results and conflict cards all go through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["DeliveryError", "Notification", "NotificationKind", "Notifier", "RecordingNotifier"]

NotificationKind = Literal[
    "reminder", "agenda", "followup", "appointment_changed", "conflict", "double_booking",
    "consent_result", "consent_request", "reconnect", "notice",
    "followup_booking", "outside_shift", "lead",
]


@dataclass(frozen=True, slots=True)
class Notification:
    kind: NotificationKind
    practice_id: int
    #: Who gets it: a practitioner (via their chat identities) or one chat identity directly.
    practitioner_id: int | None = None
    chat_identity_id: int | None = None
    #: To all admins / the staff channel of the practice instead of one person. "ops": the staff
    #: channel on a platform that has one, else that platform's admins by DM (alarms).
    audience: Literal["person", "admins", "staff", "ops"] = "person"
    appointment_ids: tuple[int, ...] = ()
    #: Kind-specific values (offset minutes, late flag, error code ...). No patient data here:
    #: renderers read appointments by id at send time.
    data: dict[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A notification could not be delivered (no chat identity, platform error); safe to retry."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Notifier(Protocol):
    async def notify(self, notification: Notification) -> None:
        """Deliver now or raise DeliveryError."""
        ...


class RecordingNotifier:
    """A Notifier that records what it was asked to send (for the CLI's dry runs and tests)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def notify(self, notification: Notification) -> None:
        self.sent.append(notification)

"""An Acuity delivery whose appointment id is not plain ASCII digits is refused (400) and asks for no sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.acuity.webhooks import SIGNATURE_HEADER, AcuityWebhooks, sign
from sync.contract.integration import Channel, WebhookRequest

KEY = "apikey_test"


class _Desk:
    """The core's side of one connection, as the webhook handler sees it: one channel, a sync queue."""

    connection_id = 1

    def __init__(self) -> None:
        self.synced: list[str] = []
        self.channel_ = Channel("calendar-1", "https://bot.example.org/webhooks/acuity/1", KEY,
                                datetime.now(UTC) + timedelta(days=1))

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channels(self) -> list[Channel]:
        return [self.channel_]

    async def first_delivery(self, key: str) -> bool:
        return True

    async def sync(self, channel: Channel, reason: str) -> None:
        self.synced.append(reason)


def _post(body: bytes) -> WebhookRequest:
    return WebhookRequest("POST", {SIGNATURE_HEADER: sign(body, KEY)}, {}, body)


@pytest.mark.parametrize("appointment", ["%C2%B2", "%D9%A1%D9%A2", "9" * 5000])
async def test_an_id_of_other_digits_or_any_length_is_refused(appointment: str) -> None:
    desk = _Desk()
    body = f"action=scheduled&id={appointment}&calendarID=1&appointmentTypeID=2".encode()
    answer = await AcuityWebhooks().handle(_post(body), desk)  # type: ignore[arg-type]
    assert answer.status == 400 and desk.synced == []
    answer = await AcuityWebhooks().handle(_post(b"action=scheduled&id=123&calendarID=1"), desk)  # type: ignore[arg-type]
    assert answer.status == 200 and desk.synced == ["appointment.scheduled"]

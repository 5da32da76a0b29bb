"""The Nylas webhook handler on plain requests: the signature against the reference vector, checked
on the raw (possibly gzipped) body before decoding; `.transformed` triggers; mail triggers ignored."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from adapters.nylas.webhooks import NylasWebhooks, sign, verify_signature
from sync.contract.integration import Channel, WebhookRequest

SECRET = "whsec_test"
GRANT = "grant-1"


def test_the_signature_is_the_hex_hmac_of_the_raw_body() -> None:
    body = b'{"specversion":"1.0","type":"event.created","id":"n1"}'
    expected = "3e2b30a656dc9413a123c60e3d113093ecd95249a8dd2fc17af23d7dbaf0c6c9"
    assert sign(body, SECRET) == expected
    assert verify_signature(body, expected.upper(), SECRET)
    assert not verify_signature(body + b" ", expected, SECRET)
    assert not verify_signature(body, "", SECRET) and not verify_signature(body, expected, "")


@dataclass
class Desk:
    connection_id: int = 3
    synced: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def channel(self, channel_id: str) -> Channel | None:
        return None

    async def sync(self, channel: Channel, reason: str) -> None:
        self.synced.append(reason)

    async def renew_soon(self, channel: Channel) -> None:
        raise AssertionError("not used")

    async def forget(self, channel: Channel) -> None:
        raise AssertionError("not used")

    async def channels(self) -> list[Channel]:
        return [Channel("wh-1", GRANT, SECRET, datetime.now(UTC) + timedelta(days=30), "cal-1")]

    async def first_delivery(self, key: str) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def delivery(kind: str, n: int, *, grant: str = GRANT) -> bytes:
    return json.dumps({"specversion": "1.0", "type": kind, "id": f"d{n}", "source": "/google/events/realtime",
                       "data": {"application_id": "app", "object": {"grant_id": grant, "id": "e1",
                                                                   "calendar_id": "cal-1", "object": "event"}}}).encode()


def post(body: bytes, signature: str | None, **headers: str) -> WebhookRequest:
    values = {**({"x-nylas-signature": signature} if signature is not None else {}), **headers}
    return WebhookRequest("POST", values, {}, body)


async def test_transformed_triggers_sync_and_mail_triggers_do_not() -> None:
    hooks, desk = NylasWebhooks(), Desk()
    for n, kind in enumerate(["event.updated.transformed", "event.deleted", "message.created", "grant.expired"]):
        body = delivery(kind, n)
        answer = await hooks.handle(post(body, sign(body, SECRET)), desk)
        assert answer.status == 200
    assert desk.synced == ["event.updated", "event.deleted", "grant.expired"]


async def test_a_gzipped_delivery_is_verified_on_the_bytes_received() -> None:
    hooks, desk = NylasWebhooks(), Desk()
    packed = gzip.compress(delivery("event.created", 1))
    ok = await hooks.handle(post(packed, sign(packed, SECRET), **{"content-encoding": "gzip"}), desk)
    assert ok.status == 200 and desk.synced == ["event.created"]
    plain = delivery("event.created", 2)
    wrong = await hooks.handle(post(packed, sign(plain, SECRET), **{"content-encoding": "gzip"}), desk)
    assert wrong.status == 401


async def test_bad_requests_change_nothing() -> None:
    hooks, desk = NylasWebhooks(), Desk()
    garbage = b"not json"
    assert (await hooks.handle(post(garbage, sign(garbage, SECRET)), desk)).status == 400
    body = delivery("event.created", 1)
    assert (await hooks.handle(post(body, None), desk)).status == 401
    assert (await hooks.handle(post(body, sign(body, "whsec_other")), desk)).status == 401
    assert (await hooks.handle(WebhookRequest("DELETE", {}, {}, b""), desk)).status == 405
    assert (await hooks.handle(WebhookRequest("GET", {}, {}, b""), desk)).status == 400
    other = delivery("event.created", 2, grant="grant-2")
    assert (await hooks.handle(post(other, sign(other, SECRET)), desk)).text == "not this connection's grant"
    assert desk.synced == [] and desk.seen == set()

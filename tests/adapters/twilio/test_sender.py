"""The Twilio sender and the inbound signature check, against the loopback Twilio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from adapters.twilio import TwilioSms, read_inbound, signature
from adapters.twilio.settings import TwilioSettings
from sync.contract import AuthExpired, BadPayload, RateLimited, RecipientOptedOut, Refused
from sync.contract.integration import WebhookRequest
from sync.contract.messages import ClientSms
from tests.adapters.twilio.fakes.twilio import (
    ACCOUNT_SID,
    API_KEY,
    API_SECRET,
    AUTH_TOKEN,
    TwilioFake,
    twilio_signature,
)
from tests.conftest import settings_with

CLIENT = "+447700900123"
OPENED: list[TwilioSms] = []


@pytest.fixture
async def fake() -> AsyncIterator[TwilioFake]:
    twilio = TwilioFake()
    await twilio.start()
    try:
        yield twilio
    finally:
        for opened in OPENED:
            await opened.aclose()
        OPENED.clear()
        await twilio.close()


def sender(fake: TwilioFake, **overrides: object) -> TwilioSms:
    values: dict[str, object] = {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                                 "twilio_from": fake.number, "twilio_base_url": fake.url, "twilio_timeout": 2.0}
    values.update(overrides)
    opened = TwilioSms(TwilioSettings(**values))  # type: ignore[arg-type]
    OPENED.append(opened)
    return opened


async def test_a_text_reaches_twilio_form_encoded_with_the_account_login(fake: TwilioFake) -> None:
    sid = await sender(fake).send(ClientSms("k1", CLIENT, "Northside: your visit has moved."))
    [sent] = fake.messages
    assert sid == sent.sid and sid.startswith("SM")
    assert (sent.to, sent.sender, sent.body, sent.login) == (CLIENT, fake.number, "Northside: your visit has moved.",
                                                             ACCOUNT_SID)


async def test_an_api_key_logs_in_instead_of_the_auth_token(fake: TwilioFake) -> None:
    await sender(fake, twilio_auth_token=None, twilio_api_key=API_KEY, twilio_api_secret=API_SECRET).send(
        ClientSms("k1", CLIENT, "hello"))
    assert fake.messages[0].login == API_KEY


async def test_twilio_errors_land_on_the_shared_tree_with_their_code(fake: TwilioFake) -> None:
    with pytest.raises(AuthExpired, match="20003"):
        await sender(fake, twilio_auth_token="wrong-token").send(ClientSms("k", CLIENT, "x"))
    with pytest.raises(Refused, match="21211"):
        await sender(fake).send(ClientSms("k", "+1", "x"))
    fake.opted_out.add(CLIENT)
    with pytest.raises(Refused, match="21660") as caught:  # a code without our own words: Twilio's, scrubbed
        await sender(fake, twilio_from="+15005550009").send(ClientSms("k", CLIENT, "x"))
    assert "5550009" not in str(caught.value) and "Mismatch between the 'From' number <number>" in str(caught.value)
    with pytest.raises(RecipientOptedOut, match=r"replied STOP.*21610"):  # the core records the opt-out
        await sender(fake).send(ClientSms("k", CLIENT, "x"))
    assert fake.messages == []


async def test_a_short_throttle_is_waited_out_and_a_long_one_raised_with_its_wait(fake: TwilioFake) -> None:
    fake.throttle = [(429, "0"), (503, "0")]
    await sender(fake).send(ClientSms("k", CLIENT, "x"))
    assert len(fake.messages) == 1 and fake.requests == 3
    fake.throttle = [(429, "600")] * 4
    with pytest.raises(RateLimited) as caught:
        await sender(fake).send(ClientSms("k", CLIENT, "y"))
    assert caught.value.retry_after == 600
    fake.throttle = [(503, "900")] * 4
    with pytest.raises(RateLimited):
        await sender(fake).send(ClientSms("k", CLIENT, "y"))
    assert len(fake.messages) == 1


async def test_find_reads_the_message_list_page_by_page(fake: TwilioFake) -> None:
    start = datetime.now(UTC) - timedelta(seconds=5)
    twilio = sender(fake)
    await twilio.send(ClientSms("k", CLIENT, "the one"))
    for n in range(120):  # newer messages to the same client push it to the third page of fifty
        await twilio.send(ClientSms(f"k{n}", CLIENT, f"later {n}"))
    assert await twilio.find(ClientSms("k", CLIENT, "the one"), start) == fake.messages[0].sid
    assert await twilio.find(ClientSms("k", CLIENT, "never sent"), start) is None
    assert await twilio.find(ClientSms("k", "+447700900999", "the one"), start) is None


def _request(form: dict[str, str], sig: str | None, **headers: str) -> WebhookRequest:
    head = {"content-type": "application/x-www-form-urlencoded", **headers}
    if sig is not None:
        head["x-twilio-signature"] = sig
    return WebhookRequest("POST", head, {}, urlencode(form).encode())


def test_the_signature_is_twilios_documented_example() -> None:
    # Twilio's security page: this URL, these parameters and the token 12345 sign to this value.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    assert signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_an_inbound_stop_is_read_only_with_a_good_signature() -> None:
    host = settings_with(twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN, twilio_from="+15005550006")
    url = "https://bot.example/sms/twilio/inbound"
    form = TwilioFake().inbound_form(CLIENT, " stop ")
    inbound = read_inbound(_request(form, twilio_signature(AUTH_TOKEN, url, form)), url, host)
    assert (inbound.intent, inbound.sender, inbound.message_id) == ("stop", CLIENT, form["MessageSid"])
    # Twilio may sign the address with the default port written out.
    assert read_inbound(_request(form, twilio_signature(AUTH_TOKEN, "https://bot.example:443/sms/twilio/inbound",
                                                        form)), url, host).intent == "stop"
    with pytest.raises(Refused, match="signature is wrong"):
        read_inbound(_request(form, twilio_signature("another-token", url, form)), url, host)
    with pytest.raises(Refused, match="no signature"):
        read_inbound(_request(form, None), url, host)
    tampered = {**form, "From": "+447700900999"}
    with pytest.raises(Refused):
        read_inbound(_request(tampered, twilio_signature(AUTH_TOKEN, url, form)), url, host)
    with pytest.raises(Refused, match="shared key"):
        read_inbound(_request(form, twilio_signature(AUTH_TOKEN, url, form),
                              **{"x-twilio-webhooks-signature-settings": "key=k,algorithm=HMAC_SHA256"}), url, host)
    start = TwilioFake().inbound_form(CLIENT, "Unstop")
    assert read_inbound(_request(start, twilio_signature(AUTH_TOKEN, url, start)), url, host).intent == "start"
    chat = TwilioFake().inbound_form(CLIENT, "please stop the noise")
    chat.pop("OptOutType", None)
    assert read_inbound(_request(chat, twilio_signature(AUTH_TOKEN, url, chat)), url, host).intent == "other"
    junk = {"Body": "STOP"}
    with pytest.raises(BadPayload):
        read_inbound(_request(junk, twilio_signature(AUTH_TOKEN, url, junk)), url, host)


def test_without_the_auth_token_no_inbound_message_is_believed() -> None:
    host = settings_with(twilio_account_sid=ACCOUNT_SID, twilio_api_key=API_KEY, twilio_api_secret=API_SECRET,
                         twilio_from="+15005550006")
    form = TwilioFake().inbound_form(CLIENT, "STOP")
    url = "https://bot.example/sms/twilio/inbound"
    with pytest.raises(Refused, match="AUTH_TOKEN"):
        read_inbound(_request(form, twilio_signature(AUTH_TOKEN, url, form)), url, host)

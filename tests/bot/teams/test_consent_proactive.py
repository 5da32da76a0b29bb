"""Installs store conversation references; proactive DMs land at the connector; admin consent from
the chat, its callback (success, AADSTS errors, replays, someone else's state)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from bot.teams import TEAMS  # noqa: F401  (the app key exists)
from sync.runtime.notifier import DeliveryError, Notification
from sync.store.model import ChatIdentity, ConsentGrant
from tests.bot.teams.conftest import APP_ID, BOT_MRI, TENANT, Teams, activity


async def _install(t: Teams, sender: int = 1, kind: str = "personal") -> dict[str, Any]:
    act = activity(t.connector.service_url, type="installationUpdate", action="add", sender=sender, kind=kind)
    status, _ = await t.post(act)
    assert status in (200, 201)
    return act


async def _identity(t: Teams, user_id: str) -> ChatIdentity:
    async with t.core.store.session() as session:
        row = await session.scalar(select(ChatIdentity).where(ChatIdentity.user_id == user_id))
        assert row is not None
        return row


def _notifier(t: Teams) -> Any:
    return t.core.services.notifiers["teams"]


async def test_install_stores_the_reference_and_a_proactive_dm_lands(teams: Teams) -> None:
    act = await _install(teams)
    me = await _identity(teams, "29:user-1")
    assert me.conversation_ref and me.conversation_ref["conversation"]["id"] == act["conversation"]["id"]
    assert me.conversation_ref["serviceUrl"] == teams.connector.service_url
    before = len(teams.connector.recorded.activities())
    await _notifier(teams).notify(
        Notification(
            kind="notice",
            practice_id=me.practice_id,
            chat_identity_id=me.id,
            data={"text": "Your 10:00 moved to 11:00"},
        )
    )
    sent = teams.connector.recorded.activities(act["conversation"]["id"])
    assert len(teams.connector.recorded.activities()) == before + 1
    assert "Your 10:00 moved to 11:00" in str(sent[-1]["attachments"][0]["content"])
    assert sent[-1]["from"]["id"] == BOT_MRI


async def test_channel_member_gets_a_new_personal_chat(teams: Teams) -> None:
    await _install(teams, sender=1, kind="channel")
    me = await _identity(teams, "29:user-1")
    channel = await _identity(
        teams, "conversation:" + activity("", kind="channel")["conversation"]["id"].split(";")[0]
    )
    assert channel.conversation_ref is not None
    await _notifier(teams).notify(
        Notification(
            kind="notice", practice_id=me.practice_id, chat_identity_id=me.id, data={"text": "hello"}
        )
    )
    created = teams.connector.recorded.created_conversations
    assert created and created[-1]["members"][0]["id"] == "29:user-1"
    assert created[-1]["channelData"]["tenant"]["id"] == TENANT
    assert teams.connector.recorded.activities("a:user-1")
    refreshed = await _identity(teams, "29:user-1")
    assert refreshed.conversation_ref["conversation"]["conversationType"] == "personal"  # type: ignore[index]
    # The staff channel (first channel the bot was added to) gets practice-wide notices.
    await _notifier(teams).notify(
        Notification(
            kind="notice", practice_id=me.practice_id, audience="staff", data={"text": "sync restored"}
        )
    )
    assert "sync restored" in str(
        teams.connector.recorded.activities(channel.conversation_ref["conversation"]["id"])
    )


async def test_delivery_failure_is_a_retryable_error(teams: Teams) -> None:
    await _install(teams)
    me = await _identity(teams, "29:user-1")
    for _ in range(3):
        teams.connector.fail_next(503, {"Retry-After": "0"})
    try:
        await _notifier(teams).notify(
            Notification(
                kind="notice", practice_id=me.practice_id, chat_identity_id=me.id, data={"text": "x"}
            )
        )
    except DeliveryError as exc:
        assert exc.retryable
    else:
        raise AssertionError("expected DeliveryError")


async def _consent_card(t: Teams, sender: int = 1) -> tuple[dict[str, Any], str]:
    act = activity(t.connector.service_url, text="connect outlook", sender=sender)
    status, _ = await t.post(act)
    assert status in (200, 201)
    card = t.connector.recorded.activities(act["conversation"]["id"])[-1]["attachments"][0]["content"]
    urls = [a["url"] for a in card.get("actions", []) if a["type"] == "Action.OpenUrl"]
    return card, (urls[0] if urls else "")


async def _start(t: Teams, url: str) -> tuple[int, str]:
    start = t.url + urlsplit(url).path + "?" + urlsplit(url).query
    async with t.session.get(start, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", "")


async def _callback(t: Teams, **query: str) -> tuple[int, str]:
    async with t.session.get(t.url + "/consent/callback", params=query) as resp:
        return resp.status, await resp.text()


async def test_admin_consent_success(teams: Teams) -> None:
    await _install(teams)
    _, url = await _consent_card(teams)
    assert url.startswith("https://clinic.example.net/consent/start?state=")
    status, location = await _start(teams, url)
    assert status == 302
    target = urlsplit(location)
    query = parse_qs(target.query)
    assert location.startswith(f"{teams.settings.login_url}/{TENANT}/adminconsent?")
    assert query["client_id"] == [APP_ID]
    assert query["redirect_uri"] == ["https://clinic.example.net/consent/callback"]
    state = query["state"][0]
    before = len(teams.connector.recorded.activities("a:personal-1"))
    status, page = await _callback(teams, admin_consent="True", tenant=TENANT, state=state)
    assert status == 200 and "Consent granted" in page
    async with teams.core.store.session() as session:
        grant = await session.scalar(select(ConsentGrant))
        assert grant is not None and grant.granted and grant.tenant_id == TENANT
    dms = teams.connector.recorded.activities("a:personal-1")
    assert len(dms) == before + 1 and "Admin consent granted" in str(dms[-1])
    # Replaying the same redirect does nothing more.
    status, page = await _callback(teams, admin_consent="True", tenant=TENANT, state=state)
    assert status == 400 and "already used" in page
    async with teams.core.store.session() as session:
        assert len((await session.scalars(select(ConsentGrant))).all()) == 1


async def test_admin_consent_declined_is_explained(teams: Teams) -> None:
    await _install(teams)
    _, url = await _consent_card(teams)
    _, location = await _start(teams, url)
    state = parse_qs(urlsplit(location).query)["state"][0]
    status, page = await _callback(
        teams,
        error="access_denied",
        state=state,
        error_description="AADSTS65004: User declined to consent to access the app.\r\nTrace ID: x",
    )
    assert status == 200 and "declined" in page
    async with teams.core.store.session() as session:
        grant = await session.scalar(select(ConsentGrant))
        assert grant is not None and not grant.granted and grant.error_code == "AADSTS65004"
    dm = str(teams.connector.recorded.activities("a:personal-1")[-1])
    assert "declined" in dm and "AADSTS65004" in dm


async def test_someone_elses_state_is_rejected(teams: Teams) -> None:
    await _install(teams)
    _, url = await _consent_card(teams)
    state = parse_qs(urlsplit(url).query)["state"][0]
    # Another browser (no cookie from /consent/start) brings the state back.
    async with teams.session.get(
        teams.url + "/consent/callback",
        params={"admin_consent": "True", "tenant": TENANT, "state": state},
        cookies={"clinicbot_consent": "somebody-elses"},
    ) as resp:
        assert resp.status == 400
        assert "not yours" in await resp.text()
    async with teams.core.store.session() as session:
        assert (await session.scalars(select(ConsentGrant))).all() == []


async def test_unknown_state_and_wrong_tenant_are_rejected(teams: Teams) -> None:
    await _install(teams)
    status, _ = await _start(teams, "https://x/consent/start?state=made-up")
    assert status == 400
    _, url = await _consent_card(teams)
    _, location = await _start(teams, url)
    state = parse_qs(urlsplit(location).query)["state"][0]
    status, page = await _callback(teams, admin_consent="True", tenant="another-tenant", state=state)
    assert "another organisation" in page
    async with teams.core.store.session() as session:
        grant = await session.scalar(select(ConsentGrant))
        assert grant is not None and not grant.granted


async def test_non_admin_is_told_and_admins_get_the_consent_card(teams: Teams) -> None:
    await _install(teams, sender=1)  # first contact: the practice's admin
    await _install(teams, sender=2)
    admin_dms = len(teams.connector.recorded.activities("a:personal-1"))
    card, url = await _consent_card(teams, sender=2)
    assert url == "" and "An admin must approve this" in str(card)
    dms = teams.connector.recorded.activities("a:personal-1")
    assert len(dms) == admin_dms + 1
    assert "Grant admin consent" in str(dms[-1]) and "User 2" in str(dms[-1])


async def test_shared_chat_notifier_reaches_teams(teams: Teams) -> None:
    """Reminders and agendas use core.services.notifier (bot/notify.py); Teams users must get them."""
    from bot.notify import chat_notifier

    act = await _install(teams)
    me = await _identity(teams, "29:user-1")
    before = len(teams.connector.recorded.activities())
    await chat_notifier(teams.core).notify(
        Notification(kind="notice", practice_id=me.practice_id, chat_identity_id=me.id,
                     data={"text": "Agenda for tomorrow is ready"})
    )
    sent = teams.connector.recorded.activities(act["conversation"]["id"])
    assert len(teams.connector.recorded.activities()) == before + 1
    card = sent[-1]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "Agenda for tomorrow is ready" in str(card["content"])

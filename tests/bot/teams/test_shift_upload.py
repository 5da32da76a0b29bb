"""A shift schedule export sent to the bot in a Teams personal chat, through the running server.

Teams hands the bot a pre-authenticated download URL; here a loopback file server plays SharePoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.teams.uploads import FILE_INFO, MAX_BYTES
from sync.services import shifts
from sync.store.model import AuditEntry, ShiftRow
from tests.bot.teams.conftest import Teams, _serve, activity, teams_settings
from tests.fakes.bot_connector import FakeBotConnector

DAY = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d")
GOOD = (
    "Person,UniqueID,Custom1,Assignment,Start,End\n"
    f"Ann Lee,LB1,ann@clinic.example,Day clinic,{DAY} 08:00,{DAY} 16:00\n"
    f"Cy Roe,LB3,,Day clinic,{DAY} 08:00,{DAY} 12:00\n"
).encode()
FILES = {"good.csv": GOOD, "bad.csv": b"Person,Start\nAnn,soon\n", "huge.csv": b"x" * (MAX_BYTES + 1)}


@pytest.fixture
async def files() -> AsyncIterator[str]:
    async def serve(request: web.Request) -> web.StreamResponse:
        body = FILES.get(request.match_info["name"])
        return web.Response(body=body) if body is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/files/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/files")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def teams(backend: str, tmp_path: Path, connector: FakeBotConnector,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Teams]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", connector.ca_path)
    settings = teams_settings(backend, tmp_path, connector, allow_private_urls=True)
    async for url, core, app in _serve(settings):
        async with aiohttp.ClientSession() as session:
            yield Teams(url, connector, core, settings, app, session)


def upload(service_url: str, files: str, name: str, sender: int = 1) -> dict[str, Any]:
    return activity(service_url, sender=sender, text="", attachments=[{
        "contentType": FILE_INFO, "name": name,
        "content": {"downloadUrl": f"{files}/{name}", "uniqueId": "1", "fileType": "csv"},
    }])


def last_text(teams: Teams, conversation: str) -> str:
    return str(teams.connector.recorded.activities(conversation)[-1])


async def test_an_admin_sends_a_schedule_and_it_is_imported(teams: Teams, files: str) -> None:
    url = teams.connector.service_url
    assert (await teams.post(activity(url, text="whoami", sender=1)))[0] in (200, 201)  # the first person: admin
    assert (await teams.post(activity(url, text="whoami", sender=2)))[0] in (200, 201)

    assert (await teams.post(upload(url, files, "good.csv")))[0] in (200, 201)
    text = last_text(teams, "a:personal-1")
    assert "2 shifts (2 published) read from good.csv" in text
    # No practice-wide Outlook connection yet: stored, and the admin is told how to publish.
    assert "not published" in text and "connection add graph --application" in text
    async with teams.core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(ShiftRow)) == 2
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.import"))
        assert entry is not None and entry.actor.startswith("teams:")

    assert (await teams.post(upload(url, files, "bad.csv")))[0] in (200, 201)
    assert "row 1" in last_text(teams, "a:personal-1")
    assert (await teams.post(upload(url, files, "huge.csv")))[0] in (200, 201)
    assert "larger than 10 MB" in last_text(teams, "a:personal-1")
    assert (await teams.post(upload(url, files, "gone.csv")))[0] in (200, 201)
    assert "answered 404" in last_text(teams, "a:personal-1")
    # Someone without the admin role is refused, and nothing changes.
    assert (await teams.post(upload(url, files, "good.csv", sender=2)))[0] in (200, 201)
    assert "admin" in last_text(teams, "a:personal-2")
    async with teams.core.store.session() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "shifts.import")) == 1


def _find(node: Any, kind: str) -> list[dict[str, Any]]:
    """Every element of `kind` in a card, depth first."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == kind:
            found.append(node)
        for value in node.values():
            found += _find(value, kind)
    elif isinstance(node, list):
        for value in node:
            found += _find(value, kind)
    return found


async def test_the_mapping_card_maps_a_person_to_a_sign_in_typed_in_its_box(teams: Teams, files: str) -> None:
    url = teams.connector.service_url
    assert (await teams.post(activity(url, text="whoami", sender=1)))[0] in (200, 201)  # the first person: admin
    await shifts.set_identity_field(teams.core, None, "custom1", actor="cli:admin")
    assert (await teams.post(upload(url, files, "good.csv")))[0] in (200, 201)
    summary = teams.connector.recorded.activities("a:personal-1")[-1]["attachments"][0]["content"]
    [open_map] = [b for b in _find(summary, "Action.Execute") if b["verb"] == "shifts_map"]

    def invoke(verb: str, data: dict[str, Any]) -> dict[str, Any]:
        return activity(url, type="invoke", name="adaptiveCard/action", sender=1,
                        value={"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"})

    status, body = await teams.post(invoke("shifts_map", open_map["data"]))
    assert status == 200 and body["statusCode"] == 200
    [box] = _find(body["value"], "Input.Text")
    assert box["id"] == "u" and "Cy Roe" in box["label"]
    [button] = [b for b in _find(body["value"], "Action.Execute") if b["verb"] == "shifts_upn"]
    # Teams merges the box's text into the button's data, under the box's id.
    status, body = await teams.post(invoke("shifts_upn", {**button["data"], "u": "not a sign-in"}))
    assert status == 200 and "is not a Microsoft sign-in" in str(body["value"])
    # No practice-wide Outlook connection here: the sign-in is stored, and checked at publish.
    status, body = await teams.post(invoke("shifts_upn", {**button["data"], "u": "Cy@Clinic.example"}))
    assert status == 200 and "Cy Roe's shifts go to cy@clinic.example" in str(body["value"])
    assert _find(body["value"], "Input.Text") == []  # nobody left without a sign-in
    async with teams.core.store.session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "shifts.map_person"))
        assert entry is not None and entry.actor.startswith("teams:") and entry.after["upn"] == "cy@clinic.example"

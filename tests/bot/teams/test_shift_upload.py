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

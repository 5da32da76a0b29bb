"""Files of a tracked Outlook event, end to end: Dr Lee connects Outlook from Slack as a work
calendar, tracks an event, and `files A-n` answers with short-lived signed links on the bot (no
bytes in chat). Opening one fetches the file from Graph and keeps it encrypted (no plaintext in the
database or on disk); opening it again serves the copy; at day 7 (a controlled clock) the audited
retention job deletes it and `status` counts it; opening after that fetches it from Graph again.
Size and type are checked; forged and expired links are refused."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, text

from sync.services.attachments import KEEP, MAX_BYTES, purge_expired
from sync.services.connections import set_calendar
from sync.store.model import AttachmentCopy, AuditEntry
from tests.adapters.graph.conftest import TENANT
from tests.adapters.graph.fakes.graph import GraphFake
from tests.adapters.nylas.test_tracked_events import activities, ask, work_ref
from tests.e2e.conftest import NOW, at
from tests.e2e.test_oauth_connect import (
    Clinic,
    fake_slack,
    graph,
    graph_clinic,
    practitioner_connects,
    sign_in_link,
)

__all__ = ["fake_slack", "graph", "graph_clinic"]  # fixtures, used by name

TITLE = "Outreach lunch: Northside GPs"
LETTER = b"%PDF-1.4 referral letter for Kofi Osei " + os.urandom(32).hex().encode()


def links(answer: str) -> list[str]:
    return re.findall(r"https?://[^\s\"\\]+/files/[A-Za-z0-9_\-.]+", json.loads(answer)["text"])


@pytest.fixture
async def tracked(graph_clinic: Clinic, graph: GraphFake) -> AsyncIterator[tuple[Clinic, GraphFake, int]]:
    """Outlook connected from chat, its calendar made a work calendar, one event with files, tracked."""
    clinic = graph_clinic
    mailbox = graph.add_user("dr.lee@clinic.example", tenant_id=TENANT)
    link = sign_in_link(await practitioner_connects(clinic, "outlook"),
                        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize?")
    back = graph.login.approve(link, mailbox.user.upn)
    async with clinic.browser.get(f"{clinic.base_url}/oauth/graph/callback?{urlencode(back)}") as page:
        assert page.status == 200, await page.text()
    [calendar] = await clinic.calendars()
    await set_calendar(clinic.core, calendar.id, role="work", actor="cli:test")
    start, end = at(12).astimezone(UTC), at(13).astimezone(UTC)
    event = graph.put_event(mailbox, {
        "subject": TITLE,
        "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
        "end": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}})
    graph.add_attachment(mailbox, event.id, "Referral letter.pdf", "application/pdf", LETTER)
    graph.add_attachment(mailbox, event.id, "page.html", "text/html", b"<script>alert(1)</script>")
    graph.add_attachment(mailbox, event.id, "scan.png", "image/png", b"\x89PNG" + b"0" * (MAX_BYTES + 1))
    graph.add_attachment(mailbox, event.id, "Forwarded", "message/rfc822", b"x",
                         kind="#microsoft.graph.itemAttachment")
    agenda = await ask(clinic, "today", "UP", "agenda")
    tracked = await ask(clinic, f"track {work_ref(agenda, TITLE)}", "UP", "track")
    [activity] = await activities(clinic)
    assert f"A-{activity.id}" in tracked, tracked
    yield clinic, graph, activity.id


async def fetch(clinic: Clinic, url: str) -> tuple[int, bytes, dict[str, str]]:
    async with clinic.browser.get(url) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_files_cached_served_expired_and_fetched_again(tracked: tuple[Clinic, GraphFake, int],
                                                            tmp_path: Path) -> None:
    clinic, fake, activity = tracked
    answer = await ask(clinic, f"files A-{activity}", "UP", "files-1")
    assert "Referral letter.pdf" in answer and "page.html: not handed out here" in answer, answer
    assert "scan.png: not handed out here, larger than 10 MB" in answer and "Forwarded" not in answer
    assert LETTER.decode() not in answer  # a link, never the bytes
    [url] = links(answer)
    assert url.startswith(clinic.base_url + "/files/")

    # Opened: fetched from Graph, served as a download, kept encrypted.
    reads = len(fake.attachment_reads)
    status, body, headers = await fetch(clinic, url)
    assert status == 200 and body == LETTER
    assert headers["Content-Type"] == "application/pdf" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith('attachment; filename="Referral letter.pdf"')
    assert len(fake.attachment_reads) == reads + 1
    async with clinic.core.store.session() as s:
        [copy] = (await s.scalars(select(AttachmentCopy))).all()
        raw = (await s.execute(text("SELECT filename, content FROM attachment_copy"))).one()
    assert copy.expires_at == NOW + KEEP and copy.size == len(LETTER)
    assert "Referral" not in raw[0] and LETTER.decode() not in raw[1] and b"%PDF" not in raw[1].encode()
    for path in tmp_path.rglob("*"):  # the SQLite file and its journal hold no plaintext either
        if path.is_file():
            data = path.read_bytes()
            assert LETTER not in data and b"Referral letter" not in data, path

    # Opened again: the kept copy, no call to Graph.
    assert (await fetch(clinic, url))[1] == LETTER and len(fake.attachment_reads) == reads + 1

    # Day 7: the retention job deletes it, audited, counted in status.
    clinic.core.clock = lambda: NOW + KEEP
    assert await purge_expired(clinic.core) == 1
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(AttachmentCopy))).all() == []
        [purged] = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "attachment.purged"))).all()
    assert purged.details == {"count": 1, "older_than_days": 7}
    status_text = await ask(clinic, "status", "US", "status")
    assert "0 kept (7 days at most) \\u00b7 1 deleted by the last retention run" in status_text, status_text

    # The old link has expired; a fresh one fetches the file from Graph again.
    old = await fetch(clinic, url)
    assert old[0] == 400 and b"expired" in old[1]
    [fresh] = links(await ask(clinic, f"files A-{activity}", "UP", "files-2"))
    assert (await fetch(clinic, fresh))[1] == LETTER and len(fake.attachment_reads) == reads + 3
    async with clinic.core.store.session() as s:
        [copy] = (await s.scalars(select(AttachmentCopy))).all()
    assert copy.expires_at == NOW + KEEP + KEEP


async def test_forged_links_and_untracked_activities_get_nothing(tracked: tuple[Clinic, GraphFake, int]) -> None:
    clinic, _, activity = tracked
    [url] = links(await ask(clinic, f"files A-{activity}", "UP", "files"))
    _, mac = url.rsplit("/", 1)[1].split(".")
    forged = url.replace(mac, "0" * len(mac))
    status, page, _ = await fetch(clinic, forged)
    assert status == 400 and b"not valid" in page
    assert (await fetch(clinic, url))[0] == 200

    # Untracked: its kept copy goes at once, and the link serves nothing.
    assert "no longer tracked" in await ask(clinic, f"untrack A-{activity}", "UP", "untrack")
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(AttachmentCopy))).all() == []
    status, page, _ = await fetch(clinic, url)
    assert status == 404 and b"not a tracked activity" in page
    # Someone without a role cannot list files.
    assert "no role" in await ask(clinic, f"files A-{activity}", "UX", "stranger")
    assert clinic.core.clock() - NOW < timedelta(minutes=1)

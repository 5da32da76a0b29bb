"""Files of a tracked Google event, end to end: Dr Lee connects Google from Slack with
`--attachments on` (Drive read access, asked by incremental authorization), makes the calendar a
work calendar and tracks an event whose files live in Drive. `files A-n` answers with signed links;
opening one fetches it from Drive (a Google Doc as PDF) and keeps it encrypted; opening again serves
the copy; at day 7 (a controlled clock) the retention job deletes it; after that it comes from Drive
again. Without Drive access, `files` says exactly what to type, nothing is asked of Drive and
nothing is kept; connecting again with the option (same account) makes it work."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text

from adapters.google.auth import DRIVE_SCOPE
from sync.services.attachments import KEEP, MAX_BYTES, purge_expired
from sync.services.connections import set_calendar
from sync.services.settings import SettingError, set_option
from sync.store.model import AttachmentCopy
from tests.adapters.google.conftest import PRIMARY
from tests.adapters.google.fakes.google import GoogleFake
from tests.adapters.graph.test_tracked_attachments import fetch
from tests.adapters.nylas.test_tracked_events import activities, ask, work_ref
from tests.e2e.conftest import NOW, TZ, at
from tests.e2e.test_oauth_connect import Clinic, fake_slack, google, google_clinic, sign_in_link

__all__ = ["fake_slack", "google", "google_clinic"]  # fixtures, used by name

TITLE = "Outreach lunch: Northside GPs"
LETTER = b"%PDF-1.4 referral letter (test document) " + b"x" * 64


def links(answer: str) -> list[str]:
    """The file links of a Slack answer, in order (read from its blocks: the fallback text is cut short)."""
    found = re.findall(r"https?://[^\s\"\\]+/files/[A-Za-z0-9_\-.]+", json.dumps(json.loads(answer)["blocks"]))
    return list(dict.fromkeys(found))


async def sign_in(clinic: Clinic, fake: GoogleFake, command: str, user: str = "UP") -> dict[str, list[str]]:
    """`command` typed in Slack, its sign-in link followed (the fake consents); the link's query."""
    link = sign_in_link(await ask(clinic, command, user, f"c-{len(fake.oauth.codes)}"),
                        f"{fake.url}/o/oauth2/v2/auth?")
    async with clinic.browser.get(link) as page:
        assert page.status == 200, await page.text()
    return parse_qs(urlsplit(link).query)


async def track_event_with_files(clinic: Clinic, fake: GoogleFake) -> int:
    [calendar] = [c for c in await clinic.calendars() if c.remote_id == PRIMARY]
    await set_calendar(clinic.core, calendar.id, role="work", actor="cli:test")
    fake.drive.add("1pdfLetter", "Referral letter.pdf", "application/pdf", LETTER)
    fake.drive.add("1docNotes", "Visit notes", "application/vnd.google-apps.document", b"shared notes")
    fake.drive.add("1bigScan", "scan.png", "image/png", b"\x89PNG" + b"0" * (MAX_BYTES + 1))
    fake.drive.add("1webPage", "page.html", "text/html", b"<script>alert(1)</script>")
    fake.server_insert(PRIMARY, {
        "summary": TITLE,
        "start": {"dateTime": at(12).isoformat(), "timeZone": TZ},
        "end": {"dateTime": at(13).isoformat(), "timeZone": TZ},
        "attachments": [fake.drive.attachment(i) for i in ("1pdfLetter", "1docNotes", "1bigScan", "1webPage")],
    })
    agenda = await ask(clinic, "today", "UP", "agenda")
    answer = await ask(clinic, f"track {work_ref(agenda, TITLE)}", "UP", "track")
    [activity] = await activities(clinic)
    assert f"A-{activity.id}" in answer, answer
    return activity.id


@pytest.fixture
async def granted(google_clinic: Clinic, google: GoogleFake) -> AsyncIterator[tuple[Clinic, GoogleFake, int]]:
    """Google connected from chat by Dr Lee with `--attachments on`, an event with files tracked."""
    await ask(google_clinic, "role grant practitioner <@UP|pat> @dr-lee", "US", "grant")
    query = await sign_in(google_clinic, google, "connect google --attachments on")
    assert query["scope"] == [f"https://www.googleapis.com/auth/calendar {DRIVE_SCOPE}"]
    assert query["include_granted_scopes"] == ["true"]
    yield google_clinic, google, await track_event_with_files(google_clinic, google)


async def test_drive_files_cached_served_expired_and_fetched_again(granted: tuple[Clinic, GoogleFake, int]) -> None:
    clinic, fake, activity = granted
    answer = await ask(clinic, f"files A-{activity}", "UP", "files-1")
    assert "Referral letter.pdf" in answer and "Visit notes.pdf" in answer, answer
    assert "scan.png: not handed out here, larger than 10 MB" in answer
    assert "page.html: not handed out here" in answer and LETTER.decode() not in answer
    letter_url, notes_url = links(answer)

    status, body, headers = await fetch(clinic, letter_url)
    assert status == 200 and body == LETTER and headers["Content-Type"] == "application/pdf"
    status, body, headers = await fetch(clinic, notes_url)  # a Google Doc, exported as PDF
    assert status == 200 and body == b"%PDF-1.4 export of shared notes"
    assert headers["Content-Disposition"].startswith('attachment; filename="Visit notes.pdf"')
    assert fake.drive.reads == [("1pdfLetter", "media"), ("1docNotes", "export")]
    async with clinic.core.store.session() as s:
        copies = (await s.scalars(select(AttachmentCopy))).all()
        raw = (await s.execute(text("SELECT filename, content FROM attachment_copy"))).all()
    assert {c.remote_id for c in copies} == {"1pdfLetter", "1docNotes"}
    assert all(c.expires_at == NOW + KEEP for c in copies)
    assert all("Referral" not in name and "%PDF" not in content for name, content in raw)

    # Opened again: the kept copy, nothing asked of Drive.
    assert (await fetch(clinic, letter_url))[1] == LETTER and len(fake.drive.reads) == 2

    # Day 7: the retention job deletes both; a fresh link fetches from Drive again.
    clinic.core.clock = lambda: NOW + KEEP
    assert await purge_expired(clinic.core) == 2
    assert (await fetch(clinic, letter_url))[0] == 400  # the old link has expired too
    fresh, _ = links(await ask(clinic, f"files A-{activity}", "UP", "files-2"))
    assert (await fetch(clinic, fresh))[1] == LETTER
    assert fake.drive.reads[-1] == ("1pdfLetter", "media") and len(fake.drive.reads) == 3


async def test_without_drive_access_files_says_what_to_do_then_works(
    google_clinic: Clinic, google: GoogleFake
) -> None:
    clinic = google_clinic
    await ask(clinic, "role grant practitioner <@UP|pat> @dr-lee", "US", "grant")
    query = await sign_in(clinic, google, "connect google")
    assert DRIVE_SCOPE not in query["scope"][0]
    activity = await track_event_with_files(clinic, google)
    # An admin cannot switch it on for the person: it is what their sign-in grants.
    with pytest.raises(SettingError, match="connect google --attachments on"):
        await set_option(clinic.core, None, (await clinic.connection()).id, "attachments", "on", actor="cli:test")

    answer = await ask(clinic, f"files A-{activity}", "UP", "files-1")
    assert "Google Drive access was not granted" in answer and "connect google --attachments on" in answer, answer
    assert not links(answer)
    assert not [r for r in google.requests if r.path.startswith("/drive/")]
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(AttachmentCopy))).all() == []

    # The person opts in (no admin needed for their own Drive); the same connection gets the wider grant.
    before = await clinic.connection()
    query = await sign_in(clinic, google, "connect google --attachments on")
    assert DRIVE_SCOPE in query["scope"][0] and query["include_granted_scopes"] == ["true"]
    assert (await clinic.connection()).id == before.id
    [letter_url, _] = links(await ask(clinic, f"files A-{activity}", "UP", "files-2"))
    assert (await fetch(clinic, letter_url))[1] == LETTER


async def test_a_grant_narrowed_after_the_link_was_given_keeps_nothing(
    granted: tuple[Clinic, GoogleFake, int]
) -> None:
    clinic, fake, activity = granted
    letter_url, _ = links(await ask(clinic, f"files A-{activity}", "UP", "files"))
    for grant in fake.oauth.refresh_tokens.values():  # Drive access removed in the Google account
        grant.scope = "https://www.googleapis.com/auth/calendar"
    for token in fake.oauth.access_tokens.values():
        token.scope = grant.scope
    status, page, _ = await fetch(clinic, letter_url)
    assert status == 403 and b"connect google --attachments on" in page, page
    assert fake.drive.reads == []
    async with clinic.core.store.session() as s:
        assert (await s.scalars(select(AttachmentCopy))).all() == []

"""The Drive files attached to Google events (adapters.google.drive) against the fake: listed from the
event, stored files downloaded, Google Docs exported as PDF, the size limit kept while streaming, and
Drive's errors (no scope, a narrowed grant, 401, 404, 429 with Retry-After) mapped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.google.auth import DRIVE_SCOPE, SCOPES
from adapters.google.drive import NEED_DRIVE
from adapters.google.provider import GoogleCalendar
from adapters.kit.http import RetryPolicy
from sync.contract import ConnectionInfo, NotFound, NotGranted, RateLimited, Refused
from sync.runtime.settings import Settings
from tests.adapters.google.conftest import PRIMARY, Saved, Sleeps
from tests.adapters.google.fakes.google import GoogleFake

LETTER = b"%PDF-1.4 referral letter, test content"
BOTH = " ".join((*SCOPES, DRIVE_SCOPE))


def provider(fake: GoogleFake, settings: Settings, saved: Saved, sleeps: Sleeps, scope: str) -> GoogleCalendar:
    conn = ConnectionInfo("google", PRIMARY, {}, fake.oauth.grant(scope), save_credentials=saved)
    return GoogleCalendar(conn, PRIMARY, settings, policy=RetryPolicy(attempts=3, backoff=0.01, max_wait=5.0),
                          sleep=sleeps)


@pytest.fixture
async def drive_calendar(fake: GoogleFake, gsettings: Settings, saved: Saved,
                         sleeps: Sleeps) -> AsyncIterator[GoogleCalendar]:
    cal = provider(fake, gsettings, saved, sleeps, BOTH)
    try:
        yield cal
    finally:
        await cal.aclose()


def event_with_files(fake: GoogleFake) -> str:
    fake.drive.add("1pdfLetter", "Referral letter.pdf", "application/pdf", LETTER)
    fake.drive.add("1docNotes", "Visit notes", "application/vnd.google-apps.document", b"notes text")
    fake.drive.add("1formSurvey", "Feedback", "application/vnd.google-apps.form", b"")
    attachments = [fake.drive.attachment(i) for i in ("1pdfLetter", "1docNotes", "1formSurvey")]
    attachments.append({"fileUrl": "https://example.org/agenda", "title": "Agenda (a link)"})
    attachments.append({"fileId": "1goneFile", "fileUrl": "https://drive.google.com/open?id=1goneFile",
                        "title": "Removed", "mimeType": "application/pdf"})
    made = fake.server_insert(PRIMARY, {
        "summary": "Outreach lunch", "attachments": attachments,
        "start": {"dateTime": "2030-01-07T12:00:00Z"}, "end": {"dateTime": "2030-01-07T13:00:00Z"}})
    return str(made["id"])


async def test_files_listed_downloaded_and_exported(fake: GoogleFake, drive_calendar: GoogleCalendar) -> None:
    event = event_with_files(fake)
    listed = {f.remote_id: f for f in await drive_calendar.attachments(event)}
    # The link and the file Drive no longer has are not files to hand out.
    assert set(listed) == {"1pdfLetter", "1docNotes", "1formSurvey"}
    assert (listed["1pdfLetter"].name, listed["1pdfLetter"].size) == ("Referral letter.pdf", len(LETTER))
    assert (listed["1docNotes"].name, listed["1docNotes"].content_type) == ("Visit notes.pdf", "application/pdf")
    assert listed["1formSurvey"].content_type == "application/vnd.google-apps.form"

    got = await drive_calendar.attachment(event, "1pdfLetter", 10_000)
    assert got.content == LETTER and got.info.content_type == "application/pdf"
    doc = await drive_calendar.attachment(event, "1docNotes", 10_000)
    assert doc.content == b"%PDF-1.4 export of notes text" and doc.info.name == "Visit notes.pdf"
    assert fake.drive.reads == [("1pdfLetter", "media"), ("1docNotes", "export")]


async def test_size_limit_and_files_no_longer_attached(fake: GoogleFake, drive_calendar: GoogleCalendar) -> None:
    event = event_with_files(fake)
    with pytest.raises(Refused, match="larger than"):
        await drive_calendar.attachment(event, "1pdfLetter", len(LETTER) - 1)
    with pytest.raises(Refused, match="larger than"):  # an export's size is known only while it streams
        await drive_calendar.attachment(event, "1docNotes", 10)
    assert fake.drive.reads == [("1docNotes", "export")]  # the stored file was refused before its download
    fake.drive.add("1other", "Someone else's.pdf", "application/pdf", b"%PDF other")
    with pytest.raises(NotFound):  # a signed link names a file of this event, not any file of the Drive
        await drive_calendar.attachment(event, "1other", 10_000)
    with pytest.raises(NotFound):
        await drive_calendar.attachment(event, "1goneFile", 10_000)


async def test_without_the_drive_scope_nothing_is_asked_of_drive(
    fake: GoogleFake, gsettings: Settings, saved: Saved, sleeps: Sleeps
) -> None:
    event = event_with_files(fake)
    cal = provider(fake, gsettings, saved, sleeps, " ".join(SCOPES))
    try:
        with pytest.raises(NotGranted) as caught:
            await cal.attachments(event)
        assert str(caught.value) == NEED_DRIVE and "connect google --attachments on" in NEED_DRIVE
        with pytest.raises(NotGranted):
            await cal.attachment(event, "1pdfLetter", 10_000)
    finally:
        await cal.aclose()
    assert not [r for r in fake.requests if r.path.startswith("/drive/")]


async def test_a_grant_narrowed_since_gets_the_same_advice(fake: GoogleFake, drive_calendar: GoogleCalendar) -> None:
    event = event_with_files(fake)
    assert len(await drive_calendar.attachments(event)) == 3
    for token in fake.oauth.access_tokens.values():  # the token in hand no longer carries Drive
        token.scope = " ".join(SCOPES)
    with pytest.raises(NotGranted) as caught:  # Drive's 403 insufficientPermissions
        await drive_calendar.attachment(event, "1pdfLetter", 10_000)
    assert str(caught.value) == NEED_DRIVE and fake.drive.reads == []
    for grant in fake.oauth.refresh_tokens.values():  # Drive unticked in the Google account
        grant.scope = " ".join(SCOPES)
    fake.oauth.expire_access_tokens()
    with pytest.raises(NotGranted):  # the refreshed grant lists no Drive scope: Drive is not asked
        await drive_calendar.attachment(event, "1pdfLetter", 10_000)
    assert fake.drive.reads == []


async def test_expired_token_refreshed_and_throttles_honoured(
    fake: GoogleFake, drive_calendar: GoogleCalendar, saved: Saved
) -> None:
    event = event_with_files(fake)
    fake.oauth.expire_access_tokens()
    fake.throttle(1, status=429, retry_after="0", path="/drive/")
    got = await drive_calendar.attachment(event, "1pdfLetter", 10_000)
    assert got.content == LETTER and saved.documents  # refreshed after the 401, retried after the 429
    assert fake.throttles[0].count == 0
    fake.throttle(1, status=429, retry_after="3600", path="/drive/")
    with pytest.raises(RateLimited) as caught:
        await drive_calendar.attachment(event, "1pdfLetter", 10_000)
    assert caught.value.retry_after == 3600

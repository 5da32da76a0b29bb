"""Files attached to tracked activities' calendar events: listed from the provider, handed out as
short-lived signed links on the bot, fetched when a link is opened, and cached encrypted for at most
`KEEP` (7 days).

- `files` lists an activity's attachments (read live from the work calendar) with one signed link
  each (`LINK_TTL`); the chat never gets the file's bytes.
- Opening a link serves the cached copy while it is younger than `KEEP`; otherwise it fetches the
  file from the provider again (never a stale copy), checks its size and type, and keeps it
  (AttachmentCopy: name and bytes encrypted, so the database holds no plaintext).
- `purge_expired` (a periodic job) deletes copies past their time, audited with its count, which
  `status` shows. Untracking an activity deletes its copies at once.

Only calendars whose platform has event attachments offer them (Outlook through Graph; Google,
whose files live in Drive and are read only when the person allowed it at connect, else NotGranted
says how; Nylas's events carry no files, so its calendars say so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from sync.contract import EventAttachments
from sync.integrations.providers import open_provider
from sync.runtime.core import Core
from sync.services.errors import Denied, Invalid, NotFound
from sync.store import audit
from sync.store.crypto import current_box
from sync.store.model import ACTIVITY, Appointment, AttachmentCopy, AuditEntry, Calendar, Connection, Link

__all__ = [
    "KEEP",
    "LINK_TTL",
    "MAX_BYTES",
    "PURGE_EVERY_SECONDS",
    "FileLink",
    "FileList",
    "Served",
    "attachment_counts",
    "list_files",
    "open_file",
    "purge_expired",
    "purge_job",
    "sign_link",
]

#: The longest a fetched file is kept (the issue's "7 days at most").
KEEP = timedelta(days=7)
#: How long a link handed to the chat works.
LINK_TTL = timedelta(minutes=15)
#: Files larger than this are not fetched (Outlook's own limit for event attachments is 3 MB
#: through a plain POST, 150 MB through upload sessions).
MAX_BYTES = 10 * 1024 * 1024
PURGE_EVERY_SECONDS = 3600.0
#: Types served as downloads; anything a browser would run (HTML, SVG, scripts) is refused.
ALLOWED_TYPES = frozenset({
    "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "text/csv",
    "text/calendar", "application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/rtf", "application/zip",
})
_OFFICE = "application/vnd.openxmlformats-officedocument."
_PURGE_ACTOR = "system:retention"


@dataclass(frozen=True, slots=True)
class FileLink:
    name: str
    size: int
    url: str
    #: Refused before fetching (too large, a type that is not served): why, for the chat.
    refused: str = ""


@dataclass(frozen=True, slots=True)
class FileList:
    ref: str
    files: tuple[FileLink, ...]
    expires: datetime


@dataclass(frozen=True, slots=True)
class Served:
    name: str
    content_type: str
    content: bytes
    cached: bool


def _allowed(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base in ALLOWED_TYPES or base.startswith(_OFFICE)


def _refusal(size: int, content_type: str) -> str:
    if size > MAX_BYTES:
        return f"larger than {MAX_BYTES // (1024 * 1024)} MB"
    if not _allowed(content_type):
        return f"a {content_type.split(';', 1)[0]} file, which is not handed out"
    return ""


def _mac(body: str) -> str:
    return hmac.new(current_box().derive("attachment-link"), body.encode(), hashlib.sha256).hexdigest()[:32]


def sign_link(appointment_id: int, attachment_id: str, expires: datetime) -> str:
    """A URL-safe token naming one attachment of one activity until `expires`, signed."""
    raw = json.dumps([appointment_id, attachment_id, int(expires.timestamp())], separators=(",", ":"))
    body = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return f"{body}.{_mac(body)}"


def _read_link(token: str, now: datetime) -> tuple[int, str]:
    if len(token) > 2000 or token.count(".") != 1:
        raise Invalid("this file link is not valid")
    body, mac = token.split(".")
    if not hmac.compare_digest(mac, _mac(body)):
        raise Invalid("this file link is not valid")
    try:
        appt_id, att_id, expires = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise Invalid("this file link is not valid") from None
    if not isinstance(appt_id, int) or not isinstance(att_id, str) or not isinstance(expires, int):
        raise Invalid("this file link is not valid")
    if expires < now.timestamp():
        raise Invalid("this file link has expired; ask for the files again in chat (`files A-12`)")
    return appt_id, att_id


async def _source(core: Core, appointment_id: int) -> tuple[Appointment, Calendar, Connection, str]:
    async with core.store.session() as s:
        row = (await s.execute(
            select(Appointment, Calendar, Connection, Link.remote_id)
            .join(Link, (Link.appointment_id == Appointment.id) & (Link.calendar_id == Appointment.source_calendar_id))
            .join(Calendar, Calendar.id == Link.calendar_id).join(Connection, Connection.id == Calendar.connection_id)
            .where(Appointment.id == appointment_id, Appointment.kind == ACTIVITY))).tuples().first()
    if row is None or row[3] is None:
        raise NotFound(f"A-{appointment_id} is not a tracked activity (any more); its files are not kept")
    appt, cal, conn, remote_id = row
    return appt, cal, conn, str(remote_id)


async def list_files(core: Core, practice_id: int, appointment_id: int, *,
                     only_practitioner: int | None = None) -> FileList:
    """The activity's attachments, read live, each with a signed link (or why it is not handed out)."""
    appt, cal, conn, remote_id = await _source(core, appointment_id)
    if appt.practice_id != practice_id:
        raise NotFound(f"A-{appointment_id} is not a tracked activity (any more); its files are not kept")
    if only_practitioner is not None and appt.practitioner_id != only_practitioner:
        raise Denied("you can open the files of your own activities; staff can open any")
    provider = open_provider(core, conn, cal)
    try:
        if not isinstance(provider, EventAttachments):
            raise Invalid(f"{conn.provider} calendars keep no files on their events, so A-{appointment_id} has none")
        found = await provider.attachments(remote_id)
    finally:
        await provider.aclose()
    expires = core.clock() + LINK_TTL
    if not core.settings.public_url:
        raise Invalid("files are handed out as links on the bot, and CLINICBOT_PUBLIC_URL is not set; ask the admin")
    base = core.settings.public_url.rstrip("/")
    links = tuple(FileLink(f.name, f.size, "" if (why := _refusal(f.size, f.content_type)) else
                           f"{base}/files/{sign_link(appointment_id, f.remote_id, expires)}", why) for f in found)
    return FileList(appt.ref, links, expires)


async def open_file(core: Core, token: str) -> Served:
    """The file a link names: the cached copy while it is kept, else fetched from the provider again."""
    now = core.clock()
    appt_id, att_id = _read_link(token, now)
    async with core.store.session() as s:
        kept = await s.scalar(select(AttachmentCopy).where(
            AttachmentCopy.appointment_id == appt_id, AttachmentCopy.remote_id == att_id,
            AttachmentCopy.expires_at > now))
        if kept is not None:
            return Served(kept.filename, kept.content_type, kept.content, True)
    appt, cal, conn, remote_id = await _source(core, appt_id)
    provider = open_provider(core, conn, cal)
    try:
        if not isinstance(provider, EventAttachments):
            raise NotFound("this calendar keeps no files on its events")
        got = await provider.attachment(remote_id, att_id, MAX_BYTES)
    finally:
        await provider.aclose()
    why = _refusal(max(got.info.size, len(got.content)), got.info.content_type)
    if why:
        raise Invalid(f"that file is {why}; open it in the calendar itself")
    async with core.store.session() as s:
        await s.execute(delete(AttachmentCopy).where(AttachmentCopy.appointment_id == appt_id,
                                                     AttachmentCopy.remote_id == att_id))
        s.add(AttachmentCopy(practice_id=appt.practice_id, appointment_id=appt_id, remote_id=att_id,
                             filename=got.info.name, content_type=got.info.content_type, size=len(got.content),
                             content=got.content, fetched_at=now, expires_at=now + KEEP))
        await audit.record(s, actor="system:files", action="attachment.fetched", practice_id=appt.practice_id,
                           appointment_id=appt_id, details={"size": len(got.content),
                                                            "content_type": got.info.content_type})
        try:
            await s.flush()
        except IntegrityError:  # another request stored it a moment ago: serve what we fetched
            await s.rollback()
    return Served(got.info.name, got.info.content_type, got.content, False)


async def purge_expired(core: Core) -> int:
    """Delete every copy past its time (audited with the count, per practice); how many went."""
    now = core.clock()
    total = 0
    async with core.store.session() as s:
        per_practice = (await s.execute(
            select(AttachmentCopy.practice_id, func.count()).where(AttachmentCopy.expires_at <= now)
            .group_by(AttachmentCopy.practice_id))).tuples().all()
        for practice_id, count in per_practice:
            await s.execute(delete(AttachmentCopy).where(AttachmentCopy.practice_id == practice_id,
                                                         AttachmentCopy.expires_at <= now))
            await audit.record(s, actor=_PURGE_ACTOR, action="attachment.purged", practice_id=practice_id,
                               details={"count": int(count), "older_than_days": KEEP.days})
            total += int(count)
    return total


async def purge_job(core: Core) -> None:
    """The periodic retention job."""
    await purge_expired(core)


async def attachment_counts(core: Core, practice_id: int) -> tuple[int, int]:
    """(copies kept now, copies the last retention run deleted) for `status`."""
    async with core.store.session() as s:
        kept = await s.scalar(select(func.count()).select_from(AttachmentCopy)
                              .where(AttachmentCopy.practice_id == practice_id)) or 0
        last = await s.scalar(select(AuditEntry.details).where(
            AuditEntry.practice_id == practice_id, AuditEntry.action == "attachment.purged")
            .order_by(AuditEntry.seq.desc()).limit(1))
    purged = last.get("count", 0) if isinstance(last, dict) else 0
    return int(kept), int(purged)

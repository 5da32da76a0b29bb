"""The files attached to Google Calendar events, read from Google Drive (sync.contract.EventAttachments).

An event lists its files in `attachments[]` (`fileId`, `fileUrl`, `title`, `mimeType`, `iconLink`);
the bytes live in Drive:

- a stored file (PDF, image, Office document) is read with `files.get?alt=media`, as a stream
  given up past the size limit;
- a Google Docs, Sheets, Slides or Drawings file has no bytes of its own: it is exported as PDF
  (`files/{id}/export?mimeType=application/pdf`), one format every device opens, with no macros
  or formulas; Drive exports at most 10 MB. Other Google-native kinds (forms, folders, shortcuts,
  sites) are listed with their own type, which clinicbot does not hand out.

Reading Drive needs the `drive.readonly` scope, which a person grants only by connecting with
`--attachments on` (adapters.google.auth.DRIVE_SCOPE). Without it, nothing is asked of Drive and
NotGranted says what to type; a 403 insufficientPermissions from Drive (a grant narrowed since)
says the same. A file is fetched only while it is still attached to the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from adapters.google.auth import DRIVE_READ_SCOPES
from adapters.google.client import GoogleClient
from sync.contract import AttachmentFile, AttachmentInfo, BadPayload, NotFound, NotGranted, Refused

__all__ = ["EXPORT_AS", "NEED_DRIVE", "GoogleDrive"]

log = logging.getLogger("clinicbot.google")
PROVIDER = "google"
FILES = "/drive/v3/files"
NATIVE = "application/vnd.google-apps."
#: Google-native kinds clinicbot exports, and as what.
EXPORT_AS = {
    f"{NATIVE}document": "application/pdf",
    f"{NATIVE}spreadsheet": "application/pdf",
    f"{NATIVE}presentation": "application/pdf",
    f"{NATIVE}drawing": "application/pdf",
}
NEED_DRIVE = (
    "Google Drive access was not granted to clinicbot, so the files attached to this Google event cannot be "
    "opened from chat. The calendar's owner can allow it: type `connect google --attachments on` and sign in "
    "again with the same Google account (Google asks to let clinicbot see and download Drive files); the "
    "calendars and tracked events stay as they are."
)
_FIELDS = "id,name,mimeType,size,trashed"


class GoogleDrive:
    """Drive reads for one Google connection, with the same bearer auth as its Calendar client."""

    def __init__(self, api: GoogleClient, scopes: Callable[[], frozenset[str]]) -> None:
        self.api = api
        self._scopes = scopes

    def check_grant(self) -> None:
        """NotGranted (saying what to type) unless the grant lets clinicbot read Drive."""
        if not self._scopes() & DRIVE_READ_SCOPES:
            raise NotGranted(NEED_DRIVE, provider=PROVIDER)

    async def _call(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            body = await self.api.request("GET", path, params=params)
        except NotGranted:
            raise NotGranted(NEED_DRIVE, provider=PROVIDER) from None
        if not body:
            raise BadPayload("google: Drive answered with no file", provider=PROVIDER)
        return body

    async def info(self, file_id: str, title: str = "") -> tuple[AttachmentInfo, bool] | None:
        """What Drive says of one attached file, and whether it is exported (Google-native); None when
        it is gone, trashed or not shared with the account."""
        self.check_grant()
        try:
            meta = await self._call(f"{FILES}/{quote(file_id, safe='')}",
                                    {"fields": _FIELDS, "supportsAllDrives": "true"})
        except NotFound:
            return None
        if meta.get("trashed") is True:
            return None
        kind = str(meta.get("mimeType") or "application/octet-stream")
        name = str(meta.get("name") or title or "attachment")
        if kind in EXPORT_AS:
            return AttachmentInfo(file_id, f"{name}.pdf", EXPORT_AS[kind], 0), True
        try:
            size = int(meta.get("size") or 0)
        except (TypeError, ValueError):
            raise BadPayload("google: Drive file size is not a number", provider=PROVIDER) from None
        return AttachmentInfo(file_id, name, kind, size), False

    async def list(self, attachments: list[dict[str, Any]]) -> list[AttachmentInfo]:
        """The Drive files among an event's attachments (links without a fileId are not files)."""
        self.check_grant()
        found: list[AttachmentInfo] = []
        for entry in attachments:
            file_id = entry.get("fileId")
            if not isinstance(file_id, str) or not file_id:
                continue
            read = await self.info(file_id, str(entry.get("title") or ""))
            if read is None:
                log.info("attached Drive file not readable", extra={"reason": "gone or not shared"})
                continue
            found.append(read[0])
        return found

    async def fetch(self, info: AttachmentInfo, native: bool, max_bytes: int) -> AttachmentFile:
        """One file's bytes (exported as PDF when Google-native); Refused past `max_bytes`."""
        self.check_grant()
        if info.size > max_bytes:
            raise Refused(f"google: the file is larger than {max_bytes} bytes", provider=PROVIDER)
        path = f"{FILES}/{quote(info.remote_id, safe='')}"
        params = {"mimeType": info.content_type} if native else {"alt": "media", "supportsAllDrives": "true"}
        try:
            content, _ = await self.api.download(f"{path}/export" if native else path, params=params,
                                                 max_bytes=max_bytes)
        except NotGranted:
            raise NotGranted(NEED_DRIVE, provider=PROVIDER) from None
        return AttachmentFile(AttachmentInfo(info.remote_id, info.name, info.content_type, len(content)), content)

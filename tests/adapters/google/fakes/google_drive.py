"""Google Drive v3 for the fake (tests/adapters/google/fakes/google.py): the files attached to Calendar events.

What clinicbot's Google adapter uses, with Drive's documented behaviour and error bodies:
- files.get (metadata; `size` is a string and absent for Google-native files), `alt=media` for stored
  files (403 fileNotDownloadable for Docs Editors files), files.export with a mimeType (400 for a
  stored file or an unsupported type; 403 exportSizeLimitExceeded past 10 MB);
- a token without a Drive read scope gets 403 insufficientPermissions ("Request had insufficient
  authentication scopes."); a file unknown or not shared with the account is 404 notFound.
Authorization (401) and throttles (429 with Retry-After) come from the fake's middleware.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from tests.adapters.google.fakes.google_oauth import AccessToken
from tests.adapters.google.fakes.google_store import ApiError

__all__ = ["DRIVE_READ", "DriveFake", "DriveFile"]

DRIVE_READ = frozenset({"https://www.googleapis.com/auth/drive.readonly", "https://www.googleapis.com/auth/drive"})
NATIVE = "application/vnd.google-apps."
EXPORTS = {
    f"{NATIVE}document": {"application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                          "text/plain"},
    f"{NATIVE}spreadsheet": {"application/pdf", "text/csv",
                             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    f"{NATIVE}presentation": {"application/pdf"},
    f"{NATIVE}drawing": {"application/pdf", "image/png"},
}
EXPORT_LIMIT = 10 * 1024 * 1024


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    content: bytes
    trashed: bool = False

    @property
    def native(self) -> bool:
        return self.mime_type.startswith(NATIVE)

    def resource(self) -> dict[str, object]:
        body: dict[str, object] = {"kind": "drive#file", "id": self.id, "name": self.name,
                                   "mimeType": self.mime_type, "trashed": self.trashed}
        if not self.native:
            body["size"] = str(len(self.content))
        return body


@dataclass
class DriveFake:
    files: dict[str, DriveFile] = field(default_factory=dict)
    #: (file id, "media" | "export") for every content read served.
    reads: list[tuple[str, str]] = field(default_factory=list)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/drive/v3/files/{id}/export", self.export),
            web.get("/drive/v3/files/{id}", self.get),
        ]

    def add(self, file_id: str, name: str, mime_type: str, content: bytes) -> DriveFile:
        self.files[file_id] = DriveFile(file_id, name, mime_type, content)
        return self.files[file_id]

    def attachment(self, file_id: str) -> dict[str, str]:
        """The event's `attachments[]` entry Google Calendar shows for one Drive file."""
        f = self.files[file_id]
        return {"fileId": f.id, "fileUrl": f"https://drive.google.com/open?id={f.id}", "title": f.name,
                "mimeType": f.mime_type, "iconLink": "https://drive-thirdparty.googleusercontent.com/16/type/x"}

    @staticmethod
    def check_scope(token: AccessToken | None) -> None:
        if token is None or not DRIVE_READ & set(token.scope.split()):
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")

    def _file(self, request: web.Request) -> DriveFile:
        file_id = request.match_info["id"]
        found = self.files.get(file_id)
        if found is None:
            raise ApiError(404, "notFound", f"File not found: {file_id}.", location_type="parameter",
                           location="fileId")
        return found

    async def get(self, request: web.Request) -> web.Response:
        f = self._file(request)
        if request.query.get("alt") != "media":
            return web.json_response(f.resource())
        if f.native:
            raise ApiError(403, "fileNotDownloadable",
                           "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                           location_type="parameter", location="alt")
        self.reads.append((f.id, "media"))
        return web.Response(body=f.content, content_type=f.mime_type)

    async def export(self, request: web.Request) -> web.Response:
        f = self._file(request)
        wanted = request.query.get("mimeType")
        if not wanted:
            raise ApiError(400, "required", "Required parameter: mimeType", location_type="parameter",
                           location="mimeType")
        if not f.native:
            raise ApiError(403, "fileNotExportable", "Export only supports Docs Editors files.")
        if wanted not in EXPORTS.get(f.mime_type, set()):
            raise ApiError(400, "badRequest", "The requested conversion is not supported.",
                           location_type="parameter", location="mimeType")
        body = b"%PDF-1.4 export of " + f.content if wanted == "application/pdf" else f.content
        if len(body) > EXPORT_LIMIT:
            raise ApiError(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        self.reads.append((f.id, "export"))
        return web.Response(body=body, content_type=wanted)

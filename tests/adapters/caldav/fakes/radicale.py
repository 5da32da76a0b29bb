"""A real Radicale CalDAV server on a random loopback port, for tests and benchmarks.

    with RadicaleServer(tmp_path, auth="htpasswd") as server:
        url = server.calendar_url("clinic", "main")
        await server.make_calendar("clinic", "main")
        await server.load_events("clinic", "main", events)

Radicale 3.9 defaults to `auth = denyall`, so the launcher always chooses: `none` (any user name,
no password check) or `htpasswd` with plain-text entries (no bcrypt needed). Storage is a
filesystem folder in the given directory, with fsync off: tests want speed, not durability.

`load_events` uploads N events with ONE PUT of a whole VCALENDAR to the collection URL. Radicale
then rebuilds the collection in one go (one file per UID), where N single PUTs would each cost
O(N), since every PUT re-checks the collection for UID conflicts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import httpx

from adapters.caldav.resources import resource_name
from adapters.kit.ical import serialize_calendar
from sync.contract.items import EventData

__all__ = ["RadicaleServer", "free_port"]

PYTHON = os.environ.get("CLINICBOT_RADICALE_PYTHON", "/work/venv/bin/python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RadicaleServer:
    """Starts `python -m radicale` with its own config and storage under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        auth: str = "none",
        users: dict[str, str] | None = None,
        max_sync_token_age: int | None = None,
    ) -> None:
        if auth not in ("none", "htpasswd"):
            raise ValueError("auth must be 'none' or 'htpasswd'")
        self.root = Path(root)
        self.auth = auth
        self.users = users if users is not None else {"clinic": f"pw-{uuid.uuid4().hex[:12]}"}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.storage = self.root / "collections"
        self._max_sync_token_age = max_sync_token_age
        self._process: subprocess.Popen[bytes] | None = None

    # --- life cycle ------------------------------------------------------------------------------
    def _config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        auth_lines = ["type = none"]
        if self.auth == "htpasswd":
            users_file = self.root / "users"
            users_file.write_text("".join(f"{user}:{password}\n" for user, password in self.users.items()))
            auth_lines = [
                "type = htpasswd",
                f"htpasswd_filename = {users_file}",
                "htpasswd_encryption = plain",
            ]
        storage_lines = [f"filesystem_folder = {self.storage}"]
        if self._max_sync_token_age is not None:
            storage_lines.append(f"max_sync_token_age = {self._max_sync_token_age}")
        config = self.root / "radicale.conf"
        config.write_text(
            "\n".join(
                [
                    "[server]",
                    f"hosts = 127.0.0.1:{self.port}",
                    "max_connections = 20",
                    "delay_on_error = 0.01",
                    "max_resource_size = 100000000",
                    "[auth]",
                    *auth_lines,
                    "delay = 0.01",
                    "[rights]",
                    "type = owner_only",
                    "[storage]",
                    *storage_lines,
                    "[web]",
                    "type = none",
                    "[logging]",
                    "level = " + os.environ.get("RADICALE_LOG_LEVEL", "warning"),
                    "mask_passwords = True",
                    "",
                ]
            )
        )
        return config

    def start(self) -> RadicaleServer:
        config = self._config()
        log = (self.root / "radicale.log").open("wb")
        self._process = subprocess.Popen(
            [PYTHON, "-m", "radicale", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"radicale exited: {(self.root / 'radicale.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("radicale did not start within 20 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> RadicaleServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- helpers ---------------------------------------------------------------------------------
    def credentials(self, user: str = "clinic") -> tuple[str, str]:
        """(user, password) to connect with; any password works under auth 'none'."""
        return user, self.users.get(user, "")

    def calendar_url(self, user: str, name: str) -> str:
        return f"{self.base_url}/{user}/{name}/"

    def client(self, user: str = "clinic") -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=self.credentials(user), timeout=120)

    async def make_calendar(self, user: str, name: str, *, display_name: str | None = None) -> str:
        """MKCALENDAR /user/name/ (creating the principal's home on first use); returns its URL."""
        url = self.calendar_url(user, name)
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f"<D:displayname>{display_name or name}</D:displayname>"
            '<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>'
            "</D:prop></D:set></C:mkcalendar>"
        )
        async with self.client(user) as client:
            # Radicale creates the principal collection on the first authenticated PROPFIND.
            await client.request("PROPFIND", f"{self.base_url}/{user}/", headers={"Depth": "0"})
            response = await client.request("MKCALENDAR", url, content=body.encode())
            if response.status_code not in (201, 405):
                raise RuntimeError(f"MKCALENDAR {url}: HTTP {response.status_code}")
        return url

    async def load_events(self, user: str, name: str, events: Iterable[EventData]) -> None:
        """Replace the calendar's content with `events`, in ONE PUT of a whole VCALENDAR."""
        body = serialize_calendar(events)
        async with self.client(user) as client:
            response = await client.put(
                self.calendar_url(user, name),
                content=body.encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8"},
            )
        if response.status_code not in (200, 201, 204):
            raise RuntimeError(f"collection PUT: HTTP {response.status_code} {response.text[:200]}")

    def seed_events(self, user: str, name: str, events: Iterable[EventData]) -> int:
        """Write events straight into the calendar's storage folder, one .ics per UID.

        For large data sets with TZIDs: a collection PUT drops the VTIMEZONE blocks, and Radicale
        (vobject) then rebuilds one per item at a cost of tens of milliseconds each. Files written
        here keep their VTIMEZONE. The calendar must exist (make_calendar) and no request may be in
        flight; Radicale picks the files up on its next request. Returns the number of files.
        """
        folder = self.storage / "collection-root" / user / name
        if not (folder / ".Radicale.props").exists():
            raise RuntimeError(f"make_calendar({user!r}, {name!r}) first")
        by_uid: dict[str, list[EventData]] = {}
        for event in events:
            by_uid.setdefault(event.uid, []).append(event)
        for uid, group in by_uid.items():
            (folder / resource_name(uid)).write_text(serialize_calendar(group), newline="")
        return len(by_uid)

    async def warm(self, user: str, name: str) -> None:
        """Make Radicale read and cache every item once (its first read of an item is slow)."""
        body = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
        async with self.client(user) as client:
            response = await client.request(
                "PROPFIND", self.calendar_url(user, name), content=body, headers={"Depth": "1"}
            )
        if response.status_code != 207:
            raise RuntimeError(f"PROPFIND: HTTP {response.status_code}")

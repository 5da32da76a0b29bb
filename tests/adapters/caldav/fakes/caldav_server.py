"""A small loopback CalDAV server for behaviour Radicale does not show.

- `sync_collection=False`: a server without RFC 6578 (no sync-collection in supported-report-set,
  403 on the REPORT), so clients must fall back to ctag + etag listings.
- `sync_page=N`: sync-collection answers truncated after N items (507 on the collection, RFC
  6578 section 3.6), and `sync_bodies=False`: no calendar-data in them (multiget needed).
- `icloud=True`: iCloud's habits: every PROPFIND answer carries an extra 404 propstat naming the
  properties it lacks, calendar-query without a VEVENT comp-filter is refused (403), the
  calendar home is given as an absolute URL, and sync-collection lists the collection itself.

Conditional PUT/DELETE (If-Match, If-None-Match: *) and the usual status codes behave as RFC 4791
says. One user, one calendar home at /1234/calendars/, one calendar "work".
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from xml.etree import ElementTree as ET

from aiohttp import web

from adapters.kit.ical import expand, parse_events
from sync.contract.items import Window

__all__ = ["FakeCalDAV"]

D, C, CS = "DAV:", "urn:ietf:params:xml:ns:caldav", "http://calendarserver.org/ns/"
HOME = "/1234/calendars/"
CALENDAR = HOME + "work/"
PRINCIPAL = "/1234/principal/"

ET.register_namespace("D", D)
ET.register_namespace("C", C)
ET.register_namespace("CS", CS)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass
class FakeCalDAV:
    sync_collection: bool = True
    icloud: bool = False
    #: Items per sync-collection answer before it is truncated with a 507 (Google pages at ~230).
    sync_page: int | None = None
    #: Whether sync-collection answers include calendar-data when asked (some servers never do).
    sync_bodies: bool = True
    user: str = "clinic@example.org"
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    items: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (etag, ics)
    #: (method, path, depth) of every request.
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: (sequence, name) per change, for sync-collection; tokens are "tok-<sequence>".
    journal: list[tuple[int, str]] = field(default_factory=list)
    #: Tokens older than this sequence are forgotten (403 valid-sync-token).
    oldest_token: int = 0
    port: int = 0
    _ctag: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    ctag: str = "ctag-0"
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def calendar_url(self) -> str:
        return self.base_url + CALENDAR

    def _changed(self, name: str) -> None:
        seq = next(self._ctag)
        self.ctag = f"ctag-{seq}"
        self.journal.append((seq, name))

    def forget_tokens(self) -> None:
        """Drop the history: every sync-token handed out so far becomes invalid."""
        self.oldest_token = len(self.journal) + 1

    # --- HTTP ----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.log.append((request.method, request.path, request.headers.get("Depth")))
        if request.headers.get("Authorization") != _basic(self.user, self.password):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
        if request.path == "/.well-known/caldav":
            raise web.HTTPMovedPermanently("/")
        handler = {
            "PROPFIND": self._propfind,
            "REPORT": self._report,
            "GET": self._get,
            "PUT": self._put,
            "DELETE": self._delete,
        }.get(request.method)
        if handler is None:
            return web.Response(status=405)
        return await handler(request)

    def _name(self, path: str) -> str | None:
        if path.startswith(CALENDAR) and len(path) > len(CALENDAR):
            return path[len(CALENDAR) :]
        return None

    async def _get(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request.path)
        if name is None or name not in self.items:
            return web.Response(status=404)
        etag, ics = self.items[name]
        return web.Response(text=ics, content_type="text/calendar", headers={"ETag": etag})

    async def _put(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request.path)
        if name is None:
            return web.Response(status=403)
        current = self.items.get(name)
        if request.headers.get("If-None-Match") == "*" and current is not None:
            return web.Response(status=412)
        if_match = request.headers.get("If-Match")
        if if_match is not None and (current is None or (if_match != "*" and if_match != current[0])):
            return web.Response(status=412)
        body = await request.text()
        try:
            parse_events(body)
        except Exception:
            return web.Response(status=400)
        etag = f'"{hashlib.sha1(body.encode()).hexdigest()[:12]}"'  # noqa: S324 - an etag, not security
        self.items[name] = (etag, body)
        self._changed(name)
        # iCloud rewrites what it stores and withholds the etag; clients must ask for it.
        return web.Response(status=204 if current else 201, headers={} if self.icloud else {"ETag": etag})

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request.path)
        if name is None or name not in self.items:
            return web.Response(status=404)
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != self.items[name][0]:
            return web.Response(status=412)
        del self.items[name]
        self._changed(name)
        return web.Response(status=204)

    async def _propfind(self, request: web.Request) -> web.StreamResponse:
        asked = _asked(await request.read())
        path = request.path
        depth = request.headers.get("Depth", "0")
        responses: list[ET.Element] = []
        if path in ("/", PRINCIPAL):
            found = {
                _q(D, "current-user-principal"): _href(D, "current-user-principal", PRINCIPAL),
                _q(C, "calendar-home-set"): _href(
                    C, "calendar-home-set", self.base_url + HOME if self.icloud else HOME
                ),
                _q(D, "resourcetype"): ET.Element(_q(D, "resourcetype")),
            }
            responses.append(self._response(path, asked, found))
        elif path == HOME:
            responses.append(self._response(HOME, asked, {_q(D, "resourcetype"): _rtype(False)}))
            if depth == "1":
                responses.append(self._response(CALENDAR, asked, self._calendar_props()))
        elif path == CALENDAR:
            responses.append(self._response(CALENDAR, asked, self._calendar_props()))
            if depth == "1":
                for name, (etag, _) in self.items.items():
                    responses.append(
                        self._response(CALENDAR + name, asked, {_q(D, "getetag"): _text(D, "getetag", etag)})
                    )
        elif (name := self._name(path)) is not None and name in self.items:
            responses.append(self._response(path, asked, {_q(D, "getetag"): _text(D, "getetag", self.items[name][0])}))
        else:
            return web.Response(status=404)
        return _multistatus(responses)

    def _calendar_props(self) -> dict[str, ET.Element]:
        reports = ET.Element(_q(D, "supported-report-set"))
        names = ["calendar-query", "calendar-multiget"] + (["sync-collection"] if self.sync_collection else [])
        for report in names:
            wrapper = ET.SubElement(ET.SubElement(reports, _q(D, "supported-report")), _q(D, "report"))
            ET.SubElement(wrapper, _q(D if report == "sync-collection" else C, report))
        comps = ET.Element(_q(C, "supported-calendar-component-set"))
        ET.SubElement(comps, _q(C, "comp"), {"name": "VEVENT"})
        privileges = ET.Element(_q(D, "current-user-privilege-set"))
        ET.SubElement(ET.SubElement(privileges, _q(D, "privilege")), _q(D, "write"))
        found = {
            _q(D, "resourcetype"): _rtype(True),
            _q(D, "displayname"): _text(D, "displayname", "Work"),
            _q(CS, "getctag"): _text(CS, "getctag", self.ctag),
            _q(D, "supported-report-set"): reports,
            _q(C, "supported-calendar-component-set"): comps,
            _q(D, "current-user-privilege-set"): privileges,
        }
        if self.icloud:
            # Not given: it lands in the 404 propstat, where a client must not read it as "no rights".
            del found[_q(D, "current-user-privilege-set")]
        return found

    def _response(self, href: str, asked: list[str], found: dict[str, ET.Element]) -> ET.Element:
        response = ET.Element(_q(D, "response"))
        ET.SubElement(response, _q(D, "href")).text = href
        good = [found[tag] for tag in asked if tag in found]
        missing = [tag for tag in asked if tag not in found]
        if good:
            _propstat(response, good, "HTTP/1.1 200 OK")
        if missing and (self.icloud or not good):
            _propstat(response, [ET.Element(tag) for tag in missing], "HTTP/1.1 404 Not Found")
        return response

    async def _report(self, request: web.Request) -> web.StreamResponse:
        root = ET.fromstring(await request.read())  # noqa: S314 - our own client's XML
        asked = [child.tag for child in root.find(_q(D, "prop")) or []]
        if root.tag == _q(D, "sync-collection"):
            if not self.sync_collection:
                return _error(403, D, "supported-report")
            return self._sync(root, asked)
        if root.tag == _q(C, "calendar-multiget"):
            names = [(h.text or "").split(CALENDAR, 1)[-1] for h in root.findall(_q(D, "href"))]
            return _multistatus([self._item_response(name, asked) for name in names])
        if root.tag == _q(C, "calendar-query"):
            vevent = root.find(f".//{_q(C, 'comp-filter')}[@name='VEVENT']")
            if vevent is None and self.icloud:
                return _error(403, C, "supported-filter")
            window = None
            time_range = vevent.find(_q(C, "time-range")) if vevent is not None else None
            if time_range is not None:
                window = Window(_utc(time_range.get("start", "")), _utc(time_range.get("end", "")))
            names = [n for n, (_, ics) in self.items.items() if window is None or expand(parse_events(ics), window)]
            return _multistatus([self._item_response(name, asked) for name in names])
        return _error(403, D, "supported-report")

    def _item_response(self, name: str, asked: list[str]) -> ET.Element:
        if name not in self.items:
            response = ET.Element(_q(D, "response"))
            ET.SubElement(response, _q(D, "href")).text = CALENDAR + name
            ET.SubElement(response, _q(D, "status")).text = "HTTP/1.1 404 Not Found"
            return response
        etag, ics = self.items[name]
        found = {
            _q(D, "getetag"): _text(D, "getetag", etag),
            _q(C, "calendar-data"): _text(C, "calendar-data", ics),
        }
        return self._response(CALENDAR + name, asked, found)

    def _sync(self, root: ET.Element, asked: list[str]) -> web.StreamResponse:
        token = (root.findtext(_q(D, "sync-token")) or "").strip()
        last = self.journal[-1][0] if self.journal else 0
        # Tokens: "tok-<seq>" (changes after seq), "page-<seq + 1>-<offset>" (a truncated answer's
        # continuation; seq + 1 == 0 for the initial listing).
        base, offset = 0, 0
        if token:
            kind, _, rest = token.partition("-")
            parts = rest.split("-")
            if kind == "tok" and len(parts) == 1 and parts[0].isdigit():
                base = int(parts[0]) + 1
            elif kind == "page" and len(parts) == 2 and all(p.isdigit() for p in parts):
                base, offset = int(parts[0]), int(parts[1])
            else:
                return _error(403, D, "valid-sync-token")
            if base and (base - 1 < self.oldest_token - 1 or base - 1 > last):
                return _error(403, D, "valid-sync-token")
        if base == 0:
            names = sorted(self.items)
        else:
            names = list(dict.fromkeys(name for seq, name in self.journal if seq >= base))
        if not self.sync_bodies:
            asked = [tag for tag in asked if tag != _q(C, "calendar-data")]
        page = names[offset : offset + self.sync_page] if self.sync_page else names[offset:]
        responses = [self._item_response(name, asked) for name in page]
        next_token = f"tok-{last}"
        if self.sync_page and offset + self.sync_page < len(names):
            # RFC 6578 3.6: a 507 on the collection says "more to come, ask again with this token".
            truncated = ET.Element(_q(D, "response"))
            ET.SubElement(truncated, _q(D, "href")).text = CALENDAR
            ET.SubElement(truncated, _q(D, "status")).text = "HTTP/1.1 507 Insufficient Storage"
            responses.append(truncated)
            next_token = f"page-{base}-{offset + self.sync_page}"
        if self.icloud:
            etag = {_q(D, "getetag"): _text(D, "getetag", self.ctag)}
            responses.insert(0, self._response(CALENDAR, [_q(D, "getetag")], etag))
        return _multistatus(responses, sync_token=next_token)

    # --- life cycle ------------------------------------------------------------------------------
    async def start(self) -> FakeCalDAV:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeCalDAV:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _asked(body: bytes) -> list[str]:
    if not body:
        return []
    root = ET.fromstring(body)  # noqa: S314 - our own client's XML
    prop = root.find(_q(D, "prop"))
    return [child.tag for child in prop] if prop is not None else []


def _href(ns: str, name: str, value: str) -> ET.Element:
    element = ET.Element(_q(ns, name))
    ET.SubElement(element, _q(D, "href")).text = value
    return element


def _text(ns: str, name: str, value: str) -> ET.Element:
    element = ET.Element(_q(ns, name))
    element.text = value
    return element


def _rtype(calendar: bool) -> ET.Element:
    element = ET.Element(_q(D, "resourcetype"))
    ET.SubElement(element, _q(D, "collection"))
    if calendar:
        ET.SubElement(element, _q(C, "calendar"))
    return element


def _propstat(response: ET.Element, props: list[ET.Element], status: str) -> None:
    propstat = ET.SubElement(response, _q(D, "propstat"))
    prop = ET.SubElement(propstat, _q(D, "prop"))
    for element in props:
        prop.append(element)
    ET.SubElement(propstat, _q(D, "status")).text = status


def _multistatus(responses: list[ET.Element], sync_token: str | None = None) -> web.Response:
    root = ET.Element(_q(D, "multistatus"))
    root.extend(responses)
    if sync_token is not None:
        ET.SubElement(root, _q(D, "sync-token")).text = sync_token
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return web.Response(status=207, body=body, content_type="application/xml")


def _error(status: int, ns: str, name: str) -> web.Response:
    root = ET.Element(_q(D, "error"))
    ET.SubElement(root, _q(ns, name))
    return web.Response(status=status, body=ET.tostring(root), content_type="application/xml")


def _utc(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

"""WebDAV/CalDAV request bodies and multistatus parsing (defusedxml: server XML is untrusted).

Only properties inside a 2xx propstat count. iCloud, for one, answers every PROPFIND with an
extra propstat listing the properties it does not have under 404; those are skipped, not errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element, ParseError, XMLPullParser
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeTree

from sync.contract import BadPayload

__all__ = [
    "CS",
    "C",
    "D",
    "MultistatusParser",
    "Response",
    "calendar_multiget",
    "calendar_query",
    "href_path",
    "parse_multistatus",
    "precondition",
    "propfind",
    "sync_collection",
]

D = "DAV:"
C = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
ICAL = "http://apple.com/ns/ical/"

_PREFIXES = {D: "D", C: "C", CS: "CS", ICAL: "I"}
_HEAD = '<?xml version="1.0" encoding="utf-8"?>'
_XMLNS = f'xmlns:D="{D}" xmlns:C="{C}" xmlns:CS="{CS}" xmlns:I="{ICAL}"'


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


_RESPONSE, _HREF, _STATUS, _PROPSTAT, _PROP, _SYNC_TOKEN = (
    _q(D, n) for n in ("response", "href", "status", "propstat", "prop", "sync-token")
)


def _prop_xml(props: list[tuple[str, str]]) -> str:
    return "<D:prop>" + "".join(f"<{_PREFIXES[ns]}:{name}/>" for ns, name in props) + "</D:prop>"


def propfind(props: list[tuple[str, str]]) -> bytes:
    """A PROPFIND body asking for `props` ((namespace, name) pairs)."""
    return f"{_HEAD}<D:propfind {_XMLNS}>{_prop_xml(props)}</D:propfind>".encode()


def sync_collection(token: str | None, props: list[tuple[str, str]]) -> bytes:
    """RFC 6578 sync-collection; an empty token asks for the initial full listing."""
    token_xml = f"<D:sync-token>{escape(token)}</D:sync-token>" if token else "<D:sync-token/>"
    return (
        f"{_HEAD}<D:sync-collection {_XMLNS}>{token_xml}<D:sync-level>1</D:sync-level>"
        f"{_prop_xml(props)}</D:sync-collection>"
    ).encode()


def calendar_query(props: list[tuple[str, str]], start: datetime | None = None, end: datetime | None = None) -> bytes:
    """calendar-query for VEVENTs (iCloud needs the VEVENT comp-filter), optionally in a time range."""
    time_range = ""
    if start is not None and end is not None:
        time_range = (
            f'<C:time-range start="{start.astimezone(UTC):%Y%m%dT%H%M%SZ}" end="{end.astimezone(UTC):%Y%m%dT%H%M%SZ}"/>'
        )
    return (
        f"{_HEAD}<C:calendar-query {_XMLNS}>{_prop_xml(props)}"
        f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{time_range}'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    ).encode()


def calendar_multiget(hrefs: list[str], props: list[tuple[str, str]]) -> bytes:
    """calendar-multiget for a batch of hrefs."""
    body = "".join(f"<D:href>{escape(href)}</D:href>" for href in hrefs)
    return f"{_HEAD}<C:calendar-multiget {_XMLNS}>{_prop_xml(props)}{body}</C:calendar-multiget>".encode()


@dataclass(slots=True)
class Response:
    """One <D:response>: its href (path, unquoted), its own status, and its 2xx properties."""

    href: str
    status: int | None
    props: dict[str, Element] = field(default_factory=dict)

    def text(self, ns: str, name: str) -> str | None:
        element = self.props.get(_q(ns, name))
        if element is None:
            return None
        return "".join(element.itertext()).strip()

    def element(self, ns: str, name: str) -> Element | None:
        return self.props.get(_q(ns, name))

    def hrefs(self, ns: str, name: str) -> list[str]:
        element = self.props.get(_q(ns, name))
        if element is None:
            return []
        return [(h.text or "").strip() for h in element.iter(_q(D, "href")) if (h.text or "").strip()]


def _status_code(text: str | None) -> int | None:
    if not text:
        return None
    parts = text.split()
    if len(parts) >= 2 and parts[1].isascii() and parts[1].isdigit() and len(parts[1]) == 3:
        return int(parts[1])
    return None


def href_path(href: str) -> str:
    """The unquoted path of an href (absolute URL or path)."""
    if href.startswith("/") and "%" not in href and "?" not in href and "#" not in href:
        return href
    return unquote(urlsplit(href).path)


def _root(body: bytes) -> Element:
    try:
        root: Element = SafeTree.fromstring(body)
    except SafeTree.ParseError as exc:
        line = getattr(exc, "position", (None, None))[0]
        raise BadPayload(f"caldav: unreadable XML ({exc})", line=line) from None
    except Exception as exc:  # defusedxml refuses entities and DTDs with its own errors
        raise BadPayload(f"caldav: refused XML ({type(exc).__name__})") from None
    return root


def parse_multistatus(body: bytes) -> tuple[list[Response], str | None]:
    """(responses, sync-token) from a whole 207 multistatus body."""
    parser = MultistatusParser()
    out = parser.feed(body)
    parser.close()
    return out, parser.token


class MultistatusParser:
    """Incremental 207 multistatus parser: `feed` bytes as they arrive, get Responses back.

    Each <D:response> becomes a Response and is dropped from the tree as soon as it ends, so a
    10,000-item answer never exists as one tree, nor (when fed from a stream) as one body.
    It runs on the C expat parser: what defusedxml guards against (entity declarations, external
    entities) needs a DTD, and any DTD or other declaration before the root is refused before
    expat sees it.
    """

    def __init__(self) -> None:
        self.token: str | None = None
        self._parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
        self._prolog: bytes | None = b""  # held until the root element starts; None after
        self._root: str | None = None
        self._root_element: Element | None = None

    def feed(self, chunk: bytes | memoryview) -> list[Response]:
        if self._prolog is not None:
            self._prolog += bytes(chunk)
            if not _prolog_done(self._prolog):
                return []
            chunk, self._prolog = self._prolog, None
        return self._run(self._parser.feed, chunk)

    def close(self) -> None:
        """End of the body; raises BadPayload when it was not a whole multistatus."""
        if self._prolog is not None:
            chunk, self._prolog = self._prolog, None
            self._run(self._parser.feed, chunk)
        self._run(lambda _: self._parser.close(), b"")
        if self._root != _MULTISTATUS:
            raise BadPayload(f"caldav: expected a multistatus, got {self._root}")

    def _run(self, step: Callable[[bytes | memoryview], object], chunk: bytes | memoryview) -> list[Response]:
        try:
            step(chunk)
            return self._drain()
        except ParseError as exc:
            raise BadPayload(f"caldav: unreadable XML ({exc})", line=exc.position[0]) from None

    def _drain(self) -> list[Response]:
        out: list[Response] = []
        root = self._root_element
        # One pass over ~14 events per response (a 10,000-item answer: 140,000): kept to plain
        # comparisons, no call per event (issue 23, session 30).
        events: Iterator[tuple[str, Element]] = self._parser.read_events()  # type: ignore[assignment]
        for kind, node in events:
            if kind == "start":
                if root is None:
                    self._root, self._root_element = node.tag, node
                    root = node
                continue
            # <response> and <sync-token> only occur as children of the multistatus.
            tag = node.tag
            if tag == _RESPONSE:
                response = _response(node)
                if response is not None:
                    out.append(response)
                # Its properties live on in `response.props`; the emptied element would stay
                # behind in the root (10,000 of them in a large answer) unless removed.
                # Responses are removed in document order, so it sits at the front.
                node.clear()
                if root is not None:
                    try:
                        root.remove(node)
                    except ValueError:  # not a child of the root: nothing to drop
                        pass
            elif tag == _SYNC_TOKEN:
                self.token = (node.text or "").strip() or None
        return out


def _prolog_done(data: bytes) -> bool:
    """Whether `data` reaches the root element's start tag with only a safe prolog before it:
    the XML declaration, processing instructions, comments, white space. BadPayload on a DTD."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        raise BadPayload("caldav: refused XML (UTF-16 body)")  # the scan below reads ASCII
    pos = 0
    while True:
        i = data.find(b"<", pos)
        if i < 0 or i + 4 > len(data):
            break
        if data.startswith(b"<?", i):
            end = data.find(b"?>", i + 2)
            pos = end + 2
        elif data.startswith(b"<!--", i):
            end = data.find(b"-->", i + 4)
            pos = end + 3
        elif data.startswith(b"<!", i):
            raise BadPayload("caldav: refused XML (DTD or declaration)")
        else:
            return True
        if end < 0:
            break
    if len(data) > _MAX_PROLOG:
        raise BadPayload("caldav: refused XML (no root element in the first 64 KB)")
    return False


_MULTISTATUS = _q(D, "multistatus")
_MAX_PROLOG = 65536


def _response(node: Element) -> Response | None:
    href: str | None = None
    status: int | None = None
    props: dict[str, Element] = {}
    # Plain loops over children: a 10,000-item sync answer makes path lookups (findall) costly.
    for part in node:
        tag = part.tag
        if tag == _HREF:
            href = (part.text or "").strip()
        elif tag == _STATUS:
            status = _status_code(part.text)
        elif tag == _PROPSTAT:
            _good_props(part, props)
    return Response(href=href_path(href), status=status, props=props) if href else None


def _good_props(propstat: Element, into: dict[str, Element]) -> None:
    """Add a propstat's properties to `into` when its status is 2xx (404 propstats list what the
    server lacks; iCloud sends many)."""
    prop: Element | None = None
    code: int | None = None
    for part in propstat:
        if part.tag == _PROP:
            prop = part
        elif part.tag == _STATUS:
            code = _status_code(part.text)
    if prop is None or code is None or not 200 <= code < 300:
        return
    for child in prop:
        into[child.tag] = child


def precondition(body: bytes) -> set[str]:
    """Local names of the precondition elements in a DAV:error body (e.g. 'valid-sync-token')."""
    try:
        root = _root(body)
    except BadPayload:
        return set()
    if root.tag != _q(D, "error"):
        return set()
    return {child.tag.rsplit("}", 1)[-1] for child in root}

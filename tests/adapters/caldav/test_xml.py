"""Multistatus parsing: incremental (as a stream arrives), and refusing what defusedxml refuses."""

from __future__ import annotations

import pytest

from adapters.caldav.xml import MultistatusParser, parse_multistatus
from sync.contract import BadPayload

BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<!-- answer -->\n<D:multistatus xmlns:D="DAV:" '
    b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:sync-token>tok-9</D:sync-token>'
    + b"".join(
        b"<D:response><D:href>/cal/%d.ics</D:href><D:propstat><D:prop><D:getetag>\"e%d\"</D:getetag>"
        b"<C:calendar-data>BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n</C:calendar-data></D:prop>"
        b"<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>" % (n, n)
        for n in range(5)
    )
    + b"<D:response><D:href>/cal/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
    b"</D:multistatus>"
)


@pytest.mark.parametrize("chunk", [1, 7, 100, len(BODY)])
def test_fed_in_chunks_it_reads_every_response_once(chunk: int) -> None:
    parser = MultistatusParser()
    got = []
    for i in range(0, len(BODY), chunk):
        got += parser.feed(BODY[i:i + chunk])
    parser.close()
    assert [(r.href, r.status, r.text("DAV:", "getetag")) for r in got] == [
        *((f"/cal/{n}.ics", None, f'"e{n}"') for n in range(5)), ("/cal/gone.ics", 404, None)]
    assert parser.token == "tok-9"
    assert got[0].text("urn:ietf:params:xml:ns:caldav", "calendar-data") == "BEGIN:VCALENDAR\nEND:VCALENDAR"  # XML reads CRLF as LF


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">]><D:multistatus xmlns:D="DAV:">&a;</D:multistatus>',
    b'<!DOCTYPE m SYSTEM "file:///etc/passwd"><D:multistatus xmlns:D="DAV:"/>',
    b'<?xml version="1.0"?>\n<!-- x --><!ENTITY a "b"><D:multistatus xmlns:D="DAV:"/>',
    "<D:multistatus xmlns:D='DAV:'/>".encode("utf-16"),
])
def test_a_dtd_is_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(BadPayload, match="refused"):
        parse_multistatus(body)


@pytest.mark.parametrize("body", [b"", b"garbage", b'<D:multistatus xmlns:D="DAV:"><D:response>', b"<error/>"])
def test_broken_or_foreign_answers_are_bad_payloads(body: bytes) -> None:
    with pytest.raises(BadPayload):
        parse_multistatus(body)

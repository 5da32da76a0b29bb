"""The v0 signature check and its replay memory, without a server."""

from __future__ import annotations

from bot.slack.verify import MAX_AGE, RequestVerifier, sign

SECRET = "test-signing-secret"


def _signed(stamp: int, body: bytes) -> tuple[str, str, bytes]:
    return str(stamp), sign(SECRET, str(stamp), body), body


def test_a_genuine_request_is_accepted_once() -> None:
    v = RequestVerifier(SECRET)
    request = _signed(1_000_000, b"command=%2Fclinic&text=today")
    assert v.check(*request, now=1_000_000) is None
    assert v.check(*request, now=1_000_001) == "replayed request"


def test_forged_missing_and_stale_requests_are_refused() -> None:
    v = RequestVerifier(SECRET)
    stamp, signature, body = _signed(1_000_000, b"text=today")
    assert v.check(stamp, signature, b"text=tomorrow", now=1_000_000) == "bad signature"
    assert v.check(stamp, "v0=" + "0" * 64, body, now=1_000_000) == "bad signature"
    assert v.check(stamp, None, body, now=1_000_000) == "missing signature"
    assert v.check("12x", signature, body, now=1_000_000) == "bad timestamp"
    assert v.check("¹000000", signature, body, now=1_000_000) == "bad timestamp"  # isdigit() is True for "¹"
    assert v.check("١٠٠٠٠٠٠", signature, body, now=1_000_000) == "bad timestamp"
    assert v.check(stamp, signature, body, now=1_000_000 + MAX_AGE + 1) == "stale timestamp"
    assert v.check(stamp, signature, body, now=1_000_000 - MAX_AGE - 1) == "stale timestamp"
    assert v.check(stamp, signature, body, now=1_000_000) is None  # none of the refusals was remembered


def test_signatures_are_forgotten_once_their_request_would_be_stale_anyway() -> None:
    v = RequestVerifier(SECRET)
    early = [_signed(1_000_000 + i, f"n={i}".encode()) for i in range(5)]
    for i, request in enumerate(early):
        assert v.check(*request, now=1_000_000 + i) is None
    assert len(v._seen) == 5
    later = _signed(1_000_000 + MAX_AGE + 3, b"n=later")
    assert v.check(*later, now=1_000_000 + MAX_AGE + 3) is None
    assert len(v._seen) == 3  # the three whose window closed are gone; the others are still refused
    assert v.check(*early[4], now=1_000_000 + MAX_AGE + 3) == "replayed request"
    assert v.check(*early[0], now=1_000_000 + MAX_AGE + 3) == "stale timestamp"


def test_the_memory_is_bounded() -> None:
    v = RequestVerifier(SECRET, max_remembered=3)
    requests = [_signed(1_000_000, f"n={i}".encode()) for i in range(10)]
    for request in requests:
        assert v.check(*request, now=1_000_000) is None
    assert len(v._seen) <= 3
    assert v.check(*requests[-1], now=1_000_000) == "replayed request"

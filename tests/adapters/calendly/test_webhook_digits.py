"""Calendly's signature header with a `t` that is not a plain ASCII timestamp is refused (401), never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.calendly.webhooks import sign, verify_signature

BODY = b'{"event":"invitee.created","payload":{"uri":"https://api.calendly.com/x"}}'
AT = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize("t", ["\u00b9\u00b2\u00b3", "\u0661\u0667\u0660\u0660", "9" * 400, "9" * 5000, "+1", " 1"])
def test_a_timestamp_of_other_digits_or_any_length_is_a_bad_signature(t: str) -> None:
    """isdigit() took "¹²³", which int() refuses; 400 digits overflowed the age check: both raised."""
    digest = sign(BODY, "signing_key_test", 0).split("v1=")[1]
    assert verify_signature(BODY, f"t={t},v1={digest}", "signing_key_test", AT) is False
    good = sign(BODY, "signing_key_test", int(AT.timestamp()))
    assert verify_signature(BODY, good, "signing_key_test", AT)

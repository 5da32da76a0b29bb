"""Square's webhook signature: the official SDK's test vectors, and what must fail."""

from __future__ import annotations

import pytest

from adapters.square.webhooks import sign, verify_signature

#: square/square-python-sdk tests/integration/test_webhooks_helper.py (see platform-apis.md).
BODY = (b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
        b'"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
        b'"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}')
KEY = "Ibxx_5AKakO-3qeNVR61Dw"
URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="


def test_official_vectors() -> None:
    assert sign(BODY, KEY, URL) == SIGNATURE
    assert verify_signature(BODY, SIGNATURE, KEY, URL)
    body = b'{"data":{"type":"webhooks","id":">id<"}}'
    assert verify_signature(body, "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=", "signature-key",
                            "https://webhook.site/webhooks")


def test_one_changed_byte_fails() -> None:
    assert not verify_signature(BODY, SIGNATURE, KEY, URL + "/")
    assert not verify_signature(BODY, SIGNATURE, KEY, URL.replace("https", "http"))
    assert not verify_signature(BODY + b" ", SIGNATURE, KEY, URL)
    assert not verify_signature(BODY, SIGNATURE, KEY + "x", URL)
    assert not verify_signature(b"", SIGNATURE, KEY, URL)
    assert not verify_signature(BODY, "", KEY, URL)


def test_missing_key_or_url_is_a_setup_error() -> None:
    with pytest.raises(ValueError, match="signature key"):
        verify_signature(BODY, SIGNATURE, "", URL)
    with pytest.raises(ValueError, match="notification URL"):
        verify_signature(BODY, SIGNATURE, KEY, "")

"""Button values come back from the chat platform: odd digits and deep nesting are a clear ParseError."""

from __future__ import annotations

import pytest

from bot.commands.actions import decode
from bot.commands.grammar import ParseError


@pytest.mark.parametrize(
    "value",
    [
        "[" * 1900,  # deeper than json's recursion limit, inside Slack's 2,000-byte cap
        '{"a":"²","v":1}',  # str.isdigit() is True for "²"; int() refuses it
        '{"a":1,"v":"١٢"}',
        '{"a":"1234567890123","v":1}',
        '{"a":true,"v":1}',
    ],
)
def test_malformed_button_values_are_a_parse_error(value: str) -> None:
    with pytest.raises(ParseError) as caught:
        decode("cancel", value)
    assert "run the command again" in caught.value.message

"""A failed Teams turn is logged once: the error's type and where it happened, never its message
(which may carry patient data); the traceback only with CLINICBOT_LOG_LEVEL=DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from bot import logs
from tests.bot.teams.conftest import Teams, activity

PATIENT = "Ann Example"


@pytest.fixture
def log_text() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What the server's text and JSON log handlers would print."""
    text, doc = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in ((text, logs.TextFormatter()), (doc, logs.JsonFormatter())):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handlers.append(handler)
        logging.getLogger().addHandler(handler)
    before = logging.getLogger().level
    try:
        yield text, doc
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(before)


async def _fail_a_turn(t: Teams, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object, **__: object) -> object:
        statement = "INSERT INTO appointment (client_name) VALUES (?)"
        raise IntegrityError(statement, {"client": PATIENT}, Exception(f"duplicate client {PATIENT}"))

    monkeypatch.setattr("bot.teams.bot.handle", broken)
    status, _ = await t.post(activity(t.connector.service_url, text="today"))
    assert status in (200, 201)
    assert "Something went wrong" in str(t.connector.recorded.activities()[-1])


async def test_a_failed_turn_is_one_line_with_type_place_and_hint(
    teams: Teams, monkeypatch: pytest.MonkeyPatch, log_text: tuple[io.StringIO, io.StringIO]
) -> None:
    logging.getLogger().setLevel(logging.INFO)
    await _fail_a_turn(teams, monkeypatch)
    text, doc = (s.getvalue() for s in log_text)
    [line] = [x for x in text.splitlines() if "Teams turn failed" in x]
    assert line.count("IntegrityError") == 1, line
    assert "where=bot/teams/bot.py:" in line and "CLINICBOT_LOG_LEVEL=DEBUG" in line, line
    assert "Traceback" not in text and PATIENT not in text
    [record] = [json.loads(x) for x in doc.splitlines() if "Teams turn failed" in x]
    assert record["error"] == "IntegrityError" and record["where"].startswith("bot/teams/bot.py:")
    assert "traceback" not in record and PATIENT not in doc


async def test_debug_level_adds_the_traceback_without_the_message(
    teams: Teams, monkeypatch: pytest.MonkeyPatch, log_text: tuple[io.StringIO, io.StringIO]
) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    await _fail_a_turn(teams, monkeypatch)
    text, doc = (s.getvalue() for s in log_text)
    assert "Traceback (most recent call last)" in text and "bot/teams/bot.py" in text
    assert "sqlalchemy.exc.IntegrityError" in text
    assert PATIENT not in text and PATIENT not in doc
    [record] = [json.loads(x) for x in doc.splitlines() if "Teams turn failed" in x]
    assert "on_message_activity" in record["traceback"]

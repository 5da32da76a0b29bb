"""A command that fails on the database answers "nothing was changed, try again" and logs why:
the error's kind, the driver's first line and where in clinicbot, never the SQL or its parameters."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.commands import handlers
from bot.commands.grammar import ShowHelp
from bot.views import Error
from sync.services.errors import database_error_facts


def _locked() -> None:
    try:
        raise __import__("sqlite3").OperationalError("database is locked")
    except Exception as exc:
        raise OperationalError("INSERT INTO appointment (title) VALUES (?)", ("Mrs Example's visit",), exc) from exc


def test_facts_name_the_driver_reason_and_our_line_never_the_parameters() -> None:
    with pytest.raises(OperationalError) as caught:
        _locked()
    facts = database_error_facts(caught.value)
    assert facts["error"] == "OperationalError" and facts["reason"] == "database is locked"
    assert "Example" not in repr(facts) and "INSERT" not in repr(facts)

    pg = IntegrityError("INSERT ...", {"title": "Mrs Example"}, Exception(
        'duplicate key value violates unique constraint "uq_link"\nDETAIL:  Key (remote_id)=(Mrs Example) exists.'))
    facts = database_error_facts(pg)
    assert facts["reason"] == 'duplicate key value violates unique constraint "uq_link"'
    assert "Example" not in repr(facts)


async def test_a_command_failing_on_the_database_answers_and_logs_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(*_args: object) -> None:
        _locked()

    monkeypatch.setattr(handlers, "_dispatch", failing)
    with caplog.at_level(logging.WARNING, logger="clinicbot.commands"):
        view = await handlers.handle(None, None, ShowHelp())  # type: ignore[arg-type]
    assert isinstance(view, Error) and view.kind == "unavailable" and "nothing was changed" in view.message
    [line] = [r.getMessage() for r in caplog.records]
    assert "database is locked" in line and "test_database_errors.py" not in line
    assert "Example" not in line

"""Troubleshooting words for the failures a person can act on: read from Nylas's and Graph's error
bodies, and shown where people look: `status` in chat, the reconnect card, the sign-in page and
`clinicbot doctor`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from adapters.graph.errors import graph_error, msal_error
from adapters.nylas.client import map_nylas_error
from sync.contract.troubleshooting import advice
from sync.engine.run import sync_connection
from sync.services.connections import set_calendar
from tests.adapters.nylas.fakes.nylas import NylasFake
from tests.adapters.nylas.test_road import connect
from tests.adapters.nylas.test_tracked_events import ask
from tests.adapters.nylas.test_work_calendar import clinic, fake_slack, nylas
from tests.bot.cli.test_sync_commands import cli, run
from tests.e2e.test_oauth_connect import Clinic
from tests.fakes.memory_calendar import MemoryServer
from tests.sync import memory_adapter

__all__ = ["cli", "clinic", "fake_slack", "nylas"]  # fixtures, used by name

#: Nylas error bodies carrying the provider's own error (shapes as Nylas passes them on).
NYLAS_BODIES: list[tuple[int, dict[str, Any], str]] = [
    (403, {"type": "provider_error", "message": "Provider returned an error",
           "provider_error": {"error": {"code": "AADSTS65001", "message": "The user or administrator has not "
                                        "consented to use the application"}}}, "admin_consent"),
    (401, {"type": "unauthorized", "message": "Unauthorized",
           "provider_error": {"message": "[ALERT] Application-specific password required"}}, "app_password"),
    (403, {"type": "provider_error", "message": "Provider returned an error",
           "provider_error": {"code": "AADSTS53003", "message": "Access has been blocked by Conditional Access "
                              "policies."}}, "firewall"),
    (403, {"type": "provider_error", "message": "Provider returned an error",
           "provider_error": {"code": "ErrorImpersonateUserDenied", "message": "The account does not have "
                              "permission to impersonate the requested user."}}, "admin_group"),
    (404, {"type": "not_found_error", "message": "requested object not found",
           "provider_error": {"code": "MailboxNotEnabledForRESTAPI"}}, ""),
]


@pytest.mark.parametrize(("status", "error", "key"), NYLAS_BODIES)
def test_nylas_error_bodies_map_to_words(status: int, error: dict[str, Any], key: str) -> None:
    request = httpx.Request("GET", "https://api.us.nylas.com/v3/grants/g/events")
    mapped = map_nylas_error(httpx.Response(status, json={"request_id": "r", "error": error}, request=request))
    found = advice(str(mapped))
    assert (found.key if found else "") == key, str(mapped)


def test_graph_and_microsoft_sign_in_errors_map_to_words() -> None:
    denied = graph_error(403, {"error": {"code": "ErrorImpersonateUserDenied", "message": "denied"}}, {},
                         "GET /users/x/calendar")
    assert advice(str(denied)).key == "admin_group"  # type: ignore[union-attr]
    consent = msal_error({"error": "invalid_grant", "error_codes": [65001],
                          "error_description": "AADSTS65001: consent required"}, "token")
    assert advice(str(consent)).key == "admin_consent"  # type: ignore[union-attr]
    assert advice("graph: HTTP 503 - on GET /me/calendar") is None


async def test_words_in_status_the_reconnect_card_and_the_sign_in_page(clinic: Clinic, nylas: NylasFake) -> None:
    nylas.next_login = ("outreach.lead@work.example", "microsoft")
    conn, _, _ = await connect(clinic, nylas)
    [work] = await clinic.calendars()
    await set_calendar(clinic.core, work.id, role="mirror", actor="cli:test")
    # A new mirror is backfilled by a sync the server queues at once: let it end, or the sync below
    # finds the connection busy.
    assert clinic.core.services.sync_queue is not None
    await clinic.core.services.sync_queue.drain()

    # The tenant blocks Nylas's addresses: `status` says what to ask IT for.
    nylas.fail(403, "provider_error", "Provider returned an error", count=5, provider_error={
        "code": "AADSTS53003", "message": "Access has been blocked by Conditional Access policies."})
    assert (await sync_connection(clinic.core, conn.id)).failed == 1
    status = await ask(clinic, "status", "US", "status")
    assert "network policy blocks the calendar service" in status and "IP addresses" in status, status

    # Basic auth with app passwords off: the reconnect card says so before "sign in again".
    nylas.failures.clear()
    nylas.fail(401, "unauthorized", "Unauthorized", count=5,
               provider_error={"message": "Application-specific password required"})
    assert (await sync_connection(clinic.core, conn.id)).failed == 1
    await clinic.slack.fake.wait_for(lambda: any(
        "app password" in str(c.args) for c in clinic.slack.fake.calls_to("chat.postMessage")))
    card = next(str(c.args) for c in clinic.slack.fake.calls_to("chat.postMessage") if "app password" in str(c.args))
    assert card.index("Create an app password") < card.index("sign in again"), card

    # Microsoft sends the browser back with "admin consent needed": the page says who must do what.
    async with clinic.browser.get(f"{clinic.base_url}/oauth/nylas/callback", params={
            "error": "access_denied", "error_description": "AADSTS65001: The user or administrator has not "
            "consented to use the application", "state": "x"}) as page:
        text = await page.text()
    assert page.status == 400 and "administrator must approve the app" in text and "Grant admin consent" in text


def test_doctor_names_the_failure_and_what_to_do(cli: click.Group, tmp_path: Path) -> None:
    memory_adapter.SERVERS.clear()
    memory_adapter.SERVERS["memory://x/outlook"] = MemoryServer()
    run(cli, "practice", "create", "Clinic", "--tz", "UTC")
    run(cli, "connection", "add", "caldav", "--url", "memory://x/outlook")
    healthy = CliRunner().invoke(cli, ["doctor"])
    assert "cannot be synced" not in healthy.output
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:  # what a failed sync leaves (see the test above)
        db.execute("UPDATE connection SET last_error = 'Refused: graph: HTTP 403 ErrorImpersonateUserDenied on GET'")
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert "administrator accounts cannot be synced" in result.output and "non-admin" in result.output, result.output

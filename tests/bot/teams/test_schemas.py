"""Every card the bot sends validates against the official Adaptive Card 1.5 schema; the manifest
and the built package validate against the official Teams manifest schema for their version."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.commands.actions import AskCancel, CancelConfirmed, OpenReschedule, ShowDetails
from bot.commands.grammar import GRAMMAR
from bot.teams import cards
from bot.teams.consent import ConsentOutcome
from bot.teams.consent_flow import consent_card, outcome_card, pending_card
from bot.teams.icons import png_size
from bot.teams.package import MANIFEST_DIR, PackageError, build_manifest, build_package
from bot.teams.turn_errors import SORRY
from bot.views import (
    Agenda,
    AgendaItem,
    AppointmentDetail,
    ConfirmCancel,
    ConnectInfo,
    ConnectionState,
    Error,
    Help,
    HelpEntry,
    Notice,
    Reconnect,
    RescheduleForm,
    StaffCard,
    StaffMember,
    Status,
    Whoami,
)
from sync.runtime.settings import Settings

SCHEMAS = Path(__file__).parent / "schemas"
CARD_SCHEMA = jsonschema.Draft7Validator(json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text()))
MANIFEST_VERSION = json.loads((MANIFEST_DIR / "manifest.json").read_text())["manifestVersion"]
MANIFEST_SCHEMA = jsonschema.Draft7Validator(
    json.loads((SCHEMAS / f"MicrosoftTeams-{MANIFEST_VERSION}.schema.json").read_text())
)
APP_ID = "3f2a4b6c-8d0e-4f1a-9b2c-3d4e5f6a7b8c"

START = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
ITEM = AgendaItem(
    12,
    "A-12",
    3,
    START,
    START,
    "10:00–10:30",
    "Dr Lee",
    "A. E.",
    "Check-up",
    "confirmed",
    actions=(ShowDetails(12), OpenReschedule(12, 3), AskCancel(12, 3)),
)


def _views() -> list[Any]:
    return [
        Agenda("Tuesday 3 March", date(2026, 3, 3), "Europe/London", (ITEM,)),
        Agenda("Wednesday 4 March", date(2026, 3, 4), "Europe/London", ()),
        AppointmentDetail(
            ITEM, "Tue 3 Mar", "Room 2", "bring x-rays", (("Outlook · Dr Lee", "ok"),), "Moved"
        ),
        RescheduleForm(
            12,
            "A-12",
            3,
            "A. E. with Dr Lee",
            date(2026, 3, 3),
            "10:00",
            "Europe/London",
            4,
            ((4, "Dr Lee"), (5, "Dr Roe")),
            {"time": "that slot is taken (A-13)", "": "pick another"},
            ((START, "Tue 11:00"),),
        ),
        ConfirmCancel(12, "A-12", 3, "A. E. with Dr Lee", CancelConfirmed(12, 3), "patient sick"),
        Status(
            "Riverside",
            (
                ConnectionState(
                    1,
                    "graph",
                    "desk@clinic",
                    "active",
                    True,
                    "2 min ago",
                    0,
                    1,
                    "ok",
                    ("Dr Lee",),
                    "429 throttled",
                ),
            ),
            0,
            1,
        ),
        Status("Riverside", ()),
        Whoami("Ann", "teams", "Riverside", ("admin",), "Dr Lee", "Europe/London"),
        Help(
            (
                HelpEntry("today", "the day", "today", ""),
                HelpEntry("cancel <id>", "cancel", "cancel A-1", "staff"),
            )
        ),
        Error("that is not a date", "tomorrow"),
        Notice("A-12 cancelled", "Done"),
        Reconnect(1, "google", "desk@clinic", "https://clinic.example.net/oauth/google/start?x=1"),
        ConnectInfo("caldav", "Connect CalDAV", None, ("step one", "step two")),
        StaffCard(("square team_member TM-A → @dr-lee",),
                  (StaffMember(3, "Square Appointments", "TM-B", "Alex", 2), StaffMember(4, "Acuity", "7", "Sam", 0)),
                  ((1, "Dr Lee"), (2, "Dr Ng")), notice="acuity 1 is now @dr-lee"),
        StaffCard((), (), ()),
    ]


def _all_cards() -> list[tuple[str, dict[str, Any]]]:
    out = [(type(v).__name__, cards.render(v)) for v in _views()]
    out.append(
        ("refreshing agenda", cards.render(_views()[0], refresh={"cmd": "today"}, user_ids=["29:a", "29:b"]))
    )
    out.append(("consent", consent_card("https://clinic.example.net/consent/start?state=s", "Bo")))
    out.append(("consent pending", pending_card(2)))
    for granted in (True, False):
        out.append(
            (
                "consent outcome",
                outcome_card(ConsentOutcome(1, 1, granted, "t", None if granted else "AADSTS65004", "words")),
            )
        )
    out.append(("sorry", cards.card([cards.text(SORRY, color="Attention")])))
    return out


@pytest.mark.parametrize(("name", "card"), _all_cards(), ids=[n for n, _ in _all_cards()])
def test_every_card_is_valid_adaptive_card_1_5(name: str, card: dict[str, Any]) -> None:
    errors = [f"{e.json_path}: {e.message[:200]}" for e in CARD_SCHEMA.iter_errors(card)]
    assert errors == []
    assert card["version"] == "1.5"


def test_the_schema_check_catches_a_broken_card() -> None:
    card = cards.render(Notice("x"))
    card["body"][0]["type"] = "TextBlok"
    assert list(CARD_SCHEMA.iter_errors(card))


def test_buttons_are_universal_actions_with_submit_fallback() -> None:
    buttons = cards.render(_views()[0])["body"][1]["items"][1]["actions"]
    assert [b["verb"] for b in buttons] == ["details", "reschedule", "cancel"]
    for b in buttons:
        assert b["type"] == "Action.Execute" and b["fallback"]["type"] == "Action.Submit"
        assert b["fallback"]["data"] == b["data"] and b["data"]["verb"] == b["verb"]


def _settings(**kw: Any) -> Settings:
    values: dict[str, Any] = {"microsoft_app_id": APP_ID, "public_url": "https://bot.clinic.example"}
    values.update(kw)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_committed_manifest_is_valid_and_lists_the_grammar() -> None:
    manifest = json.loads((MANIFEST_DIR / "manifest.json").read_text())
    assert float(manifest["manifestVersion"]) >= 1.22
    assert [e.message for e in MANIFEST_SCHEMA.iter_errors(manifest)] == []
    titles = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
    assert titles == [spec.name for spec in GRAMMAR][:12]


def test_package_fills_ids_and_domain_and_is_valid(tmp_path: Path) -> None:
    path = build_package(_settings(), tmp_path / "app.zip")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json"))
        assert png_size(archive.read("color.png"))[:2] == (192, 192)
        width, height, colour = png_size(archive.read("outline.png"))
        assert (width, height, colour) == (32, 32, 6)
    assert [e.message for e in MANIFEST_SCHEMA.iter_errors(manifest)] == []
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert manifest["webApplicationInfo"] == {"id": APP_ID, "resource": f"api://bot.clinic.example/{APP_ID}"}
    assert manifest["validDomains"] == ["bot.clinic.example"]
    assert "example.org" not in json.dumps(manifest)


@pytest.mark.parametrize(
    "overrides",
    [{"microsoft_app_id": None}, {"public_url": None}, {"public_url": "http://bot.clinic.example"}],
)
def test_package_refuses_incomplete_settings(overrides: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(PackageError):
        build_manifest(_settings(**overrides))


def test_a_notice_of_several_lines_keeps_its_lines_apart() -> None:
    # Teams runs a TextBlock's single line breaks together ("on, by email New bookings: off"), as the
    # Agents Playground showed for `client-notices`: each line is its own block.
    card = cards.render(Notice("Client messages: on, by email\n\nNew bookings: off\nQuiet hours: none", title="Client"))
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert texts == ["Client", "Client messages: on, by email", "New bookings: off", "Quiet hours: none"]

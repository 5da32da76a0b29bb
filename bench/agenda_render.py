"""Rendering one day's agenda as Slack Block Kit: clinicbot's JSON builder vs slack_sdk's models.

    python -m bench.agenda_render [--visits 8] [--repeat 500]

clinicbot renders an agenda (`bot.slack.render.message`) for every answer its cache does not hold:
first contacts, refreshes, button results. The baseline builds the same blocks with slack_sdk's
block models and `to_dict()`, as clinicbot did before (each model checks itself as it is built).
Both produce the same JSON (asserted here). Prints one JSON document, milliseconds per agenda.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any


def _day(visits: int) -> Any:
    from bot.commands.actions import AskCancel, OpenReschedule, ShowDetails
    from bot.views import Agenda, AgendaItem

    start = datetime(2026, 11, 21, 9, tzinfo=UTC)
    items = tuple(
        AgendaItem(
            appointment_id=i, ref=f"A-{i}", version=1, start=start + timedelta(minutes=45 * i),
            end=start + timedelta(minutes=45 * i + 30), time_label="09:00–09:30", practitioner="Dr Lee",
            client=f"Client {i}", service="Physio", status="confirmed",
            actions=(OpenReschedule(i, 1), AskCancel(i, 1), ShowDetails(i)),
        )
        for i in range(visits)
    )  # fmt: skip
    return Agenda(title="Today, Sat 21 Nov", day=date(2026, 11, 21), timezone="UTC", items=items)


def _per_call_ms(fn: Any, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def main() -> None:
    from slack_sdk.models.blocks import Block

    from bot.slack import render

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    day = _day(args.visits)
    ours = render.message(day)[1]

    def with_models() -> list[dict[str, Any]]:
        return [Block.parse(b).to_dict() for b in ours]  # type: ignore[union-attr]

    assert with_models() == ours, "slack_sdk's models build different JSON"
    clinicbot = _per_call_ms(lambda: render.message(day), args.repeat)
    baseline = _per_call_ms(with_models, args.repeat)
    print(json.dumps({
        "benchmark": "agenda_render",
        "visits": args.visits,
        "clinicbot_ms": round(clinicbot, 3),
        "slack_sdk_models_ms": round(baseline, 3),
        "speedup": round(baseline / clinicbot, 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()

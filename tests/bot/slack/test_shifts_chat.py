"""`/clinic shifts tomorrow` through the running server: who is on, from an imported schedule export."""

from __future__ import annotations

import json

from sync.services import shifts as service
from tests.bot.clinic import make_actor
from tests.bot.slack.conftest import SlackClient

EXPORT = (
    "Person,UniqueID,Custom1,Assignment,Start,End,Notes,Published\n"
    "Dr Lee,LB1,lee@clinic.example,Night call,2026-03-04 19:00,2026-03-04 07:00,Ward B,Yes\n"
    "Dr Kim,LB2,kim@clinic.example,Day clinic,2026-03-04 08:00,2026-03-04 16:00,,Yes\n"
    "Dr Roe,LB3,,Day clinic,2026-03-04 08:00,2026-03-04 12:00,,No\n"
)


async def test_shifts_tomorrow_lists_who_is_on(slack: SlackClient) -> None:
    await make_actor(slack.core, "US", ("staff",))
    snapshot = await service.parse_upload(slack.core, None, "march.csv", EXPORT.encode())
    await service.import_schedule(slack.core, None, snapshot, actor="cli:admin")

    assert (await slack.command("shifts tomorrow", rid="shifts")).status == 200
    await slack.fake.wait_for(lambda: slack.fake.responses["shifts"])
    text = json.dumps(slack.fake.responses["shifts"][0])
    # Earliest first, in the practice's zone; the unpublished shift is not on.
    assert text.index("08:00-16:00  Dr Kim") < text.index("19:00-Thu 07:00  Dr Lee")
    assert "Night call" in text and "Dr Roe" not in text and "Tomorrow" in text

    assert (await slack.command("shifts 2026-03-10", rid="none")).status == 200
    await slack.fake.wait_for(lambda: slack.fake.responses["none"])
    assert "No published shifts" in json.dumps(slack.fake.responses["none"][0])

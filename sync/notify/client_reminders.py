"""Reminders to clients 24 h before their visit (optional per practice: `client-notices reminders on`).

The leader's job queues them through the same ledger as the change messages: once per visit and
start time per channel (a visit moved into the window is reminded of its new time; a visit edited
in other ways is not reminded twice), with the same rules: opt-outs, quiet hours, the platform
that reminds its clients itself, no service unless details are on. At sending time the visit is
read again: a reminder whose visit was cancelled or moved since is skipped. Visits booked inside
the last 24 h before they start get no reminder (the booking message is fresh), nor do visits
starting within the hour.

A recurring series is reminded visit by visit: each occurrence in the window (expanded with the
series helpers' work budget; an override, one changed visit, is a single row) gets its own reminder,
keyed by the series and that visit's start, so each is queued once. At sending time the series is
read again: a visit it no longer has (an EXDATE, a new rule, the series cancelled) is skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sync.engine.series import occurrences_between, single
from sync.notify.clients import configured_channels, queue_notice, send_due
from sync.runtime.core import Core
from sync.services.client_notices import ClientNoticeSettings, notice_settings
from sync.store.model import Appointment, ClientNotice, Practice

__all__ = ["AHEAD", "MIN_AHEAD", "queue_reminders", "send_job"]

AHEAD = timedelta(hours=24)
MIN_AHEAD = timedelta(hours=1)
#: Visits read per page (every visit in the window is looked at each run; those already queued cost one
#: IN query per page).
BATCH = 500


def reminder_key(appt: Appointment) -> str:
    """The ledger key of a visit's reminder at its current start (the channel is appended)."""
    return f"{appt.id}:r{int(appt.start.timestamp())}:reminder"


async def queue_reminders(core: Core) -> int:
    """Queue the reminders now due for every practice that wants them; how many messages were queued."""
    available = configured_channels(core)
    if not available:
        return 0
    now = core.clock()
    queued = 0
    async with core.store.session() as s:
        practices = [p for p in (await s.scalars(select(Practice).order_by(Practice.id))).all()
                     if notice_settings(p.settings).reminders]
        practice_ids = [p.id for p in practices]
    for practice_id in practice_ids:
        async with core.store.session() as s:
            practice = await s.get(Practice, practice_id)
            if practice is None:
                continue
            wanted = notice_settings(practice.settings, practice.name)
            channels = [c for c, on in (("email", wanted.email), ("sms", wanted.sms)) if on and c in available]
            if not wanted.reminders or not channels:
                continue
            after: tuple[datetime, int] | None = None
            while True:  # pages by (start, id): every visit in the window is looked at, each run
                query = select(Appointment).where(
                    Appointment.practice_id == practice.id, Appointment.status == "confirmed",
                    single(), Appointment.start > now + MIN_AHEAD, Appointment.start <= now + AHEAD)
                if after is not None:
                    query = query.where(or_(Appointment.start > after[0],
                                            and_(Appointment.start == after[0], Appointment.id > after[1])))
                visits = (await s.scalars(query.order_by(Appointment.start, Appointment.id).limit(BATCH))).all()
                if not visits:
                    break
                after = (visits[-1].start, visits[-1].id)
                keys = [reminder_key(a) + f":{c}" for a in visits for c in ("email", "sms")]
                seen = set((await s.scalars(select(ClientNotice.key).where(ClientNotice.key.in_(keys)))).all())
                for appt in visits:
                    key = reminder_key(appt)
                    if all(f"{key}:{c}" in seen for c in channels) or appt.created_at > appt.start - AHEAD:
                        continue
                    queued += await queue_notice(core, s, practice, appt, wanted, kind="reminder", key=key,
                                                 sequence=appt.version, available=available)
                if len(visits) < BATCH:
                    break
            queued += await _series_reminders(core, s, practice, wanted, channels, available, now)
    return queued


async def _series_reminders(core: Core, s: AsyncSession, practice: Practice, wanted: ClientNoticeSettings,
                            channels: list[str], available: frozenset[str], now: datetime) -> int:
    """Queue the reminders of the practice's recurring visits in the window, one per occurrence."""
    visits = await occurrences_between(s, now + MIN_AHEAD + timedelta(microseconds=1), now + AHEAD,
                                       Appointment.practice_id == practice.id, Appointment.status == "confirmed")
    queued = 0
    for n in range(0, len(visits), BATCH):
        page = visits[n:n + BATCH]
        keys = [reminder_key(a) + f":{c}" for a in page for c in ("email", "sms")]
        seen = set((await s.scalars(select(ClientNotice.key).where(ClientNotice.key.in_(keys)))).all())
        for occurrence in page:
            key = reminder_key(occurrence)
            if all(f"{key}:{c}" in seen for c in channels) or occurrence.created_at > occurrence.start - AHEAD:
                continue
            queued += await queue_notice(core, s, practice, occurrence, wanted, kind="reminder", key=key,
                                         sequence=occurrence.version, available=available)
    return queued


async def send_job(core: Core) -> None:
    """The leader's periodic job: queue the reminders that are due, then send what is due."""
    await queue_reminders(core)
    await send_due(core)

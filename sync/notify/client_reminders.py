"""Reminders to clients 24 h before their visit (optional per practice: `client-notices reminders on`).

The leader's job queues them through the same ledger as the change messages: once per visit and
start time per channel (a visit moved into the window is reminded of its new time; a visit edited
in other ways is not reminded twice), with the same rules: opt-outs, quiet hours, the platform
that reminds its clients itself, no service unless details are on. At sending time the visit is
read again: a reminder whose visit was cancelled or moved since is skipped. Visits booked inside
the last 24 h before they start get no reminder (the booking message is fresh), nor do visits
starting within the hour.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from sync.notify.clients import mail_configured, queue_notice, send_due, sms_configured
from sync.runtime.core import Core
from sync.services.client_notices import notice_settings
from sync.store.model import Appointment, ClientNotice, Practice

__all__ = ["AHEAD", "MIN_AHEAD", "queue_reminders", "send_job"]

AHEAD = timedelta(hours=24)
MIN_AHEAD = timedelta(hours=1)
#: Visits looked at per practice and run (the job runs every minute; the window moves slowly).
BATCH = 500


def reminder_key(appt: Appointment) -> str:
    """The ledger key of a visit's reminder at its current start (the channel is appended)."""
    return f"{appt.id}:r{int(appt.start.timestamp())}:reminder"


async def queue_reminders(core: Core) -> int:
    """Queue the reminders now due for every practice that wants them; how many messages were queued."""
    if not (mail_configured(core) or sms_configured(core)):
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
            if not wanted.enabled or not wanted.reminders:
                continue
            visits = (await s.scalars(
                select(Appointment).where(Appointment.practice_id == practice.id, Appointment.status == "confirmed",
                                          Appointment.rrule.is_(None), Appointment.start > now + MIN_AHEAD,
                                          Appointment.start <= now + AHEAD)
                .order_by(Appointment.start).limit(BATCH))).all()
            keys = {reminder_key(a) + f":{c}": a.id for a in visits for c in ("email", "sms")}
            seen = set((await s.scalars(select(ClientNotice.key).where(ClientNotice.key.in_(list(keys))))).all()) \
                if keys else set()
            for appt in visits:
                key = reminder_key(appt)
                if {f"{key}:email", f"{key}:sms"} <= seen or appt.created_at > appt.start - AHEAD:
                    continue
                queued += await queue_notice(core, s, practice, appt, wanted, kind="reminder", key=key,
                                             sequence=appt.version)
    return queued


async def send_job(core: Core) -> None:
    """The leader's periodic job: queue the reminders that are due, then send what is due."""
    await queue_reminders(core)
    await send_due(core)

"""mirror edits and mirror backfill: what a hand edit of a mirror copy does, per practice, and the
resumable copy of existing appointments onto a calendar that becomes a mirror

Revision ID: 0012_mirror_edits
Revises: 0010_booking_details

`practice.mirror_edits` is "card" for every existing practice (today's behaviour). Existing mirror
calendars get no backfill state: their copies were written as appointments arrived.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_mirror_edits"
down_revision: str | None = "0010_booking_details"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("practice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mirror_edits", sa.String(length=8), nullable=False, server_default="card"))
    with op.batch_alter_table("calendar", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backfill_state", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("backfill_after", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("backfill_total", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("backfill_queued", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("backfill_requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendar", schema=None) as batch_op:
        batch_op.drop_column("backfill_requested_at")
        batch_op.drop_column("backfill_queued")
        batch_op.drop_column("backfill_total")
        batch_op.drop_column("backfill_after")
        batch_op.drop_column("backfill_state")
    with op.batch_alter_table("practice", schema=None) as batch_op:
        batch_op.drop_column("mirror_edits")

"""conflict notices: conflicts told to staff at most once, and their decisions

Revision ID: 0003_conflict_notices
Revises: 0002_slack_oauth
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_conflict_notices"
down_revision: str | None = "0002_reminders"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conflict_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("calendar_id", sa.Integer(), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("other_appointment_id", sa.Integer(), nullable=True),
        sa.Column("remote_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("remote_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("decision", sa.String(length=24), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflict_notice")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_conflict_notice_dedupe_key")),
    )
    with op.batch_alter_table("conflict_notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conflict_notice_practice_id"), ["practice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conflict_notice_link_id"), ["link_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conflict_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conflict_notice_link_id"))
        batch_op.drop_index(batch_op.f("ix_conflict_notice_practice_id"))
    op.drop_table("conflict_notice")

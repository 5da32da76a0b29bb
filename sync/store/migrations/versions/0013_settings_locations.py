"""alarms pushed to chat (one open incident per subject), and locations with their other names

Revision ID: 0013_settings_locations
Revises: 0012_mirror_edits
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_settings_locations"
down_revision: str | None = "0012_mirror_edits"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("open_key", sa.String(length=96), nullable=True),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("calendar_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_status", sa.String(length=12), nullable=False),
        sa.Column("recovery_status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alarm_open_key")),
    )
    with op.batch_alter_table("alarm", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alarm_practice_id"), ["practice_id"], unique=False)
    # Locations were never written before this revision: a unique name per practice is safe to add.
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refs", sa.JSON(), server_default="[]", nullable=False))
        batch_op.create_unique_constraint("uq_location_name", ["practice_id", "name"])


def downgrade() -> None:
    with op.batch_alter_table("location", schema=None) as batch_op:
        batch_op.drop_constraint("uq_location_name", type_="unique")
        batch_op.drop_column("refs")
    with op.batch_alter_table("alarm", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarm_practice_id"))
    op.drop_table("alarm")

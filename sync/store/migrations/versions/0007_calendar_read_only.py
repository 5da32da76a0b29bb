"""calendar read-only flag: what the adapter reports at discovery, stored on the calendar

Revision ID: 0007_calendar_read_only
Revises: 0005_audit_checkpoints

Until now read-only was decided by the connection's provider name; existing feed calendars (the
only read-only kind so far) get the flag, so nothing changes for them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_calendar_read_only"
down_revision: str | None = "0005_audit_checkpoints"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calendar", schema=None) as batch_op:
        batch_op.add_column(sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE calendar SET read_only = TRUE WHERE connection_id IN "
        "(SELECT id FROM connection WHERE provider = 'ics')"
    )


def downgrade() -> None:
    with op.batch_alter_table("calendar", schema=None) as batch_op:
        batch_op.drop_column("read_only")

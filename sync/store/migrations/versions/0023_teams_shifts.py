"""teams_shifts: what clinicbot wrote for a shift in a team's Microsoft Teams Shifts schedule

Revision ID: 0023_teams_shifts
Revises: 0022_crm
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_teams_shifts"
down_revision: str | None = "0022_crm"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shift") as batch:
        batch.add_column(sa.Column("teams_mailbox", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("teams_remote_id", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("teams_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shift") as batch:
        batch.drop_column("teams_hash")
        batch.drop_column("teams_remote_id")
        batch.drop_column("teams_mailbox")

"""shift_sent_mailbox: the mailbox an Outlook create was sent to whose answer is not recorded yet

Revision ID: 0024_shift_sent_mailbox
Revises: 0023_teams_shifts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_shift_sent_mailbox"
down_revision: str | None = "0023_teams_shifts"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shift") as batch:
        batch.add_column(sa.Column("sent_mailbox", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shift") as batch:
        batch.drop_column("sent_mailbox")

"""reminder ledger as the scheduler's source of truth: practitioner, next attempt, due index

Revision ID: 0002_reminders
Revises: 0002_slack_oauth
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_reminders"
down_revision: str | None = "0002_slack_oauth"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reminder_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("practitioner_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_reminder_ledger_practitioner_id"), ["practitioner_id"], unique=False
        )
        batch_op.create_index("ix_reminder_ledger_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reminder_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_reminder_ledger_due")
        batch_op.drop_index(batch_op.f("ix_reminder_ledger_practitioner_id"))
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("practitioner_id")

"""sms: clients' texts already acted on (STOP / START replay memory), and a sent message's platform id

Revision ID: 0020_sms
Revises: 0017_client_notices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_sms"
down_revision: str | None = "0018_tracked_events"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_inbound",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("intent", sa.String(length=8), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_inbound")),
        sa.UniqueConstraint("provider", "message_id", name="uq_sms_inbound_message"),
    )
    op.add_column("client_notice", sa.Column("remote_id", sa.String(length=64), nullable=True))
    op.create_index("ix_client_notice_remote_id", "client_notice", ["remote_id"])


def downgrade() -> None:
    op.drop_index("ix_client_notice_remote_id", table_name="client_notice")
    with op.batch_alter_table("client_notice") as batch:
        batch.drop_column("remote_id")
    op.drop_table("sms_inbound")

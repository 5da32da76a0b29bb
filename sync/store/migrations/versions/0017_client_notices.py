"""client notices: messages to clients about their visits, and the clients who opted out

Revision ID: 0017_client_notices
Revises: 0016_shifts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_client_notices"
down_revision: str | None = "0016_shifts"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("recipient_name", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["practice_id"], ["practice.id"], ondelete="CASCADE",
                                name=op.f("fk_client_notice_practice_id_practice")),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"], ondelete="SET NULL",
                                name=op.f("fk_client_notice_appointment_id_appointment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_notice")),
        sa.UniqueConstraint("key", name=op.f("uq_client_notice_key")),
    )
    op.create_index(op.f("ix_client_notice_practice_id"), "client_notice", ["practice_id"])
    op.create_index("ix_client_notice_due", "client_notice", ["status", "next_attempt_at"])
    op.create_table(
        "client_optout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practice.id"], ondelete="CASCADE",
                                name=op.f("fk_client_optout_practice_id_practice")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_optout")),
        sa.UniqueConstraint("practice_id", "address_hash", name="uq_client_optout_address"),
    )


def downgrade() -> None:
    op.drop_table("client_optout")
    op.drop_index("ix_client_notice_due", table_name="client_notice")
    op.drop_index(op.f("ix_client_notice_practice_id"), table_name="client_notice")
    op.drop_table("client_notice")

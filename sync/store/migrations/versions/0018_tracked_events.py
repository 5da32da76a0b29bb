"""tracked events: appointments of kind "activity", encrypted attachment copies, app-wide webhooks

Revision ID: 0018_tracked_events
Revises: 0017_client_notices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_tracked_events"
down_revision: str | None = "0017_client_notices"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=12), nullable=False, server_default="appointment"))
    op.create_table(
        "app_webhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("remote_id", sa.String(length=256), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_webhook")),
        sa.UniqueConstraint("integration", name=op.f("uq_app_webhook_integration")),
    )
    op.create_table(
        "attachment_copy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=512), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practice.id"], ondelete="CASCADE",
                                name=op.f("fk_attachment_copy_practice_id_practice")),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"], ondelete="CASCADE",
                                name=op.f("fk_attachment_copy_appointment_id_appointment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachment_copy")),
        sa.UniqueConstraint("appointment_id", "remote_id", name="uq_attachment_copy_remote"),
    )
    op.create_index(op.f("ix_attachment_copy_practice_id"), "attachment_copy", ["practice_id"])
    op.create_index(op.f("ix_attachment_copy_appointment_id"), "attachment_copy", ["appointment_id"])
    op.create_index(op.f("ix_attachment_copy_expires_at"), "attachment_copy", ["expires_at"])


def downgrade() -> None:
    op.drop_table("attachment_copy")
    op.drop_table("app_webhook")
    with op.batch_alter_table("appointment") as batch:
        batch.drop_column("kind")

"""booking sources: the external-identity table (staff on platforms) and the webhook replay memory

Revision ID: 0008_booking_sources
Revises: 0007_calendar_read_only

Each practitioner's Graph `upn` and `graph_object_id` are copied into external_identity as
(integration "graph", kind "upn" / "object_id"); the two columns stay until Graph reads the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_booking_sources"
down_revision: str | None = "0007_calendar_read_only"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "external_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"], ondelete="CASCADE",
                                name=op.f("fk_external_identity_practitioner_id_practitioner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_identity")),
        sa.UniqueConstraint("integration", "kind", "external_id", name="uq_external_identity_ref"),
    )
    op.create_index(op.f("ix_external_identity_practitioner_id"), "external_identity", ["practitioner_id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="CASCADE",
                                name=op.f("fk_webhook_delivery_connection_id_connection")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint("integration", "connection_id", "key", name="uq_webhook_delivery_key"),
    )
    op.create_index("ix_webhook_delivery_connection_seen", "webhook_delivery", ["connection_id", "seen_at"])
    op.execute(
        "INSERT INTO external_identity (practitioner_id, integration, kind, external_id, created_by, created_at) "
        "SELECT p.id, 'graph', 'upn', p.upn, 'migration', CURRENT_TIMESTAMP FROM practitioner p "
        "WHERE p.upn IS NOT NULL AND p.upn <> '' "
        "AND p.id = (SELECT MIN(q.id) FROM practitioner q WHERE q.upn = p.upn)"
    )
    op.execute(
        "INSERT INTO external_identity (practitioner_id, integration, kind, external_id, created_by, created_at) "
        "SELECT p.id, 'graph', 'object_id', p.graph_object_id, 'migration', CURRENT_TIMESTAMP FROM practitioner p "
        "WHERE p.graph_object_id IS NOT NULL AND p.graph_object_id <> '' "
        "AND p.id = (SELECT MIN(q.id) FROM practitioner q WHERE q.graph_object_id = p.graph_object_id)"
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_delivery_connection_seen", table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_index(op.f("ix_external_identity_practitioner_id"), table_name="external_identity")
    op.drop_table("external_identity")

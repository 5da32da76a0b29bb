"""crm: visits logged to a practice's CRM (HubSpot meetings, Salesforce events), one row per visit and CRM

Revision ID: 0022_crm
Revises: 0017_client_notices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_crm"
down_revision: str | None = "0021_leads"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("visit_key", sa.String(length=128), nullable=False),
        sa.Column("want", sa.Text(), nullable=False),
        sa.Column("want_version", sa.Integer(), nullable=False),
        sa.Column("done_version", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("person_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practice.id"], ondelete="CASCADE",
                                name=op.f("fk_crm_entry_practice_id_practice")),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="CASCADE",
                                name=op.f("fk_crm_entry_connection_id_connection")),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"], ondelete="SET NULL",
                                name=op.f("fk_crm_entry_appointment_id_appointment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_entry")),
        sa.UniqueConstraint("connection_id", "visit_key", name="uq_crm_entry_visit"),
    )
    op.create_index(op.f("ix_crm_entry_practice_id"), "crm_entry", ["practice_id"])
    op.create_index("ix_crm_entry_due", "crm_entry", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_crm_entry_due", table_name="crm_entry")
    op.drop_index(op.f("ix_crm_entry_practice_id"), table_name="crm_entry")
    op.drop_table("crm_entry")

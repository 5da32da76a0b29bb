"""leads: prospective clients from forms, and the submissions taken

Revision ID: 0021_leads
Revises: 0017_client_notices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_leads"
down_revision: str | None = "0020_sms"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("email_hash", sa.String(length=64), nullable=True),
        sa.Column("phone_hash", sa.String(length=64), nullable=True),
        sa.Column("service", sa.String(length=200), nullable=True),
        sa.Column("practitioner_id", sa.Integer(), nullable=True),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("wishes", sa.Text(), nullable=False),
        sa.Column("preference", sa.JSON(), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("proposed_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_practitioner_id", sa.Integer(), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposal_nonce", sa.String(length=32), nullable=True),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("card_status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practice.id"], ondelete="CASCADE",
                                name=op.f("fk_lead_practice_id_practice")),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_connection_id_connection")),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_practitioner_id_practitioner")),
        sa.ForeignKeyConstraint(["location_id"], ["location.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_location_id_location")),
        sa.ForeignKeyConstraint(["proposed_practitioner_id"], ["practitioner.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_proposed_practitioner_id_practitioner")),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_appointment_id_appointment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead")),
    )
    op.create_index(op.f("ix_lead_practice_id"), "lead", ["practice_id"])
    op.create_index(op.f("ix_lead_email_hash"), "lead", ["email_hash"])
    op.create_index(op.f("ix_lead_phone_hash"), "lead", ["phone_hash"])
    op.create_index("ix_lead_practice_status", "lead", ["practice_id", "status"])
    op.create_table(
        "lead_submission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("submission_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["lead.id"], ondelete="CASCADE",
                                name=op.f("fk_lead_submission_lead_id_lead")),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="SET NULL",
                                name=op.f("fk_lead_submission_connection_id_connection")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_submission")),
        sa.UniqueConstraint("source", "submission_id", name="uq_lead_submission_key"),
    )
    op.create_index(op.f("ix_lead_submission_lead_id"), "lead_submission", ["lead_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_lead_submission_lead_id"), table_name="lead_submission")
    op.drop_table("lead_submission")
    op.drop_index("ix_lead_practice_status", table_name="lead")
    op.drop_index(op.f("ix_lead_phone_hash"), table_name="lead")
    op.drop_index(op.f("ix_lead_email_hash"), table_name="lead")
    op.drop_index(op.f("ix_lead_practice_id"), table_name="lead")
    op.drop_table("lead")

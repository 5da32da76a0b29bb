"""shifts: the shift table (schedule snapshot, wanted and published calendar state per shift)

Revision ID: 0016_shifts
Revises: 0013_settings_locations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_shifts"
down_revision: str | None = "0013_settings_locations"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shift",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("shift_key", sa.String(length=200), nullable=False),
        sa.Column("person_name", sa.String(length=200), nullable=False),
        sa.Column("person_ids", sa.JSON(), nullable=False),
        sa.Column("assignment", sa.String(length=200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("practitioner_id", sa.Integer(), nullable=True),
        sa.Column("want_mailbox", sa.String(length=320), nullable=True),
        sa.Column("want_hash", sa.String(length=64), nullable=True),
        sa.Column("pub_mailbox", sa.String(length=320), nullable=True),
        sa.Column("pub_remote_id", sa.String(length=512), nullable=True),
        sa.Column("pub_hash", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["practice_id"], ["practice.id"], ondelete="CASCADE",
                                name=op.f("fk_shift_practice_id_practice")),
        sa.ForeignKeyConstraint(["source_id"], ["connection.id"], ondelete="CASCADE",
                                name=op.f("fk_shift_source_id_connection")),
        sa.ForeignKeyConstraint(["practitioner_id"], ["practitioner.id"], ondelete="SET NULL",
                                name=op.f("fk_shift_practitioner_id_practitioner")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shift")),
        sa.UniqueConstraint("source_id", "shift_key", name="uq_shift_source_key"),
    )
    op.create_index(op.f("ix_shift_practice_id"), "shift", ["practice_id"])
    op.create_index("ix_shift_practice_starts", "shift", ["practice_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_shift_practice_starts", table_name="shift")
    op.drop_index(op.f("ix_shift_practice_id"), table_name="shift")
    op.drop_table("shift")

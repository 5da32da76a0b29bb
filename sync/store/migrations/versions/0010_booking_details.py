"""booking details: the client's phone number on the appointment, encrypted like the email

Revision ID: 0010_booking_details
Revises: 0009_graph_identities

Booking platforms (Square's customer, Acuity's appointment, Calendly's invitee) carry the client's
phone; staff see it on the appointment's details card. The column holds ciphertext (EncryptedText),
so it is plain text in the schema. A no-show reported by a platform is the appointment status
"no_show", which the status column already allows: no schema change for it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_booking_details"
down_revision: str | None = "0009_graph_identities"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable): no table copy, on SQLite or PostgreSQL.
    op.add_column("appointment", sa.Column("client_phone", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("client_phone")

"""series fidelity: a series' RDATEs, and what the last read of a calendar skipped or repaired

Revision ID: 0004_series_fidelity
Revises: 0003_conflict_notices

Existing rows get an empty list in both columns: no series had RDATEs stored before (they were
dropped on reading), and no read has been noted yet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_series_fidelity"
down_revision: str | None = "0003_conflict_notices"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("rdates", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("calendar") as batch:
        batch.add_column(sa.Column("read_notes", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("calendar") as batch:
        batch.drop_column("read_notes")
    with op.batch_alter_table("appointment") as batch:
        batch.drop_column("rdates")

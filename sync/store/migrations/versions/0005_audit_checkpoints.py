"""audit checkpoints: the signed head of the audit chain, kept outside the audit table

Revision ID: 0005_audit_checkpoints
Revises: 0004_series_fidelity

The head starts unsigned at the chain's current end (a migration has no secret key); rows
already written keep their plain SHA-256 links and are anchored by the first keyed row after them.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005_audit_checkpoints"
down_revision: str | None = "0004_series_fidelity"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("keyed_from", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    last = op.get_bind().execute(sa.text("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")).first()
    seq, hash_ = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": hash_, "keyed_from": seq + 1, "mac": None,
                           "at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("audit_head")

"""graph identities: a practitioner's Microsoft UPN and Entra object id live in external_identity only

Revision ID: 0009_graph_identities
Revises: 0008_booking_sources

0008 copied `practitioner.upn` and `practitioner.graph_object_id` into external_identity (integration
"graph", kinds "upn" / "object_id") but the columns stayed the truth. This copies again what was set
since (a row 0008 copied whose column changed or was cleared is replaced; rows an admin made are
kept; an id already in the table is skipped), then drops the two columns. The downgrade restores the
columns from the identities.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_graph_identities"
down_revision: str | None = "0008_booking_sources"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # A row 0008 copied whose column has changed or been cleared since: the column is the truth.
    op.execute(
        "DELETE FROM external_identity WHERE integration = 'graph' AND kind = 'upn' AND created_by = 'migration' "
        "AND NOT EXISTS (SELECT 1 FROM practitioner p WHERE p.id = external_identity.practitioner_id "
        "AND p.upn = external_identity.external_id)"
    )
    op.execute(
        "DELETE FROM external_identity WHERE integration = 'graph' AND kind = 'object_id' "
        "AND created_by = 'migration' AND NOT EXISTS (SELECT 1 FROM practitioner p "
        "WHERE p.id = external_identity.practitioner_id AND p.graph_object_id = external_identity.external_id)"
    )
    # What is not in the table yet (an id already there, whoever holds it, is skipped).
    op.execute(
        "INSERT INTO external_identity (practitioner_id, integration, kind, external_id, created_by, created_at) "
        "SELECT p.id, 'graph', 'upn', p.upn, 'migration', CURRENT_TIMESTAMP FROM practitioner p "
        "WHERE p.upn IS NOT NULL AND p.upn <> '' "
        "AND p.id = (SELECT MIN(q.id) FROM practitioner q WHERE q.upn = p.upn) "
        "AND NOT EXISTS (SELECT 1 FROM external_identity e WHERE e.integration = 'graph' AND e.kind = 'upn' "
        "AND e.external_id = p.upn)"
    )
    op.execute(
        "INSERT INTO external_identity (practitioner_id, integration, kind, external_id, created_by, created_at) "
        "SELECT p.id, 'graph', 'object_id', p.graph_object_id, 'migration', CURRENT_TIMESTAMP FROM practitioner p "
        "WHERE p.graph_object_id IS NOT NULL AND p.graph_object_id <> '' "
        "AND p.id = (SELECT MIN(q.id) FROM practitioner q WHERE q.graph_object_id = p.graph_object_id) "
        "AND NOT EXISTS (SELECT 1 FROM external_identity e WHERE e.integration = 'graph' AND e.kind = 'object_id' "
        "AND e.external_id = p.graph_object_id)"
    )
    with op.batch_alter_table("practitioner", schema=None) as batch_op:
        batch_op.drop_column("graph_object_id")
        batch_op.drop_column("upn")


def downgrade() -> None:
    with op.batch_alter_table("practitioner", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upn", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("graph_object_id", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE practitioner SET upn = (SELECT MIN(e.external_id) FROM external_identity e "
        "WHERE e.practitioner_id = practitioner.id AND e.integration = 'graph' AND e.kind = 'upn' "
        "AND LENGTH(e.external_id) <= 320)"
    )
    op.execute(
        "UPDATE practitioner SET graph_object_id = (SELECT MIN(e.external_id) FROM external_identity e "
        "WHERE e.practitioner_id = practitioner.id AND e.integration = 'graph' AND e.kind = 'object_id' "
        "AND LENGTH(e.external_id) <= 64)"
    )

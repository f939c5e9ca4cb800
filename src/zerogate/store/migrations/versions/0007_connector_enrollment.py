"""connector enrollment tokens, revocation and the latest health report

A connector enrolls once with a one-time token (only its SHA-256 is stored), is cut off by
`revoked_at`, and reports its health (sessions, streams, bytes, RTT per gateway) as JSON.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("enrollment_hash", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("enrollment_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("health", sa.JSON(), nullable=True))
        batch.create_index(
            batch.f("ix_connectors_enrollment_hash"), ["enrollment_hash"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.drop_index(batch.f("ix_connectors_enrollment_hash"))
        batch.drop_column("health")
        batch.drop_column("revoked_at")
        batch.drop_column("enrolled_at")
        batch.drop_column("enrollment_expires_at")
        batch.drop_column("enrollment_hash")

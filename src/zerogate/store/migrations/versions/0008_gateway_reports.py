"""gateway reports: the latest audit spool state of each gateway worker

Each gateway worker sends its spool's state with the events it ships (`core.spool_report`);
the control plane keeps the latest one per (gateway, worker).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("worker", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_reports")),
        sa.UniqueConstraint("gateway", "worker", name=op.f("uq_gateway_reports_gateway")),
    )


def downgrade() -> None:
    op.drop_table("gateway_reports")

"""device posture reports; the audit head counts state changes apart from access decisions

Gateways record one audit event per access decision, so the chain's sequence number moves
with traffic; the policy snapshot's serial must move only when the state it carries changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_postures",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("os_family", sa.String(length=16), nullable=False),
        sa.Column("os_version", sa.String(length=64), nullable=False),
        sa.Column("disk_encrypted", sa.Boolean(), nullable=False),
        sa.Column("firewall", sa.Boolean(), nullable=False),
        sa.Column("screen_lock", sa.Boolean(), nullable=False),
        sa.Column("processes", sa.JSON(), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certificate_serial", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_postures_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_postures")),
    )
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(
            sa.Column("state_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute("UPDATE audit_head SET state_seq = seq")


def downgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("state_seq")
    op.drop_table("device_postures")

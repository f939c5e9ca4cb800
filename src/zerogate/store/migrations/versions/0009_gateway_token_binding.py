"""gateway token binding: a gateway-scoped token names the gateway it may speak for

The control plane refuses events and spool reports that name another gateway. The token
`zerogate up` made for its own gateway (`local-gateway`) is bound to that gateway (`local`);
other existing gateway tokens stay unbound, as they were.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("gateway", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE api_tokens SET gateway = 'local'"
        " WHERE name = 'local-gateway' AND scope = 'gateway' AND created_by = 'system'"
    )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("gateway")

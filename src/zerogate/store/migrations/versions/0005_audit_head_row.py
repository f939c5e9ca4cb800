"""audit chain: the head row always exists

Creating it lazily on the first event raced when several writers started at once on a new
database; with the row in place, every append just locks it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    statement = sa.text(
        "INSERT INTO audit_head (id, seq, hash) "
        "SELECT 1, 0, :genesis WHERE NOT EXISTS (SELECT 1 FROM audit_head)"
    )
    op.get_bind().execute(statement, {"genesis": GENESIS})


def downgrade() -> None:
    pass

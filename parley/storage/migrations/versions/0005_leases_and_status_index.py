"""a lease on conversations, so turns take turns across worker processes; contents by status

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("lease_token", sa.String(40)))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
    # Searches look up a memory's disabled contents on every query.
    op.create_index("ix_memory_contents_status", "memory_contents", ["memory_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_memory_contents_status", "memory_contents")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_token")

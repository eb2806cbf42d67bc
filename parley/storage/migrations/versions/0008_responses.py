"""stored Responses API responses and their input and output items

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        # No cascade: a response others continue from cannot be removed under them.
        sa.Column("previous_response_id", sa.String(64), sa.ForeignKey("responses.id")),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("body", Json, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
    )
    op.create_index("ix_responses_key_id", "responses", ["key_id"])
    op.create_index("ix_responses_previous", "responses", ["previous_response_id"])
    op.create_table(
        "response_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("response_id", sa.String(64), sa.ForeignKey("responses.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("item", Json, nullable=False),
    )
    op.create_index("ix_response_items_order", "response_items", ["response_id", "position"], unique=True)
    op.create_index("ix_response_items_item", "response_items", ["item_id"])


def downgrade() -> None:
    op.drop_table("response_items")
    op.drop_table("responses")

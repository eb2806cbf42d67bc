"""v8 integrations, conversations and messages

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hash_token_sealed", sa.Text, nullable=False),
        sa.Column("admin_token_sealed", sa.Text, nullable=False),
        sa.Column("default_model", sa.String(200)),
        sa.Column("default_embedding_model", sa.String(200)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "integration_id", sa.String(40), sa.ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("external_user_id", sa.String(255), nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("settings", Json, nullable=False),
        sa.Column("reference_settings", Json, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("custom_data", Json),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS),
    )
    op.create_index("ix_conversations_owner", "conversations", ["integration_id", "external_user_id", "status"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "conversation_id", sa.String(40), sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text),
        sa.Column("reasoning", sa.Text),
        sa.Column("tool_calls", Json),
        sa.Column("tool_call_id", sa.String(255)),
        sa.Column("attachments", Json),
        sa.Column("custom_data", Json),
        sa.Column("model", sa.String(200)),
        sa.Column("finish_reason", sa.String(40)),
        sa.Column("usage", Json),
        sa.Column("references", Json),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_messages_conversation", "messages", ["conversation_id", "position"], unique=True)


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("conversations")
    op.drop_table("integrations")

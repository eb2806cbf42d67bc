"""knowledge bases: memories, contents, chunks (the embedding queue); project memories

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from parley.storage.models import EmbeddingType

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
# pgvector's HNSW indexes need a fixed dimension: one partial index per common embedding size.
INDEXED_DIMS = (384, 512, 768, 1024, 1536)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("memories", Json))
    op.create_table(
        "memories",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "integration_id", sa.String(40), sa.ForeignKey("integrations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("max_tokens_per_chunk", sa.Integer, nullable=False),
        sa.Column("overlap_tokens", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("index_version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_memories_integration_id", "memories", ["integration_id"])
    op.create_table(
        "memory_contents",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("memory_id", sa.String(40), sa.ForeignKey("memories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_type", sa.String(20), nullable=False),
        sa.Column("key", sa.String(512)),
        sa.Column("attrs", Json),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_memory_contents_memory_id", "memory_contents", ["memory_id"])
    op.create_index("ix_memory_contents_key", "memory_contents", ["memory_id", "key"], unique=True)
    op.create_table(
        "memory_chunks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("memory_id", sa.String(40), nullable=False),
        sa.Column("content_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("chunk_index", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("token_count", sa.Integer, nullable=False),
        sa.Column("terms", sa.Text),
        sa.Column("embedding", EmbeddingType()),
        sa.Column("dims", sa.Integer),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("embedding_status", sa.String(20), nullable=False),
        sa.Column("embedding_error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before", TS, nullable=False),
        sa.Column("lease_token", sa.String(40)),
        sa.Column("locked_until", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_memory_chunks_queue", "memory_chunks", ["embedding_status", "not_before"])
    op.create_index("ix_memory_chunks_content", "memory_chunks", ["content_id", "version"])
    op.create_index("ix_memory_chunks_search", "memory_chunks", ["memory_id", "active"])
    if postgres:
        for dims in INDEXED_DIMS:
            op.execute(
                f"CREATE INDEX ix_memory_chunks_hnsw_{dims} ON memory_chunks "
                f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
            )


def downgrade() -> None:
    op.drop_table("memory_chunks")
    op.drop_table("memory_contents")
    op.drop_table("memories")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("memories")

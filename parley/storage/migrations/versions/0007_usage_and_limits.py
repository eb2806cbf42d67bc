"""usage records, limits and budgets, their shared counters and stream slots

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "limits",
        sa.Column("scope", sa.String(20), primary_key=True),
        sa.Column("subject_id", sa.String(64), primary_key=True),
        sa.Column("rpm", sa.Integer),
        sa.Column("tpm", sa.Integer),
        sa.Column("max_streams", sa.Integer),
        sa.Column("budget_usd", sa.Float),
        sa.Column("budget_period", sa.String(10)),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "quota_counters",
        sa.Column("key", sa.String(600), primary_key=True),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("used", sa.Float, nullable=False),
        sa.Column("granted", sa.Float, nullable=False),
    )
    op.create_table(
        "stream_slots",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_stream_slots_key", "stream_slots", ["key"])
    op.create_table(
        "usage_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("caller_kind", sa.String(20), nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("project_id", sa.String(40)),
        sa.Column("app_id", sa.String(40)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("dialect", sa.String(20), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100)),
        sa.Column("deployment", sa.String(100)),
        sa.Column("upstream_model", sa.String(200)),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("reasoning_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(100)),
        sa.Column("streamed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_usage_records_created_at", "usage_records", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_created_at", "usage_records")
    op.drop_table("usage_records")
    op.drop_index("ix_stream_slots_key", "stream_slots")
    op.drop_table("stream_slots")
    op.drop_table("quota_counters")
    op.drop_table("limits")

"""foreign keys with ON DELETE CASCADE on session messages and memory chunks

Every owned row now goes with its owner by the database's own doing: a session's messages with
the session, a content's chunks with the content (and a memory's with the memory). Rows
already orphaned (by deletes that missed them) are removed first, or the keys could not be made.
SQLite rebuilds the two tables (batch mode); PostgreSQL adds the constraints in place.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM session_messages WHERE NOT EXISTS (SELECT 1 FROM chat_sessions s "
        "WHERE s.project_id = session_messages.project_id AND s.id = session_messages.session_id)"
    )
    op.execute(
        "DELETE FROM memory_chunks WHERE "
        "NOT EXISTS (SELECT 1 FROM memory_contents c WHERE c.id = memory_chunks.content_id) "
        "OR NOT EXISTS (SELECT 1 FROM memories m WHERE m.id = memory_chunks.memory_id)"
    )
    with op.batch_alter_table("session_messages") as batch:
        batch.create_foreign_key(
            "fk_session_messages_session",
            "chat_sessions",
            ["project_id", "session_id"],
            ["project_id", "id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("memory_chunks") as batch:
        batch.create_foreign_key(
            "fk_memory_chunks_content", "memory_contents", ["content_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key("fk_memory_chunks_memory", "memories", ["memory_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("memory_chunks") as batch:
        batch.drop_constraint("fk_memory_chunks_memory", type_="foreignkey")
        batch.drop_constraint("fk_memory_chunks_content", type_="foreignkey")
    with op.batch_alter_table("session_messages") as batch:
        batch.drop_constraint("fk_session_messages_session", type_="foreignkey")

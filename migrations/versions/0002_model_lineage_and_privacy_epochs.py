"""Model lineage and privacy epochs: forgetting reaches the trained models.

Models record their parent, root and corpus snapshot, and `model_authors` lists whose text
their lineage read. Models that exist before this revision have no recorded lineage, so
every author of their server is listed for them: a forget request retires them too.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 17:51:05.114999
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): no table copy, and `alembic upgrade --sql` works.
    op.create_table(
        "model_authors",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["trained_models.id"],
            name=op.f("fk_model_authors_model_id_trained_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "author_id", name=op.f("pk_model_authors")),
    )
    op.create_index("ix_model_authors_author_id", "model_authors", ["author_id"], unique=False)

    op.add_column(
        "servers", sa.Column("privacy_epoch", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "servers",
        sa.Column("deleted_chars_since_root", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "servers", sa.Column("first_deletion_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "servers", sa.Column("rebuild_requested_at", sa.DateTime(timezone=True), nullable=True)
    )

    op.add_column("trained_models", sa.Column("parent_id", sa.Integer(), nullable=True))
    op.add_column(
        "trained_models",
        sa.Column("root", sa.String(length=16), server_default="scratch", nullable=False),
    )
    op.add_column(
        "trained_models", sa.Column("corpus_through_message_id", sa.BigInteger(), nullable=True)
    )
    op.add_column(
        "trained_models", sa.Column("corpus_through_document_id", sa.Integer(), nullable=True)
    )
    op.add_column(
        "trained_models", sa.Column("corpus_snapshot_at", sa.DateTime(timezone=True), nullable=True)
    )

    op.add_column("training_runs", sa.Column("privacy_epoch", sa.Integer(), nullable=True))
    op.add_column(
        "training_runs",
        sa.Column("rebuild", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "training_runs", sa.Column("priority", sa.Integer(), server_default="0", nullable=False)
    )

    # Conservative lineage for models trained before lineage was recorded.
    op.execute(
        "INSERT INTO model_authors (model_id, author_id) "
        "SELECT DISTINCT m.id, x.author_id FROM trained_models m JOIN ("
        " SELECT server_id, author_id FROM messages"
        " UNION SELECT server_id, uploader_id FROM documents"
        ") x ON x.server_id = m.server_id"
    )


def downgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("rebuild")
        batch_op.drop_column("privacy_epoch")

    with op.batch_alter_table("trained_models", schema=None) as batch_op:
        batch_op.drop_column("corpus_snapshot_at")
        batch_op.drop_column("corpus_through_document_id")
        batch_op.drop_column("corpus_through_message_id")
        batch_op.drop_column("root")
        batch_op.drop_column("parent_id")

    with op.batch_alter_table("servers", schema=None) as batch_op:
        batch_op.drop_column("rebuild_requested_at")
        batch_op.drop_column("first_deletion_at")
        batch_op.drop_column("deleted_chars_since_root")
        batch_op.drop_column("privacy_epoch")

    with op.batch_alter_table("model_authors", schema=None) as batch_op:
        batch_op.drop_index("ix_model_authors_author_id")

    op.drop_table("model_authors")

"""Initial schema: servers, channels, messages, documents, opt-outs, models, training runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 15:08:05.686306
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opt_outs",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("server_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "server_id", name=op.f("pk_opt_outs")),
    )
    op.create_table(
        "servers",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("collecting", sa.Boolean(), nullable=False),
        sa.Column("arch", sa.String(length=8), nullable=True),
        sa.Column("hidden_size", sa.Integer(), nullable=True),
        sa.Column("num_layers", sa.Integer(), nullable=True),
        sa.Column("schedule_interval_minutes", sa.Float(), nullable=True),
        sa.Column("schedule_cron", sa.String(length=100), nullable=True),
        sa.Column("schedule_enabled", sa.Boolean(), nullable=False),
        sa.Column("generate_cooldown_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_servers")),
    )
    op.create_table(
        "channels",
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("collect", sa.Boolean(), nullable=False),
        sa.Column("replies", sa.Boolean(), nullable=False),
        sa.Column("reply_chance", sa.Float(), nullable=False),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_channels_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server_id", "channel_id", name=op.f("pk_channels")),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("uploader_id", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_documents_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("server_id", "sha256", name=op.f("uq_documents_server_id_sha256")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_uploader_id", ["uploader_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_messages_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_author_id", ["author_id"], unique=False)
        batch_op.create_index(
            "ix_messages_server_id_author_id", ["server_id", "author_id"], unique=False
        )
        batch_op.create_index(
            "ix_messages_server_id_created_at", ["server_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_messages_server_id_id", ["server_id", "id"], unique=False)

    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "trigger",
            sa.Enum(
                "schedule",
                "admin",
                "cli",
                name="run_trigger",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "mode",
            sa.Enum(
                "fine-tune",
                "scratch",
                name="run_mode",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("arch", sa.String(length=8), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "cancelled",
                name="run_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column("notify_channel_id", sa.BigInteger(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("loss_history", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("corpus_chars_at_start", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_training_runs_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_runs_server_id_status", ["server_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_training_runs_status_queued_at", ["status", "queued_at"], unique=False
        )

    op.create_table(
        "trained_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("checkpoint_path", sa.String(length=500), nullable=False),
        sa.Column("arch", sa.String(length=8), nullable=False),
        sa.Column("param_count", sa.Integer(), nullable=False),
        sa.Column("chars_trained", sa.BigInteger(), nullable=False),
        sa.Column("val_loss_nats", sa.Float(), nullable=True),
        sa.Column("val_bits_per_char", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.id"],
            name=op.f("fk_trained_models_run_id_training_runs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["servers.id"],
            name=op.f("fk_trained_models_server_id_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trained_models")),
    )
    with op.batch_alter_table("trained_models", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trained_models_server_id_active", ["server_id", "active"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trained_models", schema=None) as batch_op:
        batch_op.drop_index("ix_trained_models_server_id_active")

    op.drop_table("trained_models")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_training_runs_status_queued_at")
        batch_op.drop_index("ix_training_runs_server_id_status")

    op.drop_table("training_runs")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_server_id_id")
        batch_op.drop_index("ix_messages_server_id_created_at")
        batch_op.drop_index("ix_messages_server_id_author_id")
        batch_op.drop_index("ix_messages_author_id")

    op.drop_table("messages")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_uploader_id")

    op.drop_table("documents")
    op.drop_table("channels")
    op.drop_table("servers")
    op.drop_table("opt_outs")

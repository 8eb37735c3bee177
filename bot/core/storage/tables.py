"""The database schema (SQLAlchemy 2.0 declarative, typed with `Mapped[...]`).

Plain ids and strings only: Discord snowflakes are stored as 64-bit integers, nothing here
knows about discord.py. Every table that belongs to a server cascades from `servers`, so
purging a server is one DELETE. Constraint names follow a naming convention so Alembic can
drop and recreate them on SQLite (batch mode) and PostgreSQL alike.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bot.core.kinds import RunMode, RunStatus, RunTrigger

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Opt-outs "everywhere" are stored with this server id: a real NULL would defeat the
# unique constraint (NULLs are distinct) on both SQLite and PostgreSQL.
EVERYWHERE = 0


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zones: SQLAlchemy stores the wall-clock digits and drops the offset,
    and reads back naive datetimes. Normalising to UTC on the way in (naive values are taken
    as UTC) and tagging UTC on the way out makes SQL comparisons correct (the stored text
    sorts chronologically) and lets Python compare values from SQLite and PostgreSQL alike.
    The column type in the database is a plain `DateTime(timezone=True)`.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        int: Integer,
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as the string value (not the member name) in a VARCHAR with a CHECK, so the
    # values read naturally in SQL and adding a member is a plain migration.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Server(Base):
    """A Discord guild (or the console's pretend server) and its settings."""

    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100), default="")
    collecting: Mapped[bool] = mapped_column(Boolean, default=True)
    # Model preferences for the next from-scratch run; NULL means "use the config default".
    arch: Mapped[str | None] = mapped_column(String(8))
    hidden_size: Mapped[int | None]
    num_layers: Mapped[int | None]
    # Schedule overrides; NULL means "use the config default".
    schedule_interval_minutes: Mapped[float | None] = mapped_column(Float)
    schedule_cron: Mapped[str | None] = mapped_column(String(100))
    schedule_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Cooldown overrides; NULL means "use the config default".
    generate_cooldown_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped by every user-level privacy request (forget, opt-out) touching this server: a
    # run planned under an older epoch may have read the forgotten text, so it is discarded.
    privacy_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Ordinary deletions since the active lineage's root run: the weights still hold this
    # text (the lineage guard blocks verbatim copies of it) until a rebuild from the root.
    deleted_chars_since_root: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    first_deletion_at: Mapped[datetime | None]
    # Set when a rebuild from the root is owed (a privacy request, or deletions past the
    # thresholds) and no run could be queued for it yet; cleared once it is queued.
    rebuild_requested_at: Mapped[datetime | None]


class Channel(Base):
    """A channel an admin opted in for collection and/or replies."""

    __tablename__ = "channels"

    server_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    collect: Mapped[bool] = mapped_column(Boolean, default=True)
    replies: Mapped[bool] = mapped_column(Boolean, default=False)
    reply_chance: Mapped[float] = mapped_column(Float, default=0.0)
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """One collected Discord message; the id is Discord's, so re-ingesting is idempotent."""

    __tablename__ = "messages"
    __table_args__ = (
        # Training streams a server's text in id order; privacy queries go by author;
        # "characters since the last successful run" goes by creation time.
        Index("ix_messages_server_id_id", "server_id", "id"),
        Index("ix_messages_server_id_created_at", "server_id", "created_at"),
        Index("ix_messages_server_id_author_id", "server_id", "author_id"),
        Index("ix_messages_author_id", "author_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(BigInteger)
    author_id: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]


class Document(Base):
    """An uploaded .txt file; deduplicated per server by its sha256."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("server_id", "sha256"),
        Index("ix_documents_uploader_id", "uploader_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    uploader_id: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OptOut(Base):
    """A user who asked not to be collected, in one server or everywhere (server_id = 0)."""

    __tablename__ = "opt_outs"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Not a foreign key: EVERYWHERE (0) is not a server. Purging a server deletes its rows.
    server_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainedModel(Base):
    """A checkpoint on disk for a server; at most one per server is active."""

    __tablename__ = "trained_models"
    __table_args__ = (Index("ix_trained_models_server_id_active", "server_id", "active"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    checkpoint_path: Mapped[str] = mapped_column(String(500))
    arch: Mapped[str] = mapped_column(String(8))
    param_count: Mapped[int]
    chars_trained: Mapped[int] = mapped_column(BigInteger)
    val_loss_nats: Mapped[float | None] = mapped_column(Float)
    val_bits_per_char: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    # Lineage: the model this one was fine-tuned from (None: a root) and what the root was.
    # Not a foreign key: a pruned parent's row goes, what its lineage saw stays recorded in
    # `model_authors` and in this model's verbatim index.
    parent_id: Mapped[int | None]
    root: Mapped[str] = mapped_column(String(16), default="scratch", server_default="scratch")
    # The corpus this model's run read: the newest message and document ids in its
    # snapshot, and when it was taken.
    corpus_through_message_id: Mapped[int | None] = mapped_column(BigInteger)
    corpus_through_document_id: Mapped[int | None]
    corpus_snapshot_at: Mapped[datetime | None]


class ModelAuthor(Base):
    """An author (of messages, or uploader of documents) whose text some run in a model's
    lineage read: the union over the model and all its ancestors. A user's forget request
    retires every model listed for them."""

    __tablename__ = "model_authors"
    __table_args__ = (Index("ix_model_authors_author_id", "author_id"),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("trained_models.id", ondelete="CASCADE"), primary_key=True
    )
    author_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)


class TrainingRun(Base):
    """One queued, running or finished training run; survives restarts."""

    __tablename__ = "training_runs"
    __table_args__ = (
        Index("ix_training_runs_status_queued_at", "status", "queued_at"),
        Index("ix_training_runs_server_id_status", "server_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"))
    trigger: Mapped[RunTrigger] = mapped_column(_enum(RunTrigger, "run_trigger"))
    mode: Mapped[RunMode] = mapped_column(_enum(RunMode, "run_mode"))
    arch: Mapped[str] = mapped_column(String(8))  # gru | lstm | rnn | auto
    status: Mapped[RunStatus] = mapped_column(
        _enum(RunStatus, "run_status"), default=RunStatus.QUEUED
    )
    requested_by: Mapped[int | None] = mapped_column(BigInteger)
    # Where to post the result when the run outlives the interaction token (Discord only).
    notify_channel_id: Mapped[int | None] = mapped_column(BigInteger)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Latest progress: {"step", "total_steps", "loss", "val_loss", "chars_per_sec", "eta_seconds"}.
    progress: Mapped[dict[str, Any] | None]
    # [[step, train_loss, val_loss_or_null], ...] in nats/char.
    loss_history: Mapped[list[Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    corpus_chars_at_start: Mapped[int | None] = mapped_column(BigInteger)
    # The server's privacy epoch when the run was planned (see `Server.privacy_epoch`).
    privacy_epoch: Mapped[int | None]
    # A rebuild retrains from the lineage's root (never from the server's model) after
    # privacy requests or enough deletions, and activates whatever its loss.
    rebuild: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Claimed highest first, then oldest first: rebuild > admin > scheduled.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

"""Parrot's loggers: records that never quote a user's words from a failed database statement.

A database error's text can hold message content. SQLAlchemy appends the bound parameters
(`make_engine` hides those), and PostgreSQL's own DETAIL quotes the failing row ("Failing
row contains (…)"). A log file is out of reach of `/privacy forget`, so every record of a
Parrot logger swaps such an error for its class and the first line of its message, which
names only tables, columns and constraints. The stack is kept: it says where, not what.
"""

from __future__ import annotations

import logging
import traceback

from sqlalchemy.exc import StatementError


def get_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with the redaction filter attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactDatabaseErrors) for f in logger.filters):
        logger.addFilter(RedactDatabaseErrors())
    return logger


def install_redaction(handler: logging.Handler) -> None:
    """Also redact records of other libraries' loggers (SQLAlchemy's, discord.py's) that
    reach `handler`. Standalone mode does this for its own handlers; a host bot may too."""
    if not any(isinstance(f, RedactDatabaseErrors) for f in handler.filters):
        handler.addFilter(RedactDatabaseErrors())


def describe_database_error(error: BaseException) -> str:
    """'IntegrityError: duplicate key value violates unique constraint "servers_pkey"'."""
    statement_error = _statement_error_in(error)
    if statement_error is None:
        return type(error).__name__
    original = statement_error.orig
    first_line = str(original).strip().splitlines()[0] if original is not None else ""
    return f"{type(statement_error).__name__}: {first_line}".rstrip(": ")


class RedactDatabaseErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                describe_database_error(arg)
                if isinstance(arg, BaseException) and _carries_statement_error(arg)
                else arg
                for arg in record.args
            )
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and _carries_statement_error(error):
            stack = "".join(traceback.format_tb(error.__traceback__))
            record.exc_text = (
                f"Traceback (most recent call last):\n{stack}{describe_database_error(error)}"
                " [details withheld: they may quote user data]"
            )
        return True


def _carries_statement_error(error: BaseException) -> bool:
    return _statement_error_in(error) is not None


def _statement_error_in(error: BaseException) -> StatementError | None:
    """The SQLAlchemy error in `error`'s cause/context chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, StatementError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None

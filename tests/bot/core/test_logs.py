"""Logs never quote a user's words, even when a statement that carried them fails."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine, text

from bot.core.logs import describe_database_error, get_logger
from bot.core.storage.corpus import IncomingMessage
from bot.core.storage.message_buffer import MessageBuffer

SECRET = "my very private words about my neighbour"


def failing_store(engine: Engine):
    """A store whose statement fails while carrying message text: a row with no server.
    PostgreSQL quotes the whole failing row in its error ("Failing row contains …")."""

    def store(server_id: int, messages: list[IncomingMessage]) -> int:
        with engine.begin() as connection:
            for message in messages:
                connection.execute(
                    text(
                        "INSERT INTO messages (id, server_id, channel_id, author_id, content)"
                        " VALUES (:id, NULL, 1, 2, :content)"
                    ),
                    {"id": message.id, "content": message.content},
                )
        return len(messages)

    return store


async def test_a_failed_store_leaves_no_message_text_in_the_log(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = MessageBuffer(failing_store(engine), max_batch=1, interval=60.0)
    with caplog.at_level(logging.INFO):
        await buffer.add(5, IncomingMessage(1, channel_id=1, author_id=2, content=SECRET))
        await buffer.close()
    assert "storing 1 messages of server 5 failed" in caplog.text
    assert "IntegrityError" in caplog.text  # what failed is still said …
    assert SECRET not in caplog.text  # … but never with whose words
    assert "my very private" not in caplog.text


def test_a_logged_database_error_keeps_its_class_and_stack_but_not_its_row(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    log = get_logger("bot.tests.logs")
    summary = ""
    try:
        failing_store(engine)(1, [IncomingMessage(9, channel_id=1, author_id=2, content=SECRET)])
    except Exception as error:
        log.exception("storing failed")
        log.warning("storing failed: %s", error)
        summary = describe_database_error(error)
    assert summary.startswith("IntegrityError")
    assert SECRET not in summary
    assert "Traceback" in caplog.text and "failing_store" not in caplog.text.split("\n")[0]
    assert SECRET not in caplog.text


def test_errors_that_are_not_from_the_database_are_logged_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = get_logger("bot.tests.logs")
    try:
        raise ValueError("bad width 7")
    except ValueError:
        log.exception("could not parse")
    assert "ValueError: bad width 7" in caplog.text

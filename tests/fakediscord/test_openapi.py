"""The OpenAPI validator on its own: path matching, parameters and bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakediscord.openapi import (
    VENDORED_SPEC,
    OpenApiValidator,
    default_spec_path,
    load_spec,
)


@pytest.fixture(scope="module")
def validator() -> OpenApiValidator:
    return OpenApiValidator()


def test_spec_is_vendored_in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARROT_DISCORD_OPENAPI", raising=False)
    assert default_spec_path() == VENDORED_SPEC
    assert VENDORED_SPEC.is_relative_to(Path(__file__).resolve().parent)
    assert default_spec_path().is_file()
    assert load_spec(default_spec_path())["openapi"].startswith("3.1")


def test_spec_location_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARROT_DISCORD_OPENAPI", str(tmp_path / "nope.json"))
    assert default_spec_path() == tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="PARROT_DISCORD_OPENAPI"):
        OpenApiValidator()


def test_literal_segments_win_over_placeholders(validator: OpenApiValidator) -> None:
    assert validator.match("/webhooks/1/tok/messages/@original") == (
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        {"webhook_id": "1", "webhook_token": "tok"},
    )
    matched = validator.match("/webhooks/1/tok/messages/2")
    assert (
        matched is not None
        and matched[0] == "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
    )


def test_valid_requests_pass(validator: OpenApiValidator) -> None:
    callback = {
        "type": 4,
        "data": {"content": "hi", "allowed_mentions": {"parse": []}, "flags": 64},
    }
    assert (
        validator.validate(
            "POST", "/interactions/1/tok/callback", {"with_response": "1"}, callback, has_body=True
        )
        == []
    )
    commands = [
        {
            "name": "generate",
            "description": "d",
            "options": [{"type": 3, "name": "start", "description": "s"}],
        }
    ]
    assert validator.validate("PUT", "/applications/1/commands", {}, commands, has_body=True) == []
    assert validator.validate("GET", "/gateway/bot", {}, None, has_body=False) == []


def test_snowflakes_may_be_integers(validator: OpenApiValidator) -> None:
    body = {
        "content": "x",
        "allowed_mentions": {"parse": [], "users": [123]},
        "attachments": [{"id": 0}],
    }
    assert validator.validate("POST", "/channels/1/messages", {}, body, has_body=True) == []


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "expected"),
    [
        ("GET", "/not/a/route", {}, None, "no such path"),
        ("DELETE", "/gateway/bot", {}, None, "method not allowed"),
        ("GET", "/channels/abc", {}, None, "path parameter 'channel_id'"),
        ("GET", "/channels/1/messages", {"limit": "many"}, None, "query parameter 'limit'"),
        ("GET", "/channels/1/messages", {"bogus": "1"}, None, "unknown query parameter 'bogus'"),
        ("POST", "/channels/1/messages", {}, {"content": "x" * 4001}, "body: at content"),
        (
            "POST",
            "/interactions/1/t/callback",
            {},
            {"type": 4, "data": {"content": 5}},
            "at data/content",
        ),
        (
            "POST",
            "/channels/1/messages",
            {},
            {"allowed_mentions": {"parse": ["all"]}},
            "allowed_mentions/parse/0",
        ),
        ("PUT", "/applications/1/commands", {}, None, "request body is required"),
        ("POST", "/channels/1/typing", {}, {"x": 1}, "takes none"),
    ],
)
def test_violations_are_explained(
    validator: OpenApiValidator,
    method: str,
    path: str,
    query: dict[str, str],
    body: object,
    expected: str,
) -> None:
    [violation] = validator.validate(method, path, query, body, has_body=body is not None)
    assert expected in str(violation)


def test_multipart_payload_json_is_checked_against_the_multipart_schema(
    validator: OpenApiValidator,
) -> None:
    good = {"content": "file", "attachments": [{"id": 0, "filename": "a.txt"}]}
    assert (
        validator.validate(
            "POST",
            "/webhooks/1/t",
            {"wait": "true"},
            good,
            has_body=True,
            media_type="multipart/form-data",
        )
        == []
    )
    bad = {"content": "file", "attachments": [{"filename": "a.txt"}]}
    [violation] = validator.validate(
        "POST", "/webhooks/1/t", {}, bad, has_body=True, media_type="multipart/form-data"
    )
    assert "'id' is a required property" in violation.problem

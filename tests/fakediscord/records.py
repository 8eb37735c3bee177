"""What the fake remembers about the traffic it saw, for tests to assert on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Payload = dict[str, Any]


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (`files[n]`)."""

    field_name: str
    filename: str
    content_type: str
    data: bytes

    def text(self, encoding: str = "utf-8") -> str:
        return self.data.decode(encoding)


@dataclass
class RecordedRequest:
    """One HTTP request the client made; `json` is the JSON body or the multipart `payload_json`."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    status: int | None = None
    response: Any = None

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


class MessageKind(StrEnum):
    """Which route produced a message payload (see `FakeDiscord.messages_sent`)."""

    INTERACTION_RESPONSE = "interaction_response"  # callback type 4 (CHANNEL_MESSAGE_WITH_SOURCE)
    INTERACTION_UPDATE = "interaction_update"  # callback type 7 (UPDATE_MESSAGE)
    ORIGINAL_EDIT = "original_edit"  # PATCH /webhooks/{app}/{token}/messages/@original
    FOLLOWUP = "followup"  # POST /webhooks/{app}/{token}
    FOLLOWUP_EDIT = "followup_edit"  # PATCH /webhooks/{app}/{token}/messages/{id}
    CHANNEL_MESSAGE = "channel_message"  # POST /channels/{id}/messages
    CHANNEL_EDIT = "channel_edit"  # PATCH /channels/{id}/messages/{id}


@dataclass
class SentMessage:
    """A message payload the bot sent or edited, with its uploaded files.

    `payload` is exactly what the client sent (for callbacks: the callback's `data`), so a
    test can assert `sent.payload["allowed_mentions"] == {"parse": []}`.
    """

    kind: MessageKind
    payload: Payload
    files: list[UploadedFile]
    channel_id: int | None
    message_id: int | None
    interaction_id: int | None = None
    sent_at: float = field(default_factory=time.monotonic)  # when the fake received it

    @property
    def content(self) -> str | None:
        return self.payload.get("content")

    @property
    def allowed_mentions(self) -> Payload | None:
        return self.payload.get("allowed_mentions")

    @property
    def ephemeral(self) -> bool:
        return bool((self.payload.get("flags") or 0) & 64)

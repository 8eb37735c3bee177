"""Building and editing message objects the way Discord stores and returns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakediscord.entities import FakeChannel, FakeGuild, FakeUser
from tests.fakediscord.mentions import EVERYONE_MENTION, ROLE_MENTION, mentioned_user_ids
from tests.fakediscord.records import UploadedFile
from tests.fakediscord.snowflakes import iso_now

Payload = dict[str, Any]

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7


class MessageType:
    DEFAULT = 0
    REPLY = 19
    CHAT_INPUT_COMMAND = 20


@dataclass(frozen=True)
class StoredAttachment:
    """Bytes the fake serves at `url`, so `discord.Attachment.read()` works against it."""

    id: int
    filename: str
    content_type: str
    data: bytes
    url: str
    description: str | None = None

    def payload(self) -> Payload:
        return {
            "id": str(self.id),
            "filename": self.filename,
            "description": self.description,
            "content_type": self.content_type,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "ephemeral": False,
        }


def build_message(
    *,
    message_id: int,
    channel: FakeChannel,
    guild: FakeGuild | None,
    author: FakeUser,
    content: str,
    users: dict[int, FakeUser],
    attachments: list[StoredAttachment] | None = None,
    embeds: list[Payload] | None = None,
    components: list[Payload] | None = None,
    flags: int = 0,
    message_type: int = MessageType.DEFAULT,
    webhook_id: int | None = None,
    application_id: int | None = None,
    interaction_metadata: Payload | None = None,
    reference: Payload | None = None,
) -> Payload:
    """A complete message object; `mentions` is filled from `<@id>` in content for known users."""
    mentions = [
        users[uid].payload() for uid in dict.fromkeys(mentioned_user_ids(content)) if uid in users
    ]
    message: Payload = {
        "id": str(message_id),
        "channel_id": str(channel.id),
        "author": author.payload(),
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": bool(EVERYONE_MENTION.search(content)),
        "mentions": mentions,
        "mention_roles": ROLE_MENTION.findall(content),
        "attachments": [attachment.payload() for attachment in attachments or []],
        "embeds": list(embeds or []),
        "components": list(components or []),
        "pinned": False,
        "type": message_type,
        "flags": flags,
    }
    if guild is not None:
        message["guild_id"] = str(guild.id)
        member = guild.members.get(author.id)
        if member is not None:
            message["member"] = member.payload(with_user=False)
    if webhook_id is not None:
        message["webhook_id"] = str(webhook_id)
    if application_id is not None:
        message["application_id"] = str(application_id)
    if interaction_metadata is not None:
        message["interaction_metadata"] = interaction_metadata
    if reference is not None:
        message["message_reference"] = reference
    return message


def apply_edit(
    message: Payload,
    edit: Payload,
    new_attachments: list[StoredAttachment],
    users: dict[int, FakeUser],
) -> Payload:
    """Apply a PATCH body: only the fields present change; `attachments` lists what to keep."""
    if "content" in edit:
        content = edit["content"] or ""
        message["content"] = content
        message["mentions"] = [
            users[uid].payload()
            for uid in dict.fromkeys(mentioned_user_ids(content))
            if uid in users
        ]
        message["mention_everyone"] = bool(EVERYONE_MENTION.search(content))
    for key in ("embeds", "components"):
        if key in edit:
            message[key] = list(edit[key] or [])
    if "flags" in edit and edit["flags"] is not None:
        # Only SUPPRESS_EMBEDS may change on edit; ephemeral stays as it was.
        message["flags"] = (message["flags"] & EPHEMERAL_FLAG) | (edit["flags"] & ~EPHEMERAL_FLAG)
    message["flags"] &= ~LOADING_FLAG
    if "attachments" in edit or new_attachments:
        kept_ids = {
            str(item["id"]) for item in edit.get("attachments") or [] if isinstance(item, dict)
        }
        kept = (
            [a for a in message["attachments"] if a["id"] in kept_ids]
            if "attachments" in edit
            else message["attachments"]
        )
        message["attachments"] = kept + [a.payload() for a in new_attachments]
    message["edited_timestamp"] = iso_now()
    return message


def attachment_files(
    files: list[UploadedFile], payload: Payload
) -> list[tuple[UploadedFile, str | None]]:
    """Pair each uploaded file with its description from payload_json `attachments` (by index)."""
    descriptions: dict[str, str | None] = {}
    for item in payload.get("attachments") or []:
        if isinstance(item, dict) and "id" in item:
            descriptions[str(item["id"])] = item.get("description")
    paired = []
    for file in files:
        index = file.field_name.removeprefix("files[").removesuffix("]")
        paired.append((file, descriptions.get(index)))
    return paired

"""Building and editing message objects the way Discord stores and returns them."""

from __future__ import annotations

from collections.abc import Iterator
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
        data: Payload = {
            "id": str(self.id),
            "filename": self.filename,
            "content_type": self.content_type,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "ephemeral": False,
        }
        if self.description is not None:
            data["description"] = self.description
        return data


SELECT_TYPES = (3, 5, 6, 7, 8)  # string, user, role, mentionable and channel selects


def stored_components(components: list[Payload] | None) -> list[Payload]:
    """Components as Discord returns them: every one numbered (`id`, depth first, from 1,
    unless the bot chose one), selects with their default `min_values`/`max_values`, and
    unicode emoji without an `id`."""
    next_id = 1
    taken = {c["id"] for c in iter_components(components or []) if isinstance(c.get("id"), int)}

    def normalise(component: Payload) -> Payload:
        nonlocal next_id
        result = dict(component)
        if not isinstance(result.get("id"), int):
            while next_id in taken:
                next_id += 1
            result["id"] = next_id
            taken.add(next_id)
        emoji = result.get("emoji")
        if isinstance(emoji, dict) and emoji.get("id") is None:
            # A unicode emoji comes back without an id (discord.py sends "id": null).
            result["emoji"] = {k: v for k, v in emoji.items() if k != "id"}
        if result.get("type") in SELECT_TYPES:
            result.setdefault("min_values", 1)
            result.setdefault("max_values", 1)
        if isinstance(result.get("components"), list):
            result["components"] = [normalise(child) for child in result["components"]]
        if isinstance(result.get("accessory"), dict):
            result["accessory"] = normalise(result["accessory"])
        return result

    return [normalise(component) for component in components or []]


def iter_components(components: list[Payload]) -> Iterator[Payload]:
    """Every component in a message's component tree, depth first (rows, sections, ...)."""
    for component in components:
        yield component
        for key in ("components", "accessory"):
            child = component.get(key)
            yield from iter_components([child] if isinstance(child, dict) else child or [])


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
        "components": stored_components(components),
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
    if "embeds" in edit:
        message["embeds"] = list(edit["embeds"] or [])
    if "components" in edit:
        message["components"] = stored_components(edit["components"])
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

"""Messages the bot creates, edits and deletes through any route, stored like Discord does.

Interaction responses, followups, webhook edits and channel messages all end up here: the
message object is built and stored, the matching gateway event is dispatched (the bot's own
non-ephemeral messages come back to it, as on Discord) and the payload is recorded as a
`SentMessage` for `FakeDiscord.messages_sent()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakediscord.entities import FakeChannel
from tests.fakediscord.interactions import InteractionHandle
from tests.fakediscord.messages import (
    EPHEMERAL_FLAG,
    LOADING_FLAG,
    MessageType,
    StoredAttachment,
    apply_edit,
    attachment_files,
    build_message,
)
from tests.fakediscord.openapi import SpecViolation
from tests.fakediscord.records import MessageKind, RecordedRequest, SentMessage, UploadedFile
from tests.fakediscord.routing import ApiError, Payload, unknown

if TYPE_CHECKING:
    from tests.fakediscord.server import FakeDiscord

BOT_CONTENT_LIMIT = 2000


class BotMessages:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def enforce_content_limit(self, request: RecordedRequest, data: Payload) -> None:
        """Bots may send at most 2,000 characters; the spec allows 4,000 (a Nitro user limit)."""
        content = data.get("content")
        if isinstance(content, str) and len(content) > BOT_CONTENT_LIMIT:
            problem = (
                f"content has {len(content)} characters; Discord allows bots {BOT_CONTENT_LIMIT}"
            )
            self.fake.spec_violations.append(SpecViolation(request.method, request.path, problem))
            raise ApiError(400, 50035, f"Invalid Form Body: {problem}")

    def _store_files(self, files: list[UploadedFile], data: Payload) -> list[StoredAttachment]:
        stored = []
        for file, description in attachment_files(files, data):
            attachment = self.fake.make_attachment(file.filename, file.data, file.content_type)
            if description:
                attachment = StoredAttachment(**{**attachment.__dict__, "description": description})
                self.fake.attachments[attachment.id] = attachment
            stored.append(attachment)
        return stored

    async def create(
        self,
        channel: FakeChannel | None,
        data: Payload,
        files: list[UploadedFile],
        *,
        handle: InteractionHandle | None,
        loading: bool,
        message_type: int = MessageType.DEFAULT,
    ) -> Payload:
        if channel is None:
            raise unknown("Channel", 10003)
        fake = self.fake
        guild = fake.guilds.get(channel.guild_id) if channel.guild_id else None
        flags = (data.get("flags") or 0) & ~LOADING_FLAG
        if loading:
            flags |= LOADING_FLAG
        metadata = None
        if handle is not None:
            # In a server the caller is `member.user`; in a DM, `user`.
            member = handle.payload.get("member") or {}
            metadata = {
                "id": str(handle.id),
                "type": handle.type,
                "user": member.get("user") or handle.payload.get("user"),
                "authorizing_integration_owners": handle.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if "message" in handle.payload:  # a component interaction
                metadata["interacted_message_id"] = handle.payload["message"]["id"]
        reference, replied = self._reference(channel, data.get("message_reference"))
        message = build_message(
            message_id=fake.ids.next_id(),
            channel=channel,
            guild=guild,
            author=fake.bot_user,
            content="" if loading else data.get("content") or "",
            users=fake.users,
            attachments=self._store_files(files, data),
            embeds=data.get("embeds"),
            components=data.get("components"),
            flags=flags,
            message_type=MessageType.REPLY if reference else message_type,
            webhook_id=fake.application_id if handle is not None else None,
            application_id=fake.application_id if handle is not None else None,
            interaction_metadata=metadata,
            reference=reference,
        )
        if reference is not None:
            message["referenced_message"] = replied
        fake.messages[int(message["id"])] = message
        if not flags & EPHEMERAL_FLAG:
            await fake.dispatch_message_event("MESSAGE_CREATE", message)
        return message

    def _reference(
        self, channel: FakeChannel, requested: Payload | None
    ) -> tuple[Payload | None, Payload | None]:
        """The stored `message_reference` of a reply and the message it replies to."""
        if not requested or requested.get("type", 0) != 0:
            return None, None
        message_id = int(requested.get("message_id") or 0)
        replied = self.fake.messages.get(message_id)
        if replied is None and requested.get("fail_if_not_exists", True):
            raise ApiError(400, 50035, "Invalid Form Body: Unknown message (message_reference)")
        reference: Payload = {
            "type": 0,
            "message_id": str(message_id),
            "channel_id": str(requested.get("channel_id") or channel.id),
        }
        if channel.guild_id is not None:
            reference["guild_id"] = str(channel.guild_id)
        return reference, replied

    async def edit(
        self, message_id: int | None, data: Payload, files: list[UploadedFile]
    ) -> Payload:
        message = self.fake.messages.get(message_id or 0)
        if message is None:
            raise unknown("Message", 10008)
        apply_edit(message, data, self._store_files(files, data), self.fake.users)
        if not message["flags"] & EPHEMERAL_FLAG:
            await self.fake.dispatch_message_event("MESSAGE_UPDATE", message)
        return message

    async def delete(self, message: Payload) -> None:
        self.fake.messages.pop(int(message["id"]), None)
        if not message["flags"] & EPHEMERAL_FLAG:
            event: Payload = {"id": message["id"], "channel_id": message["channel_id"]}
            if "guild_id" in message:
                event["guild_id"] = message["guild_id"]
            await self.fake.dispatch_message_removal("MESSAGE_DELETE", event)

    def record_sent(
        self,
        kind: MessageKind,
        data: Payload,
        files: list[UploadedFile],
        message: Payload,
        handle: InteractionHandle | None,
    ) -> None:
        self.fake.record_sent(
            SentMessage(
                kind=kind,
                payload=data,
                files=list(files),
                channel_id=int(message["channel_id"]),
                message_id=int(message["id"]),
                interaction_id=handle.id if handle is not None else None,
            )
        )

"""The fake acting as the test's users towards the bot.

`UserActions` posts, edits and deletes messages, runs slash commands (in a server or a DM),
clicks buttons and picks select options, each as the event or interaction Discord would
send; Discord's own gateway events are in `gateway_events.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.fakediscord.entities import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeUser,
)
from tests.fakediscord.gateway_events import GatewayEvents
from tests.fakediscord.interaction_payloads import (
    dm_interaction_payload,
    guild_interaction_payload,
)
from tests.fakediscord.interactions import (
    CommandWorld,
    InteractionContext,
    InteractionHandle,
    InteractionType,
    InvalidInvocation,
    build_command_data,
    find_component,
)
from tests.fakediscord.mentions import mentioned_user_ids
from tests.fakediscord.messages import StoredAttachment, build_message
from tests.fakediscord.snowflakes import iso_now
from tests.fakediscord.world import MessageRef, Payload


def _plain_user(user: FakeUser | FakeMember) -> FakeUser:
    return user.user if isinstance(user, FakeMember) else user


class UserActions(GatewayEvents):
    """What the test's users do, as the bot sees it."""

    async def send_message(
        self,
        channel: FakeChannel,
        author: FakeUser | FakeMember,
        content: str,
        *,
        attachments: Sequence[StoredAttachment] = (),
        reply_to: MessageRef | None = None,
    ) -> Payload:
        """A user posts in `channel`: stored, then MESSAGE_CREATE to the bot (subject to intents)."""
        guild = self.guild_of(channel)
        user = _plain_user(author)
        if guild is not None:
            self.member(guild, user)
        reference = None
        if reply_to is not None:
            replied = self.find_message(reply_to)
            reference = {
                "type": 0,
                "message_id": replied["id"],
                "channel_id": replied["channel_id"],
            }
            if guild is not None:
                reference["guild_id"] = str(guild.id)
        message = build_message(
            message_id=self.ids.next_id(),
            channel=channel,
            guild=guild,
            author=user,
            content=content,
            users=self.users,
            attachments=list(attachments),
            reference=reference,
        )
        if reference is not None:
            message["type"] = 19
            message["referenced_message"] = self.messages.get(int(reference["message_id"]))
        self.messages[int(message["id"])] = message
        await self.dispatch_message_event("MESSAGE_CREATE", message)
        return message

    async def edit_message(self, message: MessageRef, content: str) -> Payload:
        """A user edits their message: MESSAGE_UPDATE (sent even if the bot never cached it)."""
        stored = self.find_message(message)
        stored["content"] = content
        stored["mentions"] = [
            self.users[uid].payload() for uid in mentioned_user_ids(content) if uid in self.users
        ]
        stored["edited_timestamp"] = iso_now()
        await self.dispatch_message_event("MESSAGE_UPDATE", stored)
        return stored

    async def delete_message(self, message: MessageRef) -> None:
        """MESSAGE_DELETE; works for messages the bot never saw (raw event only)."""
        stored = self.find_message(message)
        self.messages.pop(int(stored["id"]), None)
        data = {"id": stored["id"], "channel_id": stored["channel_id"]}
        if "guild_id" in stored:
            data["guild_id"] = stored["guild_id"]
        await self.dispatch_message_removal("MESSAGE_DELETE", data)

    async def delete_messages(
        self, channel: FakeChannel, messages: Sequence[MessageRef | int]
    ) -> None:
        """MESSAGE_DELETE_BULK (a moderator purge); ids need not be known to the fake."""
        ids: list[str] = []
        for message in messages:
            if isinstance(message, int) and message not in self.messages:
                ids.append(str(message))
            else:
                ids.append(self.find_message(message)["id"])
                self.messages.pop(int(ids[-1]), None)
        data: Payload = {"ids": ids, "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        await self.dispatch_message_removal("MESSAGE_DELETE_BULK", data)

    async def invoke_slash(
        self,
        guild: FakeGuild | None,
        channel: FakeChannel,
        user: FakeUser | FakeMember,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        enforce_constraints: bool = True,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """A user runs `/name [subcommand] option:value…`; returns the interaction's handle.

        The command is looked up in what the bot registered (guild commands first), so
        option types follow the bot's own declaration. `subcommand` may be "group sub".
        Attachment options take `(filename, bytes[, content_type])` or `make_attachment(...)`.
        `guild=None` runs it in a DM with the bot: `channel` must be `dm_channel(user)`.
        """
        command = self.registered_command(name, guild=guild)
        if command is None:
            guild_commands = self.guild_commands.get(guild.id, []) if guild else []
            known = sorted(c["name"] for c in [*self.global_commands, *guild_commands])
            raise InvalidInvocation(
                f"/{name} was never registered by the bot (registered: {known})"
            )
        if guild is None:
            return await self._invoke_slash_in_dm(
                command,
                channel,
                _plain_user(user),
                options or {},
                subcommand,
                locale,
                enforce_constraints=enforce_constraints,
            )
        member = self.member(guild, _plain_user(user))
        world = CommandWorld(
            guild,
            lambda resolved_channel: guild.permissions_in(resolved_channel, member.id),
            self.make_attachment,
        )
        data = build_command_data(
            command, options or {}, subcommand, world, enforce_constraints=enforce_constraints
        )
        payload = guild_interaction_payload(
            self, InteractionType.APPLICATION_COMMAND, guild, channel, member, data, locale
        )
        return await self._dispatch_interaction(payload)

    async def click_button(
        self,
        message: MessageRef,
        user: FakeUser | FakeMember,
        custom_id: str | None = None,
        *,
        label: str | None = None,
    ) -> InteractionHandle:
        """A user presses a button on `message` (component interaction, type 3), found by
        `custom_id` or by its `label`."""
        if (custom_id is None) == (label is None):
            raise InvalidInvocation("click_button needs exactly one of custom_id and label")
        if label is not None:
            buttons = self.buttons(message)
            if label not in buttons:
                raise InvalidInvocation(
                    f"no button labelled {label!r} (buttons: {sorted(buttons)})"
                )
            custom_id = buttons[label]
        assert custom_id is not None
        return await self._component_interaction(message, user, custom_id, values=None)

    async def choose_options(
        self, message: MessageRef, user: FakeUser | FakeMember, custom_id: str, values: list[str]
    ) -> InteractionHandle:
        """A user picks `values` in the select menu `custom_id` on `message`."""
        return await self._component_interaction(message, user, custom_id, values=values)

    def expire_interaction(self, handle: InteractionHandle) -> None:
        """Make its token invalid, as Discord does 15 minutes after the interaction."""
        handle.expired = True

    async def _invoke_slash_in_dm(
        self,
        command: Payload,
        channel: FakeChannel,
        user: FakeUser,
        options: dict[str, Any],
        subcommand: str | None,
        locale: str,
        *,
        enforce_constraints: bool,
    ) -> InteractionHandle:
        if channel.type != ChannelType.DM or channel.recipient is not user:
            raise InvalidInvocation(f"a DM command runs in dm_channel({user.name}), not {channel}")
        contexts = command.get("contexts")
        if command.get("dm_permission") is False or (
            contexts is not None and InteractionContext.BOT_DM not in contexts
        ):
            raise InvalidInvocation(f"/{command['name']} is not available in DMs (guild only)")
        world = CommandWorld(
            None,
            lambda resolved_channel: self.permissions_in(resolved_channel, user),
            self.make_attachment,
        )
        data = build_command_data(
            command, options, subcommand, world, enforce_constraints=enforce_constraints
        )
        payload = dm_interaction_payload(
            self, InteractionType.APPLICATION_COMMAND, channel, user, data, locale
        )
        self.self_check("INTERACTION_CREATE", "UserResponse", payload["user"])
        self.self_check("INTERACTION_CREATE", "PrivateChannelResponse", payload["channel"])
        return await self._dispatch_interaction(payload)

    async def _component_interaction(
        self,
        message: MessageRef,
        user: FakeUser | FakeMember,
        custom_id: str,
        values: list[str] | None,
    ) -> InteractionHandle:
        stored = self.find_message(message)
        component = find_component(stored.get("components") or [], custom_id)
        if component is None:
            raise InvalidInvocation(f"message {stored['id']} has no component {custom_id!r}")
        if component.get("disabled"):
            raise InvalidInvocation(
                f"component {custom_id!r} is disabled; Discord would not send a click"
            )
        channel = self.channels[int(stored["channel_id"])]
        guild = self.guilds[int(stored["guild_id"])]
        member = self.member(guild, _plain_user(user))
        data: Payload = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = values
        payload = guild_interaction_payload(
            self,
            InteractionType.MESSAGE_COMPONENT,
            guild,
            channel,
            member,
            data,
            "en-US",
            message=dict(stored),
        )
        handle = await self._dispatch_interaction(payload)
        # For component interactions, "@original" is the message the component is on.
        handle.original_message_id = int(stored["id"])
        return handle

    async def _dispatch_interaction(self, payload: Payload) -> InteractionHandle:
        handle = InteractionHandle(
            id=int(payload["id"]), token=payload["token"], payload=payload, fake=self
        )
        self.interactions[handle.id] = handle
        guild_id = int(payload["guild_id"]) if "guild_id" in payload else None
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=guild_id)
        return handle

"""Interaction callbacks and the interaction webhook (original response, followups)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tests.fakediscord.interactions import CallbackType, InteractionHandle, InteractionType
from tests.fakediscord.messages import EPHEMERAL_FLAG, LOADING_FLAG, MessageType
from tests.fakediscord.records import MessageKind, RecordedRequest
from tests.fakediscord.routing import ApiError, Payload, Result, RouteSpec, unknown

if TYPE_CHECKING:
    from tests.fakediscord.bot_messages import BotMessages
    from tests.fakediscord.server import FakeDiscord


class InteractionRoutes:
    """POST .../callback and /webhooks/{app_id}/{token}/..., with Discord's token rules."""

    def __init__(self, fake: FakeDiscord, messages: BotMessages) -> None:
        self.fake = fake
        self.messages = messages

    def routes(self) -> list[RouteSpec]:
        return [
            (
                "POST",
                "/interactions/{interaction_id}/{token}/callback",
                self.interaction_callback,
                False,
            ),
            (
                "GET",
                "/webhooks/{app_id}/{token}/messages/@original",
                self.get_webhook_message,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{app_id}/{token}/messages/@original",
                self.edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{app_id}/{token}/messages/@original",
                self.delete_webhook_message,
                False,
            ),
            ("POST", "/webhooks/{app_id}/{token}", self.create_followup, False),
            (
                "GET",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self.get_webhook_message,
                False,
            ),
            (
                "PATCH",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self.edit_webhook_message,
                False,
            ),
            (
                "DELETE",
                "/webhooks/{app_id}/{token}/messages/{message_id}",
                self.delete_webhook_message,
                False,
            ),
        ]

    def _interaction(self, interaction_id: int, token: str) -> InteractionHandle:
        handle = self.fake.interactions.get(interaction_id)
        if handle is None or handle.token != token or handle.expired:
            raise unknown("interaction", 10062)
        return handle

    def _webhook_interaction(self, params: dict[str, str]) -> InteractionHandle:
        """The interaction behind a webhook token; Discord's errors for bad/expired/unacked ones."""
        if int(params["app_id"]) != self.fake.application_id:
            raise unknown("Webhook", 10015)
        handle = next(
            (h for h in self.fake.interactions.values() if h.token == params["token"]), None
        )
        if handle is None:
            raise unknown("Webhook", 10015)
        if handle.expired:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if not handle.callbacks:
            raise unknown("Webhook", 10015)
        return handle

    def _webhook_message(self, handle: InteractionHandle, params: dict[str, str]) -> Payload:
        message_id = (
            int(params["message_id"]) if "message_id" in params else handle.original_message_id
        )
        message = self.fake.messages.get(message_id or 0)
        if message is None:
            raise unknown("Message", 10008)
        return message

    async def interaction_callback(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        handle = self._interaction(int(params["interaction_id"]), params["token"])
        if handle.callbacks:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        deadline = self.fake.ack_deadline_s
        if deadline is not None and time.monotonic() - handle.dispatched_at >= deadline:
            handle.acknowledged_late = True
            handle.responded_at = time.monotonic()
            raise unknown("interaction", 10062)
        body: Payload = request.json or {}
        callback_type = body.get("type")
        data: Payload = body.get("data") or {}
        self.messages.enforce_content_limit(request, data)
        is_component = handle.type == InteractionType.MESSAGE_COMPONENT
        allowed = {
            CallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.MODAL,
        }
        if is_component:
            allowed |= {CallbackType.DEFERRED_UPDATE_MESSAGE, CallbackType.UPDATE_MESSAGE}
        if callback_type not in allowed:
            raise ApiError(
                400, 50035, f"Invalid Form Body: callback type {callback_type} not valid here"
            )
        handle.callbacks.append(body)
        handle.responded_at = time.monotonic()
        channel = self.fake.channels.get(int(handle.payload["channel_id"]))
        message: Payload | None = None
        if callback_type in (
            CallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
        ):
            loading = callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
            message = await self.messages.create(
                channel,
                data,
                request.files,
                handle=handle,
                loading=loading,
                message_type=MessageType.CHAT_INPUT_COMMAND
                if not is_component
                else MessageType.DEFAULT,
            )
            handle.original_message_id = int(message["id"])
            if not loading:
                self.messages.record_sent(
                    MessageKind.INTERACTION_RESPONSE, data, request.files, message, handle
                )
        elif callback_type == CallbackType.UPDATE_MESSAGE:
            message = await self.messages.edit(handle.original_message_id, data, request.files)
            self.messages.record_sent(
                MessageKind.INTERACTION_UPDATE, data, request.files, message, handle
            )
        elif callback_type == CallbackType.DEFERRED_UPDATE_MESSAGE:
            message = self.fake.messages.get(handle.original_message_id or 0)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        interaction: Payload = {"id": str(handle.id), "type": handle.type}
        result: Payload = {"interaction": interaction}
        if message is not None:
            interaction.update(
                response_message_id=message["id"],
                response_message_loading=bool(message["flags"] & LOADING_FLAG),
                response_message_ephemeral=bool(message["flags"] & EPHEMERAL_FLAG),
            )
            # The spec's resource union has message responses for types 4 and 7 only.
            if callback_type in (
                CallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
                CallbackType.UPDATE_MESSAGE,
            ):
                result["resource"] = {"type": callback_type, "message": message}
        return 200, result

    async def get_webhook_message(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        handle = self._webhook_interaction(params)
        return 200, self._webhook_message(handle, params)

    async def edit_webhook_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        handle = self._webhook_interaction(params)
        target = self._webhook_message(handle, params)
        data: Payload = request.json or {}
        self.messages.enforce_content_limit(request, data)
        message = await self.messages.edit(int(target["id"]), data, request.files)
        is_original = (
            "message_id" not in params or int(params["message_id"]) == handle.original_message_id
        )
        kind = MessageKind.ORIGINAL_EDIT if is_original else MessageKind.FOLLOWUP_EDIT
        self.messages.record_sent(kind, data, request.files, message, handle)
        return 200, message

    async def delete_webhook_message(
        self, request: RecordedRequest, params: dict[str, str]
    ) -> Result:
        handle = self._webhook_interaction(params)
        target = self._webhook_message(handle, params)
        await self.messages.delete(target)
        return 204, None

    async def create_followup(self, request: RecordedRequest, params: dict[str, str]) -> Result:
        handle = self._webhook_interaction(params)
        data: Payload = request.json or {}
        self.messages.enforce_content_limit(request, data)
        channel = self.fake.channels.get(int(handle.payload["channel_id"]))
        message = await self.messages.create(
            channel, data, request.files, handle=handle, loading=False
        )
        self.messages.record_sent(MessageKind.FOLLOWUP, data, request.files, message, handle)
        if request.query.get("wait") in ("1", "true", "True"):
            return 200, message
        return 204, None

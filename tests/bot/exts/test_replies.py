"""Replies when mentioned or replied to, in channels where admins turned them on (issue #6)."""

from __future__ import annotations

import random

from tests.bot.conftest import World
from tests.fakediscord import MessageKind


async def enable_replies(world: World, enabled: bool = True) -> None:
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.admin,
        "corpus",
        {"channel": world.channel, "enabled": enabled},
        subcommand="replies",
    )
    await handle.wait_response(timeout_s=30)
    assert "Parrot" in str(handle.response)


def bot_replies(world: World) -> list:
    return [
        sent
        for sent in world.fake.messages_sent(MessageKind.CHANNEL_MESSAGE, channel=world.channel)
        if sent.payload.get("message_reference")
    ]


async def test_mentioning_the_bot_gets_a_reply_that_pings_no_one(world_with_model: World) -> None:
    world = world_with_model
    bot_id = world.fake.bot_user.id
    # Off by default: a mention gets nothing.
    await world.fake.send_message(world.channel, world.member, f"<@{bot_id}> to be or not")
    await enable_replies(world)
    await world.fake.send_message(world.channel, world.member, f"<@{bot_id}> @everyone to be or")
    await world.fake.wait_for(lambda: len(bot_replies(world)) == 1, timeout_s=30, what="a reply")
    reply = bot_replies(world)[0]
    pings = world.fake.pings(reply)
    assert not pings.everyone and not pings.users and not pings.roles
    assert reply.allowed_mentions is not None and reply.allowed_mentions["parse"] == []

    # Replying to the bot's message also gets an answer.
    replied = next(
        m for m in world.fake.channel_messages(world.channel) if m["author"]["id"] == str(bot_id)
    )
    await world.fake.send_message(world.channel, world.member, "go on", reply_to=replied)
    await world.fake.wait_for(lambda: len(bot_replies(world)) == 2, timeout_s=30, what="a reply")

    # A plain message (reply chance 0) gets none; turning replies off stops them.
    await enable_replies(world, enabled=False)
    await world.fake.send_message(world.channel, world.member, f"<@{bot_id}> still there?")
    await world.fake.send_message(world.channel, world.member, "just chatting")
    handle = await world.fake.invoke_slash(
        world.guild, world.channel, world.member, "corpus", {}, subcommand="status"
    )
    await handle.wait_response(timeout_s=30)
    assert len(bot_replies(world)) == 2


class AlwaysLow(random.Random):
    """A random source whose draws always fall under the reply chance."""

    def random(self) -> float:
        return 0.0


async def test_random_reply_chance(world_with_model: World) -> None:
    world = world_with_model
    handle = await world.fake.invoke_slash(
        world.guild,
        world.channel,
        world.admin,
        "corpus",
        {"channel": world.channel, "enabled": True, "chance": 0.2},
        subcommand="replies",
    )
    await handle.wait_response(timeout_s=30)
    assert "20%" in str(handle.response)
    cog = world.bot.get_cog("Collect")
    assert cog is not None and hasattr(cog, "rng")
    cog.rng = AlwaysLow()  # type: ignore[attr-defined]
    await world.fake.send_message(world.channel, world.member, "an ordinary message")
    await world.fake.wait_for(lambda: len(bot_replies(world)) == 1, timeout_s=30, what="a reply")


async def test_a_long_mention_gets_a_reply(world_with_model: World) -> None:
    world = world_with_model
    await enable_replies(world)
    long_text = ("to be or not to be, that is the question. " * 40)[:1500]
    await world.fake.send_message(
        world.channel, world.member, f"<@{world.fake.bot_user.id}> {long_text}"
    )
    await world.fake.wait_for(lambda: len(bot_replies(world)) == 1, timeout_s=30, what="a reply")

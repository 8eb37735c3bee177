"""Who a message would ping, from content and allowed_mentions."""

from __future__ import annotations

from tests.fakediscord.mentions import pings_of


def test_no_allowed_mentions_pings_everything_mentioned() -> None:
    pings = pings_of("hi <@1> <@!2> <@&3> @everyone", None)
    assert (pings.users, pings.roles, pings.everyone) == (frozenset({1, 2}), frozenset({3}), True)


def test_empty_parse_pings_no_one() -> None:
    assert not pings_of("hi <@1> <@&3> @here", {"parse": []}).anyone


def test_explicit_users_are_still_pinged() -> None:
    pings = pings_of("<@1> <@2>", {"parse": [], "users": ["2"]})
    assert pings.users == frozenset({2})


def test_escaped_mentions_ping_no_one() -> None:
    assert not pings_of("@\u200beveryone <\\@1>", None).anyone

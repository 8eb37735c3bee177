"""Who a message would actually notify, given its content and `allowed_mentions`.

Discord pings what the content mentions *and* allowed_mentions permits; with no
allowed_mentions at all, every mention in the content pings. Tests use this to prove
hostile prompts ("@everyone", "<@123>") ping no one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
EVERYONE_MENTION = re.compile(r"@(everyone|here)")


@dataclass(frozen=True)
class Pings:
    users: frozenset[int]
    roles: frozenset[int]
    everyone: bool

    @property
    def anyone(self) -> bool:
        return bool(self.users or self.roles or self.everyone)


def mentioned_user_ids(content: str) -> list[int]:
    return [int(found) for found in USER_MENTION.findall(content)]


def pings_of(content: str | None, allowed_mentions: dict[str, Any] | None) -> Pings:
    """The notifications Discord would send for this content under these allowed_mentions."""
    text = content or ""
    users = {int(found) for found in USER_MENTION.findall(text)}
    roles = {int(found) for found in ROLE_MENTION.findall(text)}
    everyone = bool(EVERYONE_MENTION.search(text))
    if allowed_mentions is None:
        return Pings(frozenset(users), frozenset(roles), everyone)
    parse = set(allowed_mentions.get("parse") or [])
    allowed_users = {int(u) for u in allowed_mentions.get("users") or []}
    allowed_roles = {int(r) for r in allowed_mentions.get("roles") or []}
    return Pings(
        users=frozenset(users if "users" in parse else users & allowed_users),
        roles=frozenset(roles if "roles" in parse else roles & allowed_roles),
        everyone=everyone and "everyone" in parse,
    )

"""Who is asking, and the one permission rule: managing Parrot needs Manage Server.

The front ends decide `can_manage` (Discord: Manage Server or Administrator in the
interaction's payload; the console's user is the server's admin); the services enforce it
with `require_manager`, so every front end applies the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.errors import NotAllowed


@dataclass(frozen=True)
class Actor:
    """Who asks, where, and whether they may manage the server (Manage Server)."""

    server_id: int
    user_id: int
    can_manage: bool = False


def require_manager(actor: Actor, action: str) -> None:
    """Raise NotAllowed unless the actor may manage the server; `action` completes "to ..."."""
    if not actor.can_manage:
        raise NotAllowed(f"You need the Manage Server permission to {action}.")

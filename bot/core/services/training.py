"""Training a server's model on request: permission, cooldown, queue, live progress."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from bot.core.errors import InvalidInput
from bot.core.kinds import RunTrigger, TrainArch, TrainMode
from bot.core.services.actor import Actor, require_manager
from bot.core.services.cooldowns import Cooldowns

if TYPE_CHECKING:
    from bot.core.training.manager import TrainingManager
    from bot.core.training.queue import RunEvent


class TrainingService:
    def __init__(self, manager: TrainingManager, cooldowns: Cooldowns) -> None:
        self._manager = manager
        self._cooldowns = cooldowns

    def check_can_start(self, actor: Actor) -> None:
        """Raise NotAllowed or OnCooldown now (the cog checks before it defers)."""
        require_manager(actor, "start training")
        self._cooldowns.check_train(actor.server_id)

    async def start(
        self,
        actor: Actor,
        *,
        mode: TrainMode = "fine-tune",
        arch: TrainArch | None = None,
        notify_channel_id: int | None = None,
        trigger: RunTrigger = RunTrigger.ADMIN,
    ) -> int:
        """Queue a run for the actor's server and return its id.

        Raises NotAllowed, OnCooldown, TrainingBusy (a run is queued or running) or
        CorpusTooSmall. `arch` None: the server's or the config's default.
        """
        self.check_can_start(actor)
        run_id = await self._manager.enqueue(
            actor.server_id,
            trigger=trigger,
            mode=mode,
            arch=arch,
            requested_by=actor.user_id,
            notify_channel_id=notify_channel_id,
        )
        self._cooldowns.hit_train(actor.server_id)
        return run_id

    async def cancel(self, actor: Actor) -> None:
        require_manager(actor, "cancel training")
        if not await self._manager.cancel(actor.server_id):
            raise InvalidInput("There is no queued or running training run to cancel.")

    def watch(self, run_id: int) -> AsyncIterator[RunEvent]:
        """The run's state now, then each change, ending with its final event."""
        return self._manager.watch(run_id)

    def add_listener(self, callback: Callable[[RunEvent], None]) -> Callable[[], None]:
        """Call `callback` (on the event loop) with every event of the runs this process
        executes; returns the function that removes it again."""
        self._manager.add_event_listener(callback)
        return lambda: self._manager.remove_event_listener(callback)

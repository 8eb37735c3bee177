"""Cooldowns with an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from bot.core.config import CooldownConfig
from bot.core.errors import OnCooldown
from bot.core.inputs import COOLDOWN_SECONDS_MAX
from bot.core.services.cooldowns import Cooldowns


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**settings: float) -> tuple[Cooldowns, Clock]:
    clock = Clock()
    return Cooldowns(CooldownConfig(**settings), clock=clock), clock  # type: ignore[arg-type]


def test_per_user_cooldown_says_how_long_to_wait() -> None:
    cooldowns, clock = make(generate_per_user_seconds=5.0)
    cooldowns.take_generate(1, 10)
    clock.now += 2.2
    with pytest.raises(OnCooldown) as caught:
        cooldowns.take_generate(1, 10)
    assert caught.value.retry_after == pytest.approx(2.8)
    assert "3s" in str(caught.value)
    cooldowns.take_generate(1, 11)  # another user is not affected
    cooldowns.take_generate(2, 10)  # nor the same user in another server
    clock.now += 3.0
    cooldowns.take_generate(1, 10)


def test_refused_request_is_not_recorded() -> None:
    cooldowns, clock = make(generate_per_user_seconds=5.0)
    cooldowns.take_generate(1, 10)
    clock.now += 4.0
    with pytest.raises(OnCooldown):
        cooldowns.take_generate(1, 10)
    clock.now += 1.0
    cooldowns.take_generate(1, 10)  # measured from the accepted use, not the refused one


def test_per_server_window() -> None:
    cooldowns, clock = make(generate_per_user_seconds=0.0, generate_per_server_per_minute=3)
    for user in range(3):
        cooldowns.take_generate(1, user)
        clock.now += 1.0
    with pytest.raises(OnCooldown) as caught:
        cooldowns.take_generate(1, 99)
    assert caught.value.retry_after == pytest.approx(57.0)
    assert "server" in str(caught.value)
    clock.now += 57.0
    cooldowns.take_generate(1, 99)


def test_zero_server_limit_means_unlimited() -> None:
    cooldowns, _ = make(generate_per_user_seconds=0.0, generate_per_server_per_minute=0)
    for user in range(100):
        cooldowns.take_generate(1, user)


def test_train_cooldown_and_forget_server() -> None:
    cooldowns, clock = make(train_per_server_seconds=300.0)
    cooldowns.check_train(1)
    cooldowns.hit_train(1)
    clock.now += 100
    with pytest.raises(OnCooldown) as caught:
        cooldowns.check_train(1)
    assert "4 min" in str(caught.value)
    cooldowns.forget_server(1)
    cooldowns.check_train(1)


def test_idle_users_and_servers_are_forgotten_once_no_cooldown_can_apply() -> None:
    cooldowns, clock = make(generate_per_user_seconds=5.0, generate_per_server_per_minute=1000)
    for user_id in range(100):
        cooldowns.take_generate(1, user_id)
    clock.now += COOLDOWN_SECONDS_MAX + 1  # longer than any server's cooldown setting
    cooldowns.take_generate(2, 7)
    assert cooldowns._user_last_generate.keys() == {(2, 7)}
    assert cooldowns._server_generates.keys() == {2}


def test_pruning_keeps_users_a_server_override_still_applies_to() -> None:
    cooldowns, clock = make(generate_per_user_seconds=5.0)
    cooldowns.take_generate(1, 10, user_seconds=600.0)
    clock.now += 300.0  # past the config cooldown, inside the server's override
    cooldowns.take_generate(1, 11)  # prunes
    with pytest.raises(OnCooldown):
        cooldowns.take_generate(1, 10, user_seconds=600.0)

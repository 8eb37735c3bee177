"""pytest fixtures for the fake Discord; enabled for all tests by `pytest_plugins` in
tests/conftest.py.

`fake_discord` starts a fresh fake per test and, at teardown, fails the test if any request
broke Discord's OpenAPI spec, hit a route the fake does not implement, or broke the gateway
protocol. A test that provokes a violation on purpose takes it with
`fake_discord.take_spec_violations()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakediscord.server import FakeDiscord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    problems = fake.problems()
    if problems:
        pytest.fail("fake Discord saw problems:\n  " + "\n  ".join(problems), pytrace=False)

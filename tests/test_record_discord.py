"""The record's scenarios (record_scenarios.ALL) through the Discord adapter: real discord.py against the fake."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import record_scenarios
from discord_driver import DiscordDriver, discord_driver_fixture  # noqa: F401
from fakediscord import FakeDiscord, fake_discord_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("scenario", record_scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(discord_driver: DiscordDriver, scenario: Callable[[DiscordDriver], Awaitable[None]]) -> None:
    await scenario(discord_driver)

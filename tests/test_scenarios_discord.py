"""The feature scenarios through the Discord adapter: real discord.py against the loopback fake Discord, on SQLite
and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import scenarios
from discord_driver import DiscordDriver, discord_driver_fixture  # noqa: F401
from fakediscord import FakeDiscord, fake_discord_fixture  # noqa: F401
from pg_harness import BOTH_DATABASES

pytestmark = pytest.mark.timeout(30)


@BOTH_DATABASES
@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(discord_driver: DiscordDriver, scenario: Callable[[DiscordDriver], Awaitable[None]]) -> None:
    await scenario(discord_driver)

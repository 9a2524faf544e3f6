"""The feature scenarios through the Discord adapter: real discord.py against the loopback fake Discord."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import scenarios
from discord_driver import DiscordDriver, discord_bot
from drivers import FakeClock
from fakediscord import FakeDiscord, fake_discord_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def discord_driver(fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock,
                         monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordDriver]:
    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch) as driver:
        yield driver
    fake_discord.assert_clean()


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(discord_driver: DiscordDriver, scenario: Callable[[DiscordDriver], Awaitable[None]]) -> None:
    await scenario(discord_driver)

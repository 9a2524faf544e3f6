"""The turnout scenarios (turnout_scenarios.py) through the real adapters: Matrix against the Synapse the suite
starts, Discord with the real discord.py client against the loopback fake."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import turnout_scenarios
from circlebot.app import App
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from discord_driver import DiscordDriver, discord_bot
from drivers import FakeClock
from fakediscord import FakeDiscord, fake_discord_fixture
from synapse_harness import SynapseServer, create_room, invite, wait_for_event
from test_matrix_driver import WAIT, MakeUser, MatrixBot, MatrixDriver, matrix_settings

__all__ = ["fake_discord_fixture"]  # the fixture, imported so that pytest finds it here

Scenario = Callable[[Any], Awaitable[None]]


@contextlib.asynccontextmanager
async def matrix_circle(matrix_user: MakeUser, tmp_path: Path, clock: FakeClock,
                         **circle: Any) -> AsyncIterator[MatrixDriver]:
    olga = await matrix_user("olga")
    await olga.client.set_displayname("olga")
    bot_account = await matrix_user("bot")
    room = await create_room(olga.client, name="study circle")
    settings = matrix_settings(tmp_path, bot_account, [room], **circle)
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    bot = MatrixBot(App(settings, store, load_collection(settings.readings), clock), bot_account)
    await bot.start()
    try:
        await invite(olga.client, room, bot_account.user_id)
        await wait_for_event(olga.client, room, lambda e: e.get("type") == "m.room.member"
                             and e.get("state_key") == bot_account.user_id
                             and e["content"].get("membership") == "join", timeout=WAIT, interval=0.02)
        yield MatrixDriver(matrix_user, bot, room, olga, clock)
    finally:
        await bot.stop()
        await store.batcher.stop()
        await store.db.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", turnout_scenarios.ALL, ids=lambda s: s.__name__)
async def test_matrix(matrix_user: MakeUser, tmp_path: Path, clock: FakeClock, synapse: SynapseServer,
                      scenario: Scenario) -> None:
    circle = turnout_scenarios.CIRCLES[scenario.__name__]
    async with matrix_circle(matrix_user, tmp_path, clock, **circle) as driver:
        await scenario(driver)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("scenario", turnout_scenarios.ALL, ids=lambda s: s.__name__)
async def test_discord(fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock,
                       monkeypatch: pytest.MonkeyPatch, scenario: Scenario) -> None:
    circle = turnout_scenarios.CIRCLES[scenario.__name__]
    driver: DiscordDriver
    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch, **circle) as driver:
        await scenario(driver)
    fake_discord.assert_clean()
    if scenario is turnout_scenarios.direct_reminders_only_for_who_asked:  # DMs as Discord documents them
        assert fake_discord.find_requests("POST", r"/users/@me/channels")
        refused = [r for r in fake_discord.find_requests("POST", r"/channels/\d+/messages") if r.status == 403]
        assert len(refused) == 1, refused  # erin's: 50007, and not tried again

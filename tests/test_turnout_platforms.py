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
    driver: MatrixDriver | None = None
    try:
        await invite(olga.client, room, bot_account.user_id)
        await wait_for_event(olga.client, room, lambda e: e.get("type") == "m.room.member"
                             and e.get("state_key") == bot_account.user_id
                             and e["content"].get("membership") == "join", timeout=WAIT, interval=0.02)
        driver = MatrixDriver(matrix_user, bot, room, olga, clock)
        yield driver
    finally:
        if driver is not None:
            await driver.close()
        await bot.stop()
        await store.batcher.stop()
        await store.db.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", turnout_scenarios.ALL, ids=lambda s: s.__name__)
async def test_matrix(matrix_user: MakeUser, tmp_path: Path, clock: FakeClock, synapse: SynapseServer,
                      scenario: Scenario) -> None:
    circle = turnout_scenarios.CIRCLES[scenario.__name__]
    async with matrix_circle(matrix_user, tmp_path, clock, **circle) as driver:
        driver.synapse = synapse  # fail_directs takes the homeserver down
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
    if scenario is turnout_scenarios.a_direct_reminder_that_fails_is_retried_until_it_goes:
        cid = fake_discord.dm_channels[driver.members["alice"].id]
        tries = [r.status for r in fake_discord.find_requests("POST", rf"/channels/{cid}/messages")]
        assert tries.count(503) >= 2 and tries[-1] == 200 and tries.count(200) == 1, tries  # tried again, sent once


@pytest.mark.timeout(30)
async def test_discord_scheduled_events_mirror_the_next_meeting(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[discord] scheduled_events = true`: the next meeting is a Guild Scheduled Event (external, the channel as
    location, the reading and how to RSVP as description), moved with the meeting, cancelled with it, and
    replaced by the next meeting once it has ended."""
    from datetime import UTC, datetime

    from circlebot.core.timeline import Timeline
    from discord_driver import TOKEN_ENV, DiscordDriver, discord_settings
    from fakediscord import CREATE_EVENTS

    fake = fake_discord
    fake.bot_permissions |= CREATE_EVENTS
    guild = fake.add_guild("Study Circle")
    channel = guild.add_text_channel("study")
    organisers = guild.add_role("Organisers")
    settings = discord_settings(tmp_path, fake, guild, channel, organisers)
    assert settings.discord is not None
    settings = settings.model_copy(update={"discord": settings.discord.model_copy(update={"scheduled_events": True})})
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    d = DiscordDriver(fake, App(settings, store, load_collection(settings.readings), clock), clock, guild, channel,
                      organisers)
    try:
        await d.start()
        timeline = Timeline(d.app)
        d.app.timeline = timeline
        await timeline.start()  # the syllabus plans meeting #1 on Thu 26 Nov
        (event,) = fake.events_of(guild)
        assert event["entity_type"] == 3 and event["channel_id"] is None and event["status"] == 1, event
        assert event["entity_metadata"] == {"location": "#study"}, event
        assert event["name"].startswith("Test study circle: Bolivia"), event
        assert "Meeting #1" in event["description"] and "is not an RSVP" in event["description"], event
        assert datetime.fromisoformat(event["scheduled_start_time"]) == datetime(2026, 11, 26, 19, tzinfo=UTC)
        assert datetime.fromisoformat(event["scheduled_end_time"]) == datetime(2026, 11, 26, 20, 30, tzinfo=UTC)

        assert "moved" in await d.say("olga", "move 1 2026-12-03")  # the same event, moved
        (moved,) = fake.events_of(guild)
        assert moved["id"] == event["id"], moved
        assert datetime.fromisoformat(moved["scheduled_start_time"]) == datetime(2026, 12, 3, 19, tzinfo=UTC)
        assert "Scheduled meeting #2" in await d.say("olga", "schedule bolivia-2003-first-balance-sheet 2026-12-10")
        assert len(fake.events_of(guild)) == 1  # only the next meeting

        assert "is cancelled" in await d.say("olga", "unschedule 1")  # #1's event cancelled, #2's created
        old, new = fake.events_of(guild)
        assert old["id"] == event["id"] and old["status"] == 4, old
        assert new["status"] == 1 and "Meeting #2" in new["description"], new

        clock.set(datetime(2026, 12, 10, 20, 31, tzinfo=UTC))  # #2 has ended: its event goes, none is next
        await timeline.tick()
        assert [e["id"] for e in fake.events_of(guild)] == [old["id"]], fake.events_of(guild)
        assert fake.find_requests("DELETE", rf"/guilds/{guild.id}/scheduled-events/{new['id']}")
        assert len(fake.find_requests("POST", rf"/guilds/{guild.id}/scheduled-events")) == 2
    finally:
        await d.stop()
        await store.batcher.stop()
        await store.db.close()
    fake.assert_clean()


@pytest.mark.timeout(30)
async def test_discord_a_direct_reminder_rate_limited_past_discord_py_s_retries_is_tried_again(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Discord answers a DM with 429 (its rate-limit body, `Via` set) more times than discord.py tries: the bot
    tries the reminder again later, and it arrives once."""
    from datetime import timedelta

    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch) as d:
        timeline = await turnout_scenarios.start_timeline(d)
        turnout_scenarios.quick_directs(d)
        await d.say("alice", "remind me dm on")
        await d.say("alice", "rsvp yes")
        fake_discord.fail_dms(d.member("alice"), 429, retry_after=0.01)
        clock.set(turnout_scenarios.REMINDER_DUE)
        await timeline.tick()
        assert await d.directs("alice") == []
        fake_discord.mend_dms(d.member("alice"))
        for _ in range(3):
            clock.advance(timedelta(seconds=30))
            await timeline.tick()
        (alice,) = await d.directs("alice")
        assert "You said yes" in alice, alice
        cid = fake_discord.dm_channels[d.member("alice").id]
        tries = [r.status for r in fake_discord.find_requests("POST", rf"/channels/{cid}/messages")]
        assert tries == [429] * 5 + [200], tries  # discord.py's five tries, then the bot's own
    fake_discord.assert_clean()


@pytest.mark.timeout(30)
async def test_discord_direct_reminders_waiting_when_the_bot_stops_go_out_after_it_starts_again(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot stops while its direct reminders go out one per `direct_interval`: the ones claimed and not sent
    yet go out after the next start, each once."""
    import asyncio
    from datetime import timedelta

    from circlebot.core.timeline import Timeline

    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch) as d:
        timeline = await turnout_scenarios.start_timeline(d)
        turnout_scenarios.quick_directs(d, 0.5)
        names = ("alice", "bob", "carol")
        for name in names:
            await d.say(name, "remind me dm on")
            await d.say(name, "rsvp yes")
        clock.set(turnout_scenarios.REMINDER_DUE)
        ticking = asyncio.create_task(timeline.tick())
        for _ in range(200):
            if await d.directs("alice"):
                break
            await asyncio.sleep(0.01)
        await timeline.close()  # stopping: bob's and carol's are claimed, not sent
        await asyncio.wait_for(ticking, 5)
        assert [len(await d.directs(n)) for n in names] == [1, 0, 0]
        await d.restart()
        again = Timeline(d.app)  # the next process's
        d.app.timeline = again
        turnout_scenarios.quick_directs(d)
        await again.start()
        await again.direct_reminders_sent()
        assert [len(await d.directs(n)) for n in names] == [1, 1, 1]
        clock.advance(timedelta(minutes=5))
        await again.tick()
        assert [len(await d.directs(n)) for n in names] == [1, 1, 1]
    fake_discord.assert_clean()


@pytest.mark.timeout(60)
async def test_matrix_low_turnout_tells_the_organisers_by_power_level_privately(
        matrix_user: MakeUser, tmp_path: Path, clock: FakeClock, synapse: SynapseServer) -> None:
    """`notify` on Matrix, with no organiser named in the config: the members whose power level makes them
    organisers of the circle's room (50 and above, and the room's creator above every level) are told by
    direct message; a member below it is not, and nobody is pinged in the room."""
    from nio import RoomGetStateEventResponse

    from synapse_harness import send_state

    async with matrix_circle(matrix_user, tmp_path, clock, turnout={"deadline": "48h", "quorum": 3}) as d:
        timeline = await turnout_scenarios.start_timeline(d)
        olga, pam = await d.user("olga"), await d.user("pam")  # their devices known before the bot writes
        await d.user("alice")
        got = await olga.client.room_get_state_event(d.room_id, "m.room.power_levels")
        assert isinstance(got, RoomGetStateEventResponse), got
        power = dict(got.content)
        power["users"] = {**power.get("users", {}), pam.user_id: 50}
        await send_state(olga.client, d.room_id, "m.room.power_levels", power)
        await d.say("alice", "rsvp yes")
        clock.set(turnout_scenarios.DEADLINE_DUE)
        await timeline.tick()
        for name in ("olga", "pam"):
            (told,) = await d.directs(name)
            assert "Low turnout for meeting #1" in told and "only 1 said yes" in told, (name, told)
        assert await d.directs("alice") == []
        await d.say("erin", "circle")  # the driver reads the room's posts as it answers
        (low,) = [p for p in d.posts() if "Low turnout for meeting #1" in p]
        assert await d.pinged(low) == set()

"""The organisers a low turnout tells privately are told once per person: one named on two platforms whose
accounts are linked (`link`) gets one direct message, not one on each. Through the whole bot (the core's
recording adapter standing for Discord and Matrix, a real database, the fake clock)."""

from __future__ import annotations

from pathlib import Path

import turnout_scenarios
from circlebot.app import App
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from drivers import FakeClock, RecordingAdapter
from pg_harness import BOTH_DATABASES
from test_linked import CHANNEL, ROOM, TwoPlatforms


@BOTH_DATABASES
async def test_an_organiser_named_on_two_linked_platforms_is_told_of_a_low_turnout_once(
        tmp_path: Path, database: str, clock: FakeClock) -> None:
    olga_discord, pam = TwoPlatforms.user("discord", "olga"), TwoPlatforms.user("discord", "pam")
    settings = make_settings(tmp_path, database=database, circles=[circle_config(
        where={"console": False, "discord_channels": [CHANNEL], "matrix_rooms": [ROOM]},
        organisers={"console": [], "discord_users": [olga_discord.id, pam.id], "discord_manage_server": False,
                    "matrix_users": ["@olga:example.org"], "matrix_power_level": None},
        turnout={"deadline": "48h", "quorum": 3})])
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        zone = settings.zone_of(settings.circles[0])
        two = TwoPlatforms(app, RecordingAdapter(zone, platform="discord", prefix=""),
                           RecordingAdapter(zone, platform="matrix", prefix="!"), clock)
        app.add_adapter(two.discord)
        app.add_adapter(two.matrix)
        timeline = await turnout_scenarios.start_timeline(two)  # type: ignore[arg-type]
        assert "Linked" in await two.link("olga")  # asked on Discord, the code given on Matrix
        await two.say("matrix", "alice", "rsvp yes")
        clock.set(turnout_scenarios.DEADLINE_DUE)
        await timeline.tick()
        await timeline.close()
        told = [(u.platform, u.id) for a in (two.discord, two.matrix) for u, p in a.directs
                if "Low turnout for meeting #1" in app.adapters[u.platform].render(p)]  # type: ignore[attr-defined]
        assert sorted(told) == sorted([("discord", olga_discord.id), ("discord", pam.id)]), told
    finally:
        await store.batcher.stop()
        await store.db.close()

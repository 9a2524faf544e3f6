"""When meetings and their posts happen, through the whole bot: the test adapter, a real SQLite file, a fake clock.

Cron rules mean what crontab(5) means; daylight-saving changes give one meeting per local time; `schedule`,
`move` and the syllabus share one notion of a free meeting slot; lead times count calendar days in the
circle's zone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from circlebot.app import App
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from circlebot.timeline import Timeline
from conftest import SEED, circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter


@asynccontextmanager
async def running(tmp_path: Path, clock: FakeClock, **circle: Any) -> AsyncIterator[tuple[CoreDriver, Timeline]]:
    """The bot as `circlebot run` starts it (minus the real scheduler), for one circle configured as given."""
    circle.setdefault("syllabus", [])
    settings = make_settings(tmp_path, circles=[circle_config(**circle)])
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
        app.add_adapter(adapter)
        timeline = Timeline(app)
        app.timeline = timeline
        await timeline.start()
        yield CoreDriver(app, adapter, clock, settings.circles[0].slug), timeline
    finally:
        await store.batcher.stop()
        await db.close()


def cron(expr: str, zone: str = "Europe/London") -> dict[str, Any]:
    return {"timezone": zone, "meets": {"cron": expr, "duration": "90m"}}


# cron weekdays --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "first"), [
    ("0 19 * * 4", "Thu 26 Nov 2026, 19:00 GMT"),
    ("0 19 * * thu", "Thu 26 Nov 2026, 19:00 GMT"),
    ("0 19 * * 0", "Sun 29 Nov 2026, 19:00 GMT"),
    ("0 19 * * 7", "Sun 29 Nov 2026, 19:00 GMT"),
    ("0 19 * * 1", "Mon 30 Nov 2026, 19:00 GMT"),
])
async def test_a_cron_weekday_is_the_day_crontab_means(tmp_path: Path, clock: FakeClock, expr: str,
                                                       first: str) -> None:
    async with running(tmp_path, clock, **cron(expr)) as (d, _):
        answer = await d.say("olga", f"schedule {SEED}")
        assert f"on {first}" in answer, answer
        assert expr in await d.say("alice", "circle")


async def test_the_syllabus_fills_a_cron_circles_days(tmp_path: Path, clock: FakeClock) -> None:
    async with running(tmp_path, clock, syllabus=[SEED], **cron("0 19 * * 1-5/2")) as (d, _):
        upcoming = (await d.say("alice", "upcoming")).text
        assert "#1 Wed 25 Nov 2026, 19:00 GMT" in upcoming, upcoming  # Mon, Wed, Fri: Wednesday is next


# cron at daylight-saving changes --------------------------------------------------------------------------


@pytest.mark.parametrize(("zone", "expr", "now", "expected"), [
    # the autumn change: the repeated 01:30 is one meeting, its first occurrence
    ("Europe/London", "30 1 * * sun", datetime(2026, 10, 20, tzinfo=UTC),
     ["Sun 25 Oct 2026, 01:30 BST", "Sun 1 Nov 2026, 01:30 GMT", "Sun 8 Nov 2026, 01:30 GMT"]),
    ("America/New_York", "30 1 * * 0", datetime(2026, 10, 27, tzinfo=UTC),
     ["Sun 1 Nov 2026, 01:30 EDT", "Sun 8 Nov 2026, 01:30 EST", "Sun 15 Nov 2026, 01:30 EST"]),
    # the spring change: a time the clocks jump over is read with the offset before, an hour later on the clock
    ("Europe/London", "30 1 * * sun", datetime(2026, 3, 24, tzinfo=UTC),
     ["Sun 29 Mar 2026, 02:30 BST", "Sun 5 Apr 2026, 01:30 BST", "Sun 12 Apr 2026, 01:30 BST"]),
    ("America/New_York", "30 2 * * 7", datetime(2026, 3, 3, tzinfo=UTC),
     ["Sun 8 Mar 2026, 03:30 EDT", "Sun 15 Mar 2026, 02:30 EDT", "Sun 22 Mar 2026, 02:30 EDT"]),
])
async def test_cron_meetings_at_a_daylight_saving_change_follow_the_documented_rule(
    tmp_path: Path, zone: str, expr: str, now: datetime, expected: list[str]
) -> None:
    async with running(tmp_path, FakeClock(now), **cron(expr, zone)) as (d, _):
        for want in expected:
            answer = await d.say("olga", f"schedule {SEED}")
            assert f"on {want}" in answer, (want, answer)

"""When meetings and their posts happen, through the whole bot: the test adapter, a real SQLite file, a fake clock.

Cron rules mean what crontab(5) means; daylight-saving changes give one meeting per local time; `schedule`,
`move` and the syllabus share one notion of a free meeting slot; lead times count calendar days in the
circle's zone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from circlebot.app import App
from circlebot.core.timeline import Timeline
from circlebot.readings import load_collection
from circlebot.store import Database, Store
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


# a fortnightly circle's fortnight -------------------------------------------------------------------------


async def test_a_fortnightly_circle_meets_from_its_starting_date(tmp_path: Path, clock: FakeClock) -> None:
    meets = {"weekdays": ["thursday"], "time": "19:00", "every_weeks": 2, "starting": "2026-12-03"}
    async with running(tmp_path, clock, meets=meets) as (d, _):
        assert "every 2 weeks on Thursday at 19:00 (Europe/London), from Thu 3 Dec 2026" in await d.say("bob", "circle")
        assert "on Thu 3 Dec 2026, 19:00 GMT" in await d.say("olga", f"schedule {SEED}")
        assert "on Thu 17 Dec 2026, 19:00 GMT" in await d.say("olga", f"schedule {SEED}")
        assert "does not usually meet on Thursday 10 December" in await d.say("olga", f"schedule {SEED} 2026-12-10")


# lead times across daylight-saving changes ----------------------------------------------------------------


async def test_days_before_are_calendar_days_and_hours_are_hours(tmp_path: Path) -> None:
    """The clocks go back on Sunday 25 Oct 2026 in London. A Thursday 29 Oct meeting's reading, "7d" before,
    goes out on Thursday 22 Oct at 19:00 local time (BST); a "24h" reminder for a Sunday 25 Oct meeting is
    24 hours before (20:00 BST), a "1d" one the day before at the same local time (19:00 BST)."""
    clock = FakeClock(datetime(2026, 10, 20, 12, tzinfo=UTC))
    meets = {"weekdays": ["thursday", "sunday"], "time": "19:00", "duration": "90m"}
    async with running(tmp_path, clock, meets=meets, timeline={"assignment": "7d", "reminder": "24h"}) as (d, tl):
        await d.say("olga", f"schedule {SEED} 2026-10-29")
        await d.say("olga", f"schedule {SEED} 2026-10-25")
        upcoming = (await d.say("alice", "upcoming")).text
        assert "reminder due Sat 24 Oct 2026, 20:00 BST" in upcoming, upcoming
        clock.set(datetime(2026, 10, 22, 17, 59, 59, tzinfo=UTC))
        await tl.tick()
        assert not any("Reading for meeting #1" in p for p in d.posts())
        clock.set(datetime(2026, 10, 22, 18, tzinfo=UTC))  # 19:00 BST
        await tl.tick()
        assert any("Reading for meeting #1" in p for p in d.posts()), d.posts()
    async with running(tmp_path / "1d", FakeClock(datetime(2026, 10, 20, 12, tzinfo=UTC)), meets=meets,
                       timeline={"reminder": "1d"}) as (d, _):
        await d.say("olga", f"schedule {SEED} 2026-10-25")
        upcoming = (await d.say("alice", "upcoming")).text
        assert "reminder due Sat 24 Oct 2026, 19:00 BST" in upcoming, upcoming


@pytest.mark.parametrize(("lead", "due"), [
    ("7d", "Thu 05 Mar 19:00 EST"),  # a week earlier on the calendar, same local time
    ("168h", "Thu 05 Mar 18:00 EST"),  # exactly 168 hours
    ("1d12h", "Wed 11 Mar 07:00 EDT"),  # a calendar day, then 12 hours
    ("3d", "Mon 09 Mar 19:00 EDT"),
    ("5d", "Sat 07 Mar 19:00 EST"),
])
def test_plan_counts_lead_days_on_the_circles_calendar(tmp_path: Path, lead: str, due: str) -> None:
    """New York springs forward on Sunday 8 Mar 2026; the meeting is Thursday 12 Mar, 19:00 EDT."""
    from zoneinfo import ZoneInfo

    from circlebot.core.timeline import PostKind, plan
    from circlebot.store import Meeting

    settings = make_settings(tmp_path, circles=[circle_config(timezone="America/New_York",
                                                              timeline={"assignment": lead})])
    start = datetime(2026, 3, 12, 23, tzinfo=UTC)
    m = Meeting(1, "study", start, start + timedelta(minutes=90), SEED, None, None, "scheduled")
    (job,) = [j for j in plan(settings.circles, [m], datetime(2026, 2, 1, tzinfo=UTC)) if j.kind is PostKind.ASSIGNMENT]
    assert f"{job.due_at.astimezone(ZoneInfo('America/New_York')):%a %d %b %H:%M %Z}" == due


def test_a_circle_without_a_zone_plans_in_the_configs_default_zone(tmp_path: Path) -> None:
    from circlebot.core.timeline import PostKind, plan
    from circlebot.store import Meeting

    circle = circle_config()
    del circle["timezone"]
    settings = make_settings(tmp_path, timezone="Europe/London", circles=[circle])
    start = datetime(2026, 10, 29, 19, tzinfo=UTC)  # Thu 19:00 GMT; a week before is 19:00 BST
    m = Meeting(1, "study", start, start + timedelta(minutes=90), SEED, None, None, "scheduled")
    jobs = {j.kind: j for j in plan(settings.circles, [m], datetime(2026, 10, 1, tzinfo=UTC))}
    assert jobs[PostKind.ASSIGNMENT].due_at == datetime(2026, 10, 22, 18, tzinfo=UTC)


# one notion of a free meeting slot ------------------------------------------------------------------------


async def test_schedule_next_does_not_book_a_skipped_date(tmp_path: Path, clock: FakeClock) -> None:
    async with running(tmp_path, clock) as (d, _):
        assert "will not meet on Thu 26 Nov 2026" in await d.say("olga", "skip 2026-11-26")
        assert "on Thu 3 Dec 2026, 19:00 GMT" in await d.say("olga", f"schedule {SEED}")
        assert "will not meet on Thu 10 Dec 2026" in await d.say("olga", "skip 2026-12-10")
        assert "on Thu 17 Dec 2026, 18:30 GMT" in await d.say("olga", f"schedule {SEED} next 18:30")
        listed = [line for line in (await d.say("alice", "upcoming")).text.splitlines() if line.startswith("#")]
        assert [line.split(":")[0] for line in listed] == ["#2 Thu 3 Dec 2026, 19", "#4 Thu 17 Dec 2026, 18"], listed
        # naming the skipped date is an organiser's explicit choice: it books it, and says so
        booked = await d.say("olga", f"schedule {SEED} 2026-11-26")
        assert "on Thu 26 Nov 2026, 19:00 GMT" in booked and "was skipped" in booked, booked


async def test_a_cancelled_meetings_date_is_not_refilled_by_schedule_next_or_the_syllabus(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with running(tmp_path, clock, syllabus=[SEED, "second-reading"], timeline={"assignment": "14d"}) as (d, _):
        assert "#1 Thu 26 Nov" in await d.say("alice", "upcoming")
        await d.say("olga", "unschedule 1")
        nxt = await d.say("olga", f"schedule {SEED}")  # 26 Nov cancelled, 3 Dec the syllabus's: 10 Dec
        assert "on Thu 10 Dec 2026" in nxt, nxt
        listed = (await d.say("alice", "upcoming")).text
        assert "#1 " not in listed and "#2 Thu 3 Dec" in listed and "#3 Thu 10 Dec" in listed, listed


async def test_move_onto_a_skipped_date_books_it_and_a_meeting_stays_a_clash(tmp_path: Path, clock: FakeClock) -> None:
    async with running(tmp_path, clock) as (d, _):
        await d.say("olga", f"schedule {SEED} 2026-12-03")
        await d.say("olga", f"schedule {SEED} 2026-12-10")
        await d.say("olga", "skip 2026-12-17")
        assert "already at that time" in await d.say("olga", "move 1 2026-12-10")
        moved = await d.say("olga", "move 1 2026-12-17")
        assert "to Thu 17 Dec 2026, 19:00 GMT" in moved and "was skipped" in moved, moved


# a split reading ------------------------------------------------------------------------------------------


async def test_a_split_reading_on_a_later_date_schedules_every_part_from_that_date(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with running(tmp_path, clock, part_minutes=8, split_long_readings=True) as (d, _):
        await d.say("olga", "skip 2026-12-24")
        answer = (await d.say("olga", f"schedule {SEED} 2026-12-17")).text
        lines = [line for line in answer.splitlines() if line.startswith("Scheduled meeting")]
        assert len(lines) == 3, answer
        for line, part, day in zip(lines, (1, 2, 3), ("Thu 17 Dec 2026", "Thu 31 Dec 2026", "Thu 7 Jan 2027"),
                                   strict=True):
            assert f"(part {part} of 3)" in line and f"on {day}, 19:00 GMT" in line, line
        listed = (await d.say("alice", "upcoming")).text
        assert "part 3 of 3" in listed and "Thu 26 Nov" not in listed, listed


# post states after a move ---------------------------------------------------------------------------------


async def test_upcoming_shows_the_posts_of_the_meetings_current_time(tmp_path: Path, clock: FakeClock) -> None:
    async with running(tmp_path, clock) as (d, tl):
        await d.say("olga", f"schedule {SEED} 2026-12-10")
        clock.set(datetime(2026, 12, 3, 19, tzinfo=UTC))
        await tl.tick()
        assert "posts: reading sent" in await d.say("alice", "upcoming")
        await d.say("olga", "move 1 2026-12-17")
        after = (await d.say("alice", "upcoming")).text
        assert "reading due Thu 10 Dec 2026, 19:00 GMT" in after and "reading sent" not in after, after
        clock.set(datetime(2026, 12, 10, 19, tzinfo=UTC))
        await tl.tick()
        assert "posts: reading sent" in await d.say("alice", "upcoming")
        assert sum("Reading for meeting #1" in p for p in d.posts()) == 2  # once for each time

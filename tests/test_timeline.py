"""The timeline: each meeting's posts go out by themselves, once, on time, across restarts and DST changes.

The clock is injected; `Timeline.tick()` runs what is due at the fake time, so no test sleeps. A "restart" is
a new App, Timeline and database connection on the same SQLite file, as a new process would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from circlebot.app import App
from circlebot.config import Settings
from circlebot.core.domain import ChannelRef, Control, MessageRef, Post, RsvpAnswer, RsvpCast, UserRef
from circlebot.core.timeline import PostKind, Timeline, plan, syllabus_fill
from circlebot.readings import load_collection
from circlebot.store import Database, Meeting, Store
from conftest import REPO, SEED, circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter, number_after

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # Tuesday; the circle meets Thursdays 19:00 London


@dataclass
class Bot:
    """One running bot process: its app, timeline, adapter and database connection."""

    app: App
    timeline: Timeline
    adapter: RecordingAdapter
    driver: CoreDriver

    async def stop(self) -> None:
        await self.app.store.batcher.stop()
        await self.app.store.db.close()

    def posts(self, kind: str = "") -> list[Post]:
        return [p for _, p, _ in self.adapter.sent if kind in p.text]


async def boot(settings: Settings, clock: FakeClock) -> Bot:
    """Start a bot the way `circlebot run` does, minus the real scheduler: settle claims and catch up."""
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), clock)
    adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
    app.add_adapter(adapter)
    timeline = Timeline(app)
    app.timeline = timeline
    await timeline.start()
    return Bot(app, timeline, adapter, CoreDriver(app, adapter, clock, settings.circles[0].slug))


@pytest.fixture
async def bot(settings: Settings, clock: FakeClock) -> AsyncIterator[Bot]:
    b = await boot(settings, clock)
    yield b
    await b.stop()


def no_syllabus(tmp_path: Path, **circle: object) -> Settings:
    return make_settings(tmp_path, circles=[circle_config(syllabus=[], **circle)])


# pure planning --------------------------------------------------------------------------------------------


def meeting(mid: int, start: datetime, minutes: int = 90, circle: str = "study", status: str = "scheduled") -> Meeting:
    return Meeting(mid, circle, start, start + timedelta(minutes=minutes), SEED, None, None, status)


def test_plan_is_pure_ordered_and_keyed_stably(settings: Settings) -> None:
    start = datetime(2026, 12, 3, 19, tzinfo=UTC)
    meetings = [meeting(2, start + timedelta(days=7)), meeting(1, start), meeting(3, start, status="cancelled")]
    jobs = plan(settings.circles, meetings, START)
    assert jobs == plan(settings.circles, list(reversed(meetings)), START)
    assert [j.kind for j in jobs if j.meeting_id == 1] == [  # and, where a circle sets them, turnout's posts
        PostKind.ASSIGNMENT, PostKind.REMINDER, PostKind.QUESTIONS, PostKind.SUMMARY]
    assert [j.due_at for j in jobs] == sorted(j.due_at for j in jobs)
    first = {j.kind: j for j in jobs if j.meeting_id == 1}
    assert first[PostKind.ASSIGNMENT].due_at == start - timedelta(days=7)
    assert first[PostKind.REMINDER].due_at == start - timedelta(hours=24)
    assert first[PostKind.QUESTIONS].expires_at == start + timedelta(minutes=90)
    assert first[PostKind.ASSIGNMENT].key == f"study/1/assignment/{int(start.timestamp())}"
    assert all(j.meeting_id != 3 for j in jobs)


def test_syllabus_fills_free_slots_in_order_and_respects_skips(tmp_path: Path) -> None:
    s = make_settings(tmp_path, circles=[circle_config(syllabus=["a", "b", "c"], timeline={"assignment": "16d"})])
    c, zone = s.circles[0], ZoneInfo("Europe/London")
    thursday = datetime(2026, 11, 26, 19, tzinfo=UTC)
    skipped = meeting(9, thursday + timedelta(days=7), status="cancelled")
    done = Meeting(1, "study", thursday - timedelta(days=7), thursday, "a", None, None, "scheduled")
    fills = syllabus_fill(c, zone, [skipped, done], START, {})
    assert [(f[0], f[1]) for f in fills] == [(thursday, "b"), (thursday + timedelta(days=14), "c")]
    parts = syllabus_fill(c, zone, [], START, {"a": 2})
    assert [(f[1], f[2], f[3]) for f in parts] == [("a", 1, 2), ("a", 2, 2), ("b", None, None)]


# running through the core ---------------------------------------------------------------------------------


async def test_a_meeting_runs_its_whole_timeline_once(tmp_path: Path, clock: FakeClock) -> None:
    settings = no_syllabus(tmp_path)
    bot = await boot(settings, clock)
    try:
        d = bot.driver
        mid = number_after("meeting", (await d.say("olga", f"schedule {SEED} 2026-12-10")).text)
        await d.say("alice", f"rsvp yes {mid}")
        await d.say("bob", f"rsvp maybe {mid}")
        await d.say("carol", f"rsvp no {mid}")
        start = datetime(2026, 12, 10, 19, tzinfo=UTC)
        assert await bot.timeline.tick() == 0 and bot.posts() == []

        clock.set(start - timedelta(days=7))
        assert await bot.timeline.tick() == 1
        assert await bot.timeline.tick() == 0  # never twice
        (assignment,) = bot.posts("Reading for meeting")
        text = bot.adapter.render(assignment)
        assert "Thu 10 Dec 2026, 19:00 GMT (Europe/London)" in text and "About 19 min to read" in text
        assert "In Defence of Marxism" in text and assignment.controls == (Control.RSVP, Control.READ)
        assert assignment.meeting_id == mid

        clock.set(start - timedelta(hours=24))
        await bot.timeline.tick()
        (reminder,) = bot.posts("Reminder")
        assert reminder.notify and {u.id for u in reminder.mentions} == {"alice", "bob"}
        assert "1 yes, 1 maybe, 1 no" in reminder.text

        assert "check-in is closed" in (await d.say("alice", "here")).text.lower()
        clock.set(start)
        await bot.timeline.tick()
        (started,) = bot.posts("has started")
        assert "dual power" in started.text and started.controls == (Control.CHECK_IN,)
        root = next(ref for _, p, ref in bot.adapter.sent if p is assignment)
        assert started.thread_of == root  # questions go in a thread on the meeting's post
        assert "checked in" in (await d.say("alice", "here")).text

        clock.set(start + timedelta(minutes=90))
        await bot.timeline.tick()
        (ended,) = bot.posts("has ended")
        assert "1 came: alice" in ended.text and "No next meeting" in ended.text
        assert "check-in is closed" in (await d.say("bob", "here")).text.lower()
        assert len(bot.posts()) == 4
    finally:
        await bot.stop()


POINTS = {
    PostKind.ASSIGNMENT: timedelta(days=-7),
    PostKind.REMINDER: timedelta(hours=-24),
    PostKind.QUESTIONS: timedelta(0),
    PostKind.SUMMARY: timedelta(minutes=90),
    PostKind.DEADLINE: timedelta(hours=-48),  # the circle below sets an RSVP deadline
}
MARKERS = {PostKind.ASSIGNMENT: "Reading for meeting", PostKind.REMINDER: "Reminder",
           PostKind.QUESTIONS: "has started", PostKind.SUMMARY: "has ended", PostKind.DEADLINE: "is on"}


@pytest.mark.parametrize("kind", list(POINTS))
@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(0), timedelta(seconds=1)],
                         ids=["just-before", "at", "just-after"])
async def test_restart_around_each_point_sends_each_post_exactly_once(
    tmp_path: Path, clock: FakeClock, kind: PostKind, offset: timedelta
) -> None:
    settings = no_syllabus(tmp_path, turnout={"deadline": "48h"})
    start = datetime(2026, 12, 10, 19, tzinfo=UTC)
    bots: list[Bot] = []
    first = await boot(settings, clock)
    bots.append(first)
    await first.driver.say("olga", f"schedule {SEED} 2026-12-10")
    stop_at = start + POINTS[kind] + offset
    for point in [*(start + p for p in POINTS.values() if start + p < stop_at), stop_at]:
        clock.set(point)  # the first process runs each earlier point at its time, then stops
        await first.timeline.tick()
    await first.stop()  # the process stops here ...
    clock.advance(timedelta(seconds=2))
    second = await boot(settings, clock)  # ... and a new one starts on the same database
    bots.append(second)
    for point in POINTS.values():  # run the rest of the timeline, each point at its time
        if start + point > clock.now():
            clock.set(start + point)
            await second.timeline.tick()
    await second.stop()
    for k in POINTS:
        sent = sum(len(b.posts(MARKERS[k])) for b in bots)
        assert sent == 1, f"{k} sent {sent} times"
    (posted_in,) = [i for i, b in enumerate(bots) if b.posts(MARKERS[kind])]
    assert posted_in == (0 if offset >= timedelta(0) else 1)


async def test_posts_missed_while_down_are_sent_if_still_useful_else_reported(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = no_syllabus(tmp_path)
    first = await boot(settings, clock)
    await first.driver.say("olga", f"schedule {SEED} 2026-12-10")
    await first.stop()
    clock.set(datetime(2026, 12, 10, 19, 30, tzinfo=UTC))  # down until half an hour into the meeting
    second = await boot(settings, clock)
    try:
        assert second.posts("Reading for meeting") == [] and second.posts("Reminder") == []
        assert len(second.posts("has started")) == 1  # questions are still useful during the meeting
        organiser = (await second.driver.say("olga", "upcoming")).text
        assert "reading ⚠ missed" in organiser and "reminder ⚠ missed" in organiser
        assert "post it by hand" in organiser
        assert "questions sent" in organiser
        member = (await second.driver.say("alice", "upcoming")).text
        assert "reading ⚠ missed" in member and "post it by hand" not in member
    finally:
        await second.stop()


async def test_a_claim_from_before_per_location_delivery_is_recorded_missed(tmp_path: Path, clock: FakeClock) -> None:
    """A post claimed by a circlebot that kept no per-location deliveries cannot be resent safely."""
    settings = no_syllabus(tmp_path)
    first = await boot(settings, clock)
    mid = number_after("meeting", (await first.driver.say("olga", f"schedule {SEED} 2026-12-10")).text)
    m = await first.app.store.meeting(mid)
    assert m is not None
    job = next(j for j in plan(settings.circles, [m], clock.now()) if j.kind is PostKind.REMINDER)
    assert await first.app.store.claim_post(job.key, job.circle, mid, job.kind.value, job.due_at, clock.now())
    await first.stop()  # died after claiming, before sending
    clock.set(job.due_at + timedelta(minutes=5))
    second = await boot(settings, clock)
    try:
        assert second.posts("Reminder") == []
        assert (await second.app.store.post_states(mid))["reminder"] == "missed"
    finally:
        await second.stop()


class SendsThenHangs(RecordingAdapter):
    """A platform that takes the post, then the process is killed before it hears back (or marks it)."""

    hang_on: str = ""
    hung: asyncio.Event | None = None

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        ref = await super().send(where, post, key=key)
        if self.hang_on and self.hang_on in str(post.text):
            if self.hung is not None:
                self.hung.set()
            await asyncio.Event().wait()
        return ref


async def boot_on(settings: Settings, clock: FakeClock, platform: RecordingAdapter) -> Bot:
    """`boot`, with a given test platform (kept across "processes": its messages and idempotency keys)."""
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), clock)
    app.add_adapter(platform)
    timeline = Timeline(app)
    app.timeline = timeline
    await timeline.start()
    return Bot(app, timeline, platform, CoreDriver(app, platform, clock, settings.circles[0].slug))


async def test_a_post_interrupted_after_the_platform_took_it_is_resent_once_and_keeps_working(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The process dies between the platform taking the reading and the bot recording it. At restart the bot
    sends it again with the same idempotency key: the platform recognises it, nothing is posted twice, the
    message is recorded, so RSVPs on it count and the questions are threaded under it."""
    settings = no_syllabus(tmp_path)
    platform = SendsThenHangs(settings.zone_of(settings.circles[0]))
    first = await boot_on(settings, clock, platform)
    mid = number_after("meeting", (await first.driver.say("olga", f"schedule {SEED} 2026-12-10")).text)
    start = datetime(2026, 12, 10, 19, tzinfo=UTC)
    platform.hang_on = "Reading for meeting"
    clock.set(start - timedelta(days=7))
    platform.hung = asyncio.Event()
    sending = asyncio.create_task(first.timeline.tick())
    await asyncio.wait_for(platform.hung.wait(), 5)
    sending.cancel()  # killed: nothing after the send ran
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    await first.stop()
    assert (await first_states(settings, mid))["assignment"] == "claimed"

    platform.hang_on = ""
    clock.advance(timedelta(minutes=1))
    second = await boot_on(settings, clock, platform)
    try:
        (reading,) = second.posts("Reading for meeting")  # one message on the platform, from the first process
        ref = next(r for _, p, r in platform.sent if p is reading)
        assert (await second.app.store.post_states(mid))["assignment"] == "sent"
        said = await second.app.dispatch(RsvpCast(UserRef("console", "alice", "alice"), RsvpAnswer.YES,
                                                  clock.now(), message=ref))
        assert said is not None and "yes" in said
        assert [u.id for u, _ in await second.app.store.rsvps(mid)] == ["alice"]
        clock.set(start)
        await second.timeline.tick()
        (questions,) = second.posts("has started")
        assert questions.thread_of == ref
    finally:
        await second.stop()


async def test_an_interrupted_post_is_missed_when_the_platform_can_no_longer_tell(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = no_syllabus(tmp_path)
    platform = SendsThenHangs(settings.zone_of(settings.circles[0]), dedup_window=timedelta(minutes=2))
    first = await boot_on(settings, clock, platform)
    mid = number_after("meeting", (await first.driver.say("olga", f"schedule {SEED} 2026-12-10")).text)
    platform.hang_on = "Reading for meeting"
    clock.set(datetime(2026, 12, 3, 19, tzinfo=UTC))
    platform.hung = asyncio.Event()
    sending = asyncio.create_task(first.timeline.tick())
    await asyncio.wait_for(platform.hung.wait(), 5)
    sending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    await first.stop()
    platform.hang_on = ""
    clock.advance(timedelta(minutes=3))  # beyond the platform's memory of the key
    second = await boot_on(settings, clock, platform)
    try:
        assert len(second.posts("Reading for meeting")) == 1  # not sent again: it might be a duplicate
        assert (await second.app.store.post_states(mid))["assignment"] == "missed"
        assert "post it by hand" in (await second.driver.say("olga", "upcoming")).text
    finally:
        await second.stop()


async def first_states(settings: Settings, mid: int) -> dict[str, str]:
    db = await Database.open(settings.database)
    try:
        return await Store(db).post_states(mid)
    finally:
        await db.close()


async def test_a_loaded_job_does_not_post_for_a_cancelled_or_moved_meeting(tmp_path: Path, clock: FakeClock) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    settings = no_syllabus(tmp_path)
    bot = await boot(settings, clock)
    try:
        scheduler = AsyncIOScheduler(timezone=UTC)  # not started: the test fires the loaded jobs itself
        bot.timeline._scheduler = scheduler
        d = bot.driver
        cancelled = number_after("meeting", (await d.say("olga", f"schedule {SEED} 2026-11-26")).text)
        moved = number_after("meeting", (await d.say("olga", f"schedule {SEED} 2026-11-26 10:00")).text)
        clock.set(datetime(2026, 11, 25, 9, tzinfo=UTC))
        await bot.timeline.rebuild()
        loaded = [j for j in scheduler.get_jobs() if "/reminder/" in j.id]
        assert len(loaded) == 2
        await bot.app.store.cancel_meeting(cancelled)  # changes the timeline has not seen yet
        await bot.app.store.move_meeting(moved, datetime(2026, 11, 27, 10, tzinfo=UTC),
                                         datetime(2026, 11, 27, 11, 30, tzinfo=UTC))
        clock.set(datetime(2026, 11, 25, 19, tzinfo=UTC))
        for job in loaded:  # their time comes
            await job.func(*job.args)
        assert bot.posts("Reminder") == []
        clock.set(datetime(2026, 11, 26, 10, tzinfo=UTC))
        await bot.timeline.tick()
        (reminder,) = bot.posts("Reminder")  # the moved meeting's reminder, for its new time
        assert f"meeting #{moved}" in reminder.text and "Fri 27 Nov" in bot.adapter.render(reminder)
    finally:
        await bot.stop()


async def test_a_platform_down_at_the_due_time_gets_the_post_when_it_is_back(tmp_path: Path, clock: FakeClock) -> None:
    settings = no_syllabus(tmp_path)
    bot = await boot(settings, clock)
    try:
        mid = number_after("meeting", (await bot.driver.say("olga", f"schedule {SEED} 2026-12-10")).text)
        due = datetime(2026, 12, 9, 19, tzinfo=UTC)
        clock.set(datetime(2026, 12, 3, 19, tzinfo=UTC))
        await bot.timeline.tick()
        bot.adapter.down = True  # a 30-second outage at the reminder's due time
        clock.set(due)
        assert await bot.timeline.tick() == 0
        for _ in range(30):
            clock.advance(timedelta(seconds=1))
            await bot.timeline.tick()
        assert bot.posts("Reminder") == []
        assert "reminder sending" in (await bot.driver.say("olga", "upcoming")).text
        bot.adapter.down = False
        for _ in range(40):  # retries back off: 1, 2, 4 ... s
            clock.advance(timedelta(seconds=1))
            await bot.timeline.tick()
        assert len(bot.posts("Reminder")) == 1
        assert (await bot.app.store.post_states(mid))["reminder"] == "sent"
        assert len([a for a in bot.adapter.attempts if a[1] and "/reminder/" in a[1]]) < 12
    finally:
        await bot.stop()


async def test_a_platform_down_until_too_late_records_a_miss_and_the_other_gets_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(tmp_path, circles=[circle_config(syllabus=[], where={
        "console": True, "matrix_rooms": ["!room:localhost"]})])
    bot = await boot(settings, clock)
    other = RecordingAdapter(settings.zone_of(settings.circles[0]), platform="matrix", down=True)
    bot.app.add_adapter(other)
    try:
        mid = number_after("meeting", (await bot.driver.say("olga", f"schedule {SEED} 2026-12-10")).text)
        clock.set(datetime(2026, 12, 9, 19, tzinfo=UTC))
        while clock.now() < datetime(2026, 12, 10, 19, 5, tzinfo=UTC):  # past the meeting's start
            await bot.timeline.tick()
            clock.advance(timedelta(minutes=7))
        assert len(bot.posts("Reminder")) == 1 and other.sent == []  # the console got it; matrix never came back
        assert (await bot.app.store.post_states(mid))["reminder"] == "missed"
        upcoming = (await bot.driver.say("olga", "upcoming")).text
        assert "reminder ⚠ missed" in upcoming
        other.down = False
        clock.advance(timedelta(minutes=2))
        await bot.timeline.tick()
        assert not any("Reminder" in p.text for _, p, _ in other.sent)  # too late now: never sent
        assert any("has started" in p.text for _, p, _ in other.sent)  # the questions are still useful
    finally:
        await bot.stop()


async def test_no_post_falls_between_running_the_due_and_loading_the_jobs(tmp_path: Path) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    class Ticking(FakeClock):
        """Time passes while the bot works: each look at the clock is a second later."""

        def now(self) -> datetime:
            self.advance(timedelta(seconds=1))
            return super().now()

    start = datetime(2026, 12, 10, 19, tzinfo=UTC)
    due = start - timedelta(hours=24)
    for before in range(1, 9):  # the reminder falls due during the rebuild, at each point of it in turn
        settings = no_syllabus(tmp_path / str(before))
        clock = Ticking(due - timedelta(hours=1))
        bot = await boot(settings, clock)
        try:
            await bot.app.store.add_meeting("study", start, start + timedelta(minutes=90), SEED, None, clock.now())
            scheduler = AsyncIOScheduler(timezone=UTC)
            bot.timeline._scheduler = scheduler
            clock.set(due - timedelta(seconds=before))
            await bot.timeline.rebuild()
            sent = bool(bot.posts("Reminder"))
            loaded = any("/reminder/" in j.id for j in scheduler.get_jobs())
            assert sent or loaded, f"the reminder due {before} s after the rebuild began was lost"
        finally:
            await bot.stop()


async def test_a_circle_called_timeline_keeps_the_reload_job(tmp_path: Path, clock: FakeClock) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    settings = make_settings(tmp_path, circles=[circle_config(slug="timeline", syllabus=[])])
    bot = await boot(settings, clock)
    try:
        scheduler = AsyncIOScheduler(timezone=UTC)
        bot.timeline._scheduler = scheduler
        await bot.timeline.rebuild()
        await bot.driver.say("olga", f"schedule {SEED} 2026-11-26")  # re-plans the circle "timeline"
        assert any("reload" in j.id for j in scheduler.get_jobs())
    finally:
        await bot.stop()


@pytest.mark.parametrize(
    ("zone", "change", "before", "after"),
    [
        ("Europe/London", "2026-03-29", "GMT", "BST"),
        ("Europe/London", "2026-10-25", "BST", "GMT"),
        ("America/New_York", "2026-03-08", "EST", "EDT"),
        ("America/New_York", "2026-11-01", "EDT", "EST"),
    ],
)
async def test_meetings_stay_at_local_time_across_daylight_saving(
    tmp_path: Path, zone: str, change: str, before: str, after: str
) -> None:
    day = datetime.fromisoformat(change).replace(tzinfo=UTC)
    settings = make_settings(tmp_path, circles=[circle_config(
        timezone=zone, meets={"weekdays": ["sunday"], "time": "19:00", "duration": "90m"},
        syllabus=[SEED, SEED + "-x", SEED + "-y"], timeline={"assignment": "10d", "reminder": "24h"})])
    clock = FakeClock(day - timedelta(days=9))
    bot = await boot(settings, clock)
    try:
        meetings = await bot.app.store.meetings("study", limit=10)
        local = [m.starts_at.astimezone(ZoneInfo(zone)) for m in meetings]
        assert [t.strftime("%H:%M") for t in local] == ["19:00", "19:00"]
        assert [t.tzname() for t in local] == [before, after]
        for m in meetings:  # every post of both meetings, at its time
            for job in plan(settings.circles, [m], clock.now()):
                clock.set(job.due_at)
                await bot.timeline.tick()
        shown = [bot.adapter.render(p) for p in bot.posts("Reminder")]
        assert f"19:00 {before} ({zone})" in shown[0] and f"19:00 {after} ({zone})" in shown[1]
        assert len(bot.posts("has started")) == 2
    finally:
        await bot.stop()


async def test_skip_and_move(tmp_path: Path, clock: FakeClock) -> None:
    bot = await boot(make_settings(tmp_path, circles=[circle_config(
        syllabus=[SEED, "second-reading"], timeline={"assignment": "14d"})]), clock)
    try:
        d = bot.driver
        upcoming = (await d.say("alice", "upcoming")).text
        assert "#1 Thu 26 Nov 2026" in upcoming  # the syllabus filled the next meeting
        skipped = await d.say("olga", "skip 2026-11-26")
        assert "will not meet on Thu 26 Nov" in skipped and "#1" in skipped.text
        listed = (await d.say("alice", "upcoming")).text
        assert "Thu 26 Nov" not in listed
        assert "Thu 3 Dec 2026" in listed and SEED not in listed  # the syllabus moved on to the next date
        moved = await d.say("olga", "move 2 2026-12-05 11:00")
        assert "moved from Thu 3 Dec 2026, 19:00 GMT" in moved and "to Sat 5 Dec 2026, 11:00 GMT" in moved
        assert "does not meet on" in await d.say("olga", "skip 2026-12-02")
        assert "for the organisers" in await d.say("alice", "move 2 2026-12-06")
    finally:
        await bot.stop()


async def test_polls_close_by_themselves_on_the_timeline(bot: Bot, clock: FakeClock) -> None:
    poll = number_after("poll", (await bot.driver.say("olga", 'poll "Soon?" "Yes" "No" --hours 3')).text)
    await bot.driver.say("alice", f"vote {poll} 1")
    clock.advance(timedelta(hours=3))
    await bot.timeline.tick()
    assert any("has closed" in bot.adapter.render(p) and "Result: Yes" in bot.adapter.render(p)
               for p in bot.posts())


async def test_the_scheduler_holds_stable_jobs_for_a_horizon_only(tmp_path: Path, clock: FakeClock) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    settings = no_syllabus(tmp_path)
    bot = await boot(settings, clock)
    try:
        await bot.driver.say("olga", f"schedule {SEED} 2026-11-26")
        await bot.driver.say("olga", f"schedule {SEED} 2026-12-31")
        scheduler = AsyncIOScheduler(timezone=UTC)  # not started: nothing fires, we only look at the jobs
        bot.timeline._scheduler = scheduler
        await bot.timeline.rebuild()
        ids = sorted(j.id for j in scheduler.get_jobs())
        # now is Tue 12:00; within 24 h: nothing of the 26 Nov meeting but its reminder (Wed 19:00 is 31 h away)
        assert ids == ["timeline:dm", "timeline:reload"]  # and the direct reminders' sweep, every minute
        clock.set(datetime(2026, 11, 25, 12, tzinfo=UTC))
        await bot.timeline.rebuild()
        ids = sorted(j.id for j in scheduler.get_jobs())
        first_start = int(datetime(2026, 11, 26, 19, tzinfo=UTC).timestamp())
        assert ids == sorted(["timeline:dm", "timeline:reload", f"post:study/1/reminder/{first_start}"])
        await bot.timeline.rebuild()
        assert sorted(j.id for j in scheduler.get_jobs()) == ids  # rebuilt, not duplicated
    finally:
        await bot.stop()


async def test_a_change_in_one_circle_replans_that_circle_only(tmp_path: Path, clock: FakeClock) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    settings = make_settings(tmp_path, circles=[circle_config(syllabus=[]),
                                                circle_config(slug="other", name="Other", syllabus=[])])
    bot = await boot(settings, clock)
    try:
        scheduler = AsyncIOScheduler(timezone=UTC)  # not started: we only look at the jobs
        bot.timeline._scheduler = scheduler
        other = settings.circles[1]
        await bot.app.store.add_meeting("other", datetime(2026, 11, 25, 9, tzinfo=UTC),
                                        datetime(2026, 11, 25, 10, tzinfo=UTC), SEED, None, clock.now())
        await bot.timeline.rebuild()
        before = {j.id for j in scheduler.get_jobs()}
        assert any(i.startswith("post:other/") for i in before)
        await bot.app.store.cancel_meeting(1)  # behind the timeline's back: a circle-wide rebuild would see it
        await bot.driver.say("olga", f"schedule {SEED} 2026-11-25 10:00")  # in "study": re-plans "study" only
        after = {j.id for j in scheduler.get_jobs()}
        assert {i for i in after if i.startswith("post:other/")} == {i for i in before if i.startswith("post:other/")}
        assert any(i.startswith("post:study/") for i in after)
        await bot.timeline.rebuild(other)
        assert not any(j.id.startswith("post:other/") for j in scheduler.get_jobs())
    finally:
        await bot.stop()


def test_export_ics_has_stable_uids(tmp_path: Path) -> None:
    import asyncio

    from icalendar import Calendar

    settings = no_syllabus(tmp_path)
    config = tmp_path / "circlebot.toml"
    config.write_text(f'database = "{settings.database}"\nreadings = "{REPO / "readings"}"\n'
                      '[[circles]]\nslug = "study"\nname = "Test study circle"\ntimezone = "Europe/London"\n'
                      'meets = {weekdays = ["thursday"], time = "19:00"}\n', encoding="utf-8")

    async def seed() -> None:
        clock = FakeClock(START)
        bot = await boot(settings, clock)
        await bot.driver.say("olga", f"schedule {SEED} 2026-12-10")
        await bot.driver.say("olga", f"schedule {SEED} 2026-12-17")
        await bot.driver.say("olga", "unschedule 2")
        await bot.stop()

    asyncio.run(seed())

    def export() -> Calendar:
        out = subprocess.run([sys.executable, "-m", "circlebot", "export", "ics", "--config", str(config)],
                             capture_output=True, timeout=60, check=True)
        return Calendar.from_ical(out.stdout)

    first, second = export(), export()
    events = [(str(e["uid"]), str(e["status"]), e.decoded("dtstart")) for e in first.walk("VEVENT")]
    assert events == [("meeting-1-study@circlebot", "CONFIRMED", datetime(2026, 12, 10, 19, tzinfo=UTC)),
                      ("meeting-2-study@circlebot", "CANCELLED", datetime(2026, 12, 17, 19, tzinfo=UTC))]
    assert [str(e["uid"]) for e in second.walk("VEVENT")] == [u for u, _, _ in events]
    assert "A revolutionary party was missing" in str(first.walk("VEVENT")[0]["summary"])



@pytest.mark.timeout(60)
def test_separate_processes_and_a_kill_between_claim_and_send(tmp_path: Path) -> None:
    """Each run is a new OS process on the same database; one is killed (SIGKILL) after claiming a post,
    before the platform got it: the next process sends it."""
    import asyncio
    import json

    import pexpect

    settings = no_syllabus(tmp_path)
    start = datetime(2026, 12, 10, 19, tzinfo=UTC)

    async def schedule() -> None:
        db = await Database.open(settings.database)
        await Store(db).add_meeting("study", start, start + timedelta(minutes=90), SEED, None, START)
        await db.close()

    asyncio.run(schedule())
    script = str(Path(__file__).with_name("timeline_process.py"))

    def run(at: datetime, *extra: str) -> list[str]:
        out = subprocess.run([sys.executable, script, str(settings.database), at.isoformat(), *extra],
                             capture_output=True, text=True, timeout=30, check=True)
        return [json.loads(line)["text"] for line in out.stdout.splitlines()]

    assert run(start - timedelta(days=8)) == []
    (assignment,) = run(start - timedelta(days=7) + timedelta(seconds=1))
    assert "Reading for meeting #1" in assignment
    assert run(start - timedelta(days=7) + timedelta(seconds=2)) == []  # a new process does not send it again

    hung = pexpect.spawn(sys.executable, [script, str(settings.database),
                                          (start - timedelta(hours=23)).isoformat(), "--hang-on", "Reminder"],
                         encoding="utf-8", timeout=30)
    hung.expect("SENDING")
    hung.kill(9)  # the process dies between claiming the reminder and sending it
    hung.close(force=True)

    # the interrupted reminder is sent by the next process (with the same idempotency key), once
    (reminder,) = run(start - timedelta(hours=23) + timedelta(minutes=10))
    assert "Reminder: meeting #1" in reminder
    assert run(start - timedelta(hours=22)) == []
    (questions,) = run(start + timedelta(minutes=1))
    assert "Meeting #1 has started" in questions

    async def states() -> dict[str, str]:
        db = await Database.open(settings.database)
        try:
            return await Store(db).post_states(1)
        finally:
            await db.close()

    assert asyncio.run(states()) == {"assignment": "sent", "reminder": "sent", "start": "sent"}


class TakesDirectThenHangs(RecordingAdapter):
    """A platform that takes a direct message to `hang_for`, then the process is stopped before it hears back."""

    hang_for: str = ""
    hung: asyncio.Event | None = None

    async def send_direct(self, user: UserRef, post: Post, *, key: str | None = None) -> MessageRef:
        ref = await super().send_direct(user, post, key=key)
        if self.hang_for and user.id == self.hang_for:
            if self.hung is not None:
                self.hung.set()
            await asyncio.Event().wait()
        return ref


async def test_direct_reminders_claimed_when_the_bot_stops_are_sent_after_it_starts_again_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The bot stops (SIGTERM) while its direct reminders go out: alice's was taken by the platform but the bot
    never heard back, bob's and carol's were claimed and waiting their turn, and erin's fell due while it was
    down. After the next start each of them goes out once: alice's resent with its key is recognised."""
    settings = make_settings(tmp_path)
    platform = TakesDirectThenHangs(settings.zone_of(settings.circles[0]), dedup_window=timedelta(hours=2))
    first = await boot_on(settings, clock, platform)
    for name in ("alice", "bob", "carol", "erin"):
        await first.driver.say(name, "remind me 23h" if name == "erin" else "remind me dm on")
        await first.driver.say(name, "rsvp yes")
    platform.hang_for, platform.hung = "alice", asyncio.Event()
    clock.set(datetime(2026, 11, 25, 19, tzinfo=UTC))  # 24 h before meeting #1: alice's, bob's and carol's
    ticking = asyncio.create_task(first.timeline.tick())
    await asyncio.wait_for(platform.hung.wait(), 5)
    await first.timeline.close()  # SIGTERM: the app closes the timeline, then the store
    await asyncio.wait_for(ticking, 5)
    await first.stop()
    assert [u.id for u, _ in platform.directs] == ["alice"]

    platform.hang_for = ""
    clock.set(datetime(2026, 11, 25, 20, 30, tzinfo=UTC))  # erin's (23 h before) fell due while it was down
    second = await boot_on(settings, clock, platform)
    try:
        await second.timeline.direct_reminders_sent()
        assert sorted(u.id for u, _ in platform.directs) == ["alice", "bob", "carol", "erin"]
        alice_keys = [k for where, k in platform.attempts if where.id == "dm:alice"]
        assert len(alice_keys) == 2 and alice_keys[0] == alice_keys[1], alice_keys  # resent with its key
        clock.advance(timedelta(minutes=5))
        await second.timeline.tick()
        assert len(platform.directs) == 4  # once each
    finally:
        await second.stop()


async def test_a_direct_reminder_interrupted_too_long_ago_is_not_resent(tmp_path: Path, clock: FakeClock,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A direct reminder being sent when the bot stopped, restarted after the platform's memory of its key: not
    sent again (it may have gone), and a log line says so; the member's next reminders come as ever."""
    settings = make_settings(tmp_path)
    platform = TakesDirectThenHangs(settings.zone_of(settings.circles[0]), dedup_window=timedelta(minutes=2))
    first = await boot_on(settings, clock, platform)
    await first.driver.say("alice", "remind me dm on")
    await first.driver.say("alice", "rsvp yes")
    platform.hang_for, platform.hung = "alice", asyncio.Event()
    clock.set(datetime(2026, 11, 25, 19, tzinfo=UTC))
    ticking = asyncio.create_task(first.timeline.tick())
    await asyncio.wait_for(platform.hung.wait(), 5)
    await first.timeline.close()
    await asyncio.wait_for(ticking, 5)
    await first.stop()
    platform.hang_for = ""
    platform.keys.clear()  # the platform no longer recognises the key
    clock.advance(timedelta(minutes=10))
    with caplog.at_level(logging.WARNING, logger="circlebot"):
        second = await boot_on(settings, clock, platform)
        await second.timeline.direct_reminders_sent()
    try:
        assert len(platform.directs) == 1  # the first process's, not a second
        assert any("alice" in r.getMessage() and "interrupted" in r.getMessage() for r in caplog.records), \
            [r.getMessage() for r in caplog.records]
    finally:
        await second.stop()

"""Posts decided as they are claimed (the RSVP deadline's outcome, the nudge) are decided once per post, across
every process on one database: two bot processes, one running the console and one Matrix, on one SQLite file
or one PostgreSQL schema. The meeting is postponed once, and each platform gets the same post; a process that
takes over after a crash sends the post that was decided, not a new decision."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import turnout_scenarios
from circlebot.app import App
from circlebot.core.domain import (
    ChannelRef,
    Invocation,
    Post,
    UserRef,
)
from circlebot.core.timeline import Timeline
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter
from pg_harness import BOTH_DATABASES

ROOM = "!study:example.org"
DEADLINE_DUE = turnout_scenarios.DEADLINE_DUE  # 48 h before meeting #1 (Thu 26 Nov 2026, 19:00 London)


@dataclass
class Process:
    """One bot process: its own database connection, app, timeline and one platform."""

    app: App
    adapter: RecordingAdapter
    timeline: Timeline
    store: Store

    def said(self, marker: str) -> list[Post]:
        """The posts this process sent to its circle's channel whose text contains `marker`."""
        return [p for _, p, _ in self.adapter.sent if marker in self.adapter.render(p)]

    async def say(self, name: str, text: str) -> str:
        """A member types a command in the circle's channel on this process's platform; the answer."""
        platform = self.adapter.platform
        user = UserRef(platform, name if platform == "console" else f"@{name}:example.org", name)
        where = ChannelRef(platform, "study" if platform == "console" else ROOM)
        before = len(self.adapter.replies)
        await self.app.dispatch(Invocation(user, where, self.app.clock.now(), text=text))
        (reply,) = self.adapter.replies[before:]
        return self.adapter.render(reply[1])


Start = Callable[..., Awaitable[Process]]


@pytest.fixture
async def start(tmp_path: Path, clock: FakeClock, database: str) -> AsyncIterator[Start]:
    """Start a bot process on the test's database running one platform ("console" or "matrix"); the circle
    is on both. Processes started are stopped at the end (a process "killed" is just left alone)."""
    opened: list[Store] = []

    async def begin(platform: str, turnout: dict[str, Any], keys: dict[str, Any] | None = None) -> Process:
        settings = make_settings(tmp_path, database=database, circles=[circle_config(
            where={"console": True, "matrix_rooms": [ROOM]}, turnout=turnout,
            organisers={"console": ["olga"], "matrix_users": ["@mona:example.org"]})])
        store = Store(await Database.open(settings.database))
        store.batcher.start()
        opened.append(store)
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]), platform=platform,
                                   prefix="" if platform == "console" else "!", keys={} if keys is None else keys)
        app.add_adapter(adapter)
        timeline = await turnout_scenarios.start_timeline(CoreDriver(app, adapter, clock, "study"))
        return Process(app, adapter, timeline, store)

    yield begin
    for store in opened:
        await store.batcher.stop()
        await store.db.close()


POSTPONE = {"deadline": "48h", "quorum": 2, "on_low_turnout": "postpone"}


async def assert_postponed_once_with_one_text(console: Process, matrix: Process) -> None:
    meeting = await console.store.meeting(1)
    assert meeting is not None
    assert meeting.starts_at == datetime(2026, 12, 3, 19, tzinfo=UTC) and meeting.revision == 1, meeting
    (on_console,) = console.said("Meeting #1 is postponed")
    (on_matrix,) = matrix.said("Meeting #1 is postponed")
    assert on_console.content == on_matrix.content, (str(on_console.content), str(on_matrix.content))
    shown = matrix.adapter.render(on_matrix)
    assert "from Thu 26 Nov 2026, 19:00 GMT (Europe/London) to Thu 3 Dec 2026, 19:00 GMT" in shown, shown
    assert {u.id for u in on_matrix.mentions} == {"alice"} and on_matrix.notify  # who said yes, as decided


@BOTH_DATABASES
async def test_a_deadline_claimed_by_two_processes_postpones_once_and_says_the_same_on_both(
        start: Start, clock: FakeClock) -> None:
    """The console's process gets to the deadline first and postpones the meeting; the Matrix process, later,
    sends the same post to its room (though the meeting has moved since) and does not postpone it again."""
    console, matrix = await start("console", POSTPONE), await start("matrix", POSTPONE)
    assert "yes for meeting #1" in await console.say("alice", "rsvp yes")
    await matrix.timeline.rebuild(matrix.app.settings.circles[0])  # as after any change in the circle
    assert "#1 Thu 26 Nov 2026, 19:00 GMT" in await matrix.say("erin", "upcoming")
    clock.set(DEADLINE_DUE)
    await console.timeline.tick()
    assert len(console.said("Meeting #1 is postponed")) == 1
    await matrix.timeline.tick()
    await assert_postponed_once_with_one_text(console, matrix)
    clock.advance(timedelta(minutes=5))
    await asyncio.gather(console.timeline.tick(), matrix.timeline.tick())
    await assert_postponed_once_with_one_text(console, matrix)  # once
    listed = await matrix.say("erin", "upcoming")  # the Matrix process shows the new time the other one set
    assert "#1 Thu 3 Dec 2026, 19:00 GMT" in listed, listed


@BOTH_DATABASES
async def test_a_deadline_both_processes_reach_at_once_is_decided_once(start: Start, clock: FakeClock) -> None:
    console, matrix = await start("console", POSTPONE), await start("matrix", POSTPONE)
    await matrix.say("alice", "rsvp yes")
    clock.set(DEADLINE_DUE)
    await asyncio.gather(console.timeline.tick(), matrix.timeline.tick())
    await asyncio.gather(console.timeline.tick(), matrix.timeline.tick())
    meeting = await matrix.store.meeting(1)
    assert meeting is not None
    assert meeting.starts_at == datetime(2026, 12, 3, 19, tzinfo=UTC) and meeting.revision == 1, meeting
    (on_console,) = console.said("Meeting #1 is postponed")
    (on_matrix,) = matrix.said("Meeting #1 is postponed")
    assert on_console.content == on_matrix.content


@BOTH_DATABASES
async def test_a_deadline_that_cancelled_the_meeting_is_told_on_the_other_platform_too(
        start: Start, clock: FakeClock) -> None:
    cancel = {"deadline": "48h", "quorum": 2, "on_low_turnout": "cancel"}
    console, matrix = await start("console", cancel), await start("matrix", cancel)
    await matrix.say("alice", "rsvp yes")
    clock.set(DEADLINE_DUE)
    await console.timeline.tick()
    await matrix.timeline.tick()
    meeting = await matrix.store.meeting(1)
    assert meeting is not None and meeting.status == "cancelled" and meeting.revision == 1, meeting
    (on_console,) = console.said("Meeting #1 is cancelled")
    (on_matrix,) = matrix.said("Meeting #1 is cancelled")
    assert on_console.content == on_matrix.content
    assert {u.id for u in on_matrix.mentions} == {"@alice:example.org"} and on_matrix.notify
    assert "#1 " not in await matrix.say("erin", "upcoming")


@BOTH_DATABASES
async def test_a_low_turnout_is_told_to_each_organiser_once_by_the_process_running_their_platform(
        start: Start, clock: FakeClock) -> None:
    """`notify`: the console's process decides and tells olga (a console organiser) privately; the Matrix
    process sends the same post and tells mona (a Matrix organiser), whom the other could not reach; neither
    post mentions an organiser."""
    notify = {"deadline": "48h", "quorum": 2}
    console, matrix = await start("console", notify), await start("matrix", notify)
    await console.say("alice", "rsvp yes")
    clock.set(DEADLINE_DUE)
    await console.timeline.tick()
    await matrix.timeline.tick()
    await asyncio.gather(console.timeline.tick(), matrix.timeline.tick())
    assert [u.id for u, _ in console.adapter.directs] == ["olga"]
    assert [u.id for u, _ in matrix.adapter.directs] == ["@mona:example.org"]
    (told,) = [p for _, p in matrix.adapter.directs]
    assert "Low turnout for meeting #1" in told.content and "only 1 said yes" in told.content, str(told.content)
    (on_console,) = console.said("Low turnout for meeting #1")
    (on_matrix,) = matrix.said("Low turnout for meeting #1")
    assert on_console.content == on_matrix.content
    assert on_console.mentions == on_matrix.mentions == ()
    meeting = await matrix.store.meeting(1)
    assert meeting is not None and meeting.revision == 0  # it stays


@BOTH_DATABASES
async def test_a_nudge_claimed_by_two_processes_lists_the_same_members_on_both(
        start: Start, clock: FakeClock) -> None:
    """The nudge is decided when the first process claims it: bob answering in between does not change what
    the other platform is told (one post, the same everywhere), and nothing is posted twice."""
    nudge = {"nudge": "48h"}
    console, matrix = await start("console", nudge), await start("matrix", nudge)
    await console.say("bob", "rsvp maybe")
    await console.say("carol", "rsvp maybe")
    clock.set(DEADLINE_DUE)
    await console.timeline.tick()
    (first,) = console.said("Are you coming?")
    assert "Still a maybe: bob, carol." in first.content, str(first.content)
    await console.say("bob", "rsvp yes")  # before the Matrix process gets to its room
    await matrix.timeline.tick()
    (second,) = matrix.said("Are you coming?")
    assert second.content == first.content and second.mentions == first.mentions, str(second.content)
    clock.advance(timedelta(minutes=5))
    await asyncio.gather(console.timeline.tick(), matrix.timeline.tick())
    assert len(console.said("Are you coming?")) == 1 and len(matrix.said("Are you coming?")) == 1


@BOTH_DATABASES
async def test_a_deadline_decided_before_a_crash_is_sent_as_decided_by_the_process_that_takes_over(
        start: Start, clock: FakeClock) -> None:
    """The console's process postpones the meeting but cannot post (the platform is down) and is killed; the
    process started after it sends the postponement it decided, and does not decide (or postpone) again."""
    first = await start("console", POSTPONE)
    await first.say("alice", "rsvp yes")
    clock.set(DEADLINE_DUE)
    first.adapter.down = True
    await first.timeline.tick()
    assert first.said("postponed") == []
    # killed: it stops renewing its hold on what it was sending, which runs out
    async with first.store.db.transaction() as conn:
        await conn.execute("UPDATE post_deliveries SET lease_until = ?", ("2000-01-01T00:00:00.000000+00:00",))
    clock.advance(timedelta(minutes=2))
    again = await start("console", POSTPONE, keys=first.adapter.keys)
    await again.timeline.tick()
    matrix = await start("matrix", POSTPONE)
    await matrix.timeline.tick()
    await assert_postponed_once_with_one_text(again, matrix)

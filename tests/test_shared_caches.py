"""Two bot processes on one database (one SQLite file, or one PostgreSQL schema), one running the console and
one Matrix: what one changes in meetings and polls, the other's commands show at once (each command checks the
database's change counts before it answers from its caches), and its no-I/O paths (the vote path, the
scheduler's jobs) within the watch interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

import turnout_scenarios
from circlebot.app import App
from circlebot.core.domain import ChannelRef, Invocation, UserRef, VoteCast
from circlebot.core.timeline import Timeline
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from circlebot.store.queries import POLLS, ts
from conftest import circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter, number_after
from pg_harness import BOTH_DATABASES

ROOM = "!study:example.org"
WATCH_EVERY = 0.05  # seconds between a test process's looks at the change counts (the bot's default: 0.25)
NOTICED_WITHIN = 10.0  # a generous bound for a loaded machine; a look takes milliseconds


@dataclass
class Process:
    """One bot process: its own database connection, app, timeline, one platform, and its watch on what the
    other processes change."""

    app: App
    adapter: RecordingAdapter
    timeline: Timeline
    store: Store
    noticed: asyncio.Queue[tuple[frozenset[str], frozenset[str] | None]]  # what the watch told: kinds, circles
    web: TestClient[Any, Any] | None = None  # a test client on its web server, if it runs one

    async def say(self, name: str, text: str) -> str:
        """A member types a command in the circle's channel on this process's platform; the answer."""
        before = len(self.adapter.replies)
        await self.app.dispatch(Invocation(self.user(name), self.where, self.app.clock.now(), text=text))
        (reply,) = self.adapter.replies[before:]
        return self.adapter.render(reply[1])

    def user(self, name: str) -> UserRef:
        platform = self.adapter.platform
        return UserRef(platform, name if platform == "console" else f"@{name}:example.org", name)

    @property
    def where(self) -> ChannelRef:
        platform = self.adapter.platform
        return ChannelRef(platform, "study" if platform == "console" else ROOM)

    async def change_noticed(self, kind: str) -> frozenset[str] | None:
        """Wait (bounded) until this process's watch has seen another process change `kind` and acted on it;
        the circles it said changed (meetings: None, every circle)."""
        async def seen() -> frozenset[str] | None:
            while True:
                kinds, circles = await self.noticed.get()
                if kind in kinds:
                    return circles
        return await asyncio.wait_for(seen(), NOTICED_WITHIN)


Start = Callable[..., Awaitable[Process]]


@pytest.fixture
async def start(tmp_path: Path, clock: FakeClock, database: str) -> AsyncIterator[Start]:
    """Start a bot process on the test's database running one platform ("console" or "matrix"); the circle is
    on both. Each watches the database as `App.run` does (more often, so the test is quick), unless told not to
    (`watch=False`: its caches stay as they are until one of its commands reads the change counts)."""
    opened: list[Store] = []
    timelines: list[Timeline] = []
    watching: list[asyncio.Task[None]] = []
    clients: list[TestClient[Any, Any]] = []

    async def begin(platform: str, *, web: bool = False, watch: bool = True) -> Process:
        settings = make_settings(tmp_path, database=database, circles=[circle_config(
            where={"console": True, "matrix_rooms": [ROOM]},
            organisers={"console": ["olga"], "matrix_users": ["@mona:example.org"]})],
            web={"port": 0, "enabled": web})
        store = Store(await Database.open(settings.database))
        store.batcher.start()
        opened.append(store)
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]), platform=platform,
                                   prefix="" if platform == "console" else "!")
        app.add_adapter(adapter)
        timeline = await turnout_scenarios.start_timeline(CoreDriver(app, adapter, clock, "study"))
        timelines.append(timeline)
        noticed: asyncio.Queue[tuple[frozenset[str], frozenset[str] | None]] = asyncio.Queue()

        async def changed_elsewhere(kinds: frozenset[str], circles: frozenset[str] | None) -> None:
            await app.changed_elsewhere(kinds, circles)
            noticed.put_nowait((kinds, circles))

        if watch:  # without it, only a command's own read of the change counts drops what another changed
            watching.append(asyncio.create_task(store.watch(changed_elsewhere, every=WATCH_EVERY)))
        client = None
        if web:
            assert app.web is not None
            await app.web.prepare()
            client = TestClient(TestServer(app.web.app, host="127.0.0.1"))
            await client.start_server()
            clients.append(client)
        return Process(app, adapter, timeline, store, noticed, client)

    yield begin
    for client in clients:
        await client.close()
    for task in watching:
        task.cancel()
    await asyncio.gather(*watching, return_exceptions=True)
    for timeline in timelines:
        await timeline.close()
    for store in opened:
        await store.batcher.stop()
        await store.db.close()


@BOTH_DATABASES
async def test_a_meeting_moved_by_one_process_shows_at_its_new_time_in_the_other(
        start: Start, clock: FakeClock) -> None:
    """The Matrix process has shown (and cached) the upcoming meetings; the console's moves meeting #1 by
    command. The Matrix process's `upcoming` shows the new time at once, and its scheduler's reminder for the
    meeting is reloaded for the new time once its watch has seen the change."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    console, matrix = await start("console"), await start("matrix")
    clock.set(datetime(2026, 11, 25, 9, tzinfo=UTC))  # the reminder of meeting #1 is within the jobs' horizon
    scheduler = AsyncIOScheduler(timezone=UTC)  # not started: the test looks at the jobs it holds
    matrix.timeline._scheduler = scheduler
    await matrix.timeline.rebuild()
    assert "#1 Thu 26 Nov 2026, 19:00 GMT" in await matrix.say("erin", "upcoming")
    (reminder,) = [j for j in scheduler.get_jobs() if "/1/reminder/" in j.id]
    old_due = reminder.trigger.run_date

    moved = await console.say("olga", "move 1 2026-11-26 20:00")
    assert "moved from Thu 26 Nov 2026, 19:00 GMT" in moved, moved

    shown = await matrix.say("erin", "upcoming")  # no wait: the command's answer matches the database
    assert "#1 Thu 26 Nov 2026, 20:00 GMT" in shown and "19:00" not in shown, shown
    assert await matrix.change_noticed("meetings") == {"study"}  # only its circle is planned again
    (reminder,) = [j for j in scheduler.get_jobs() if "/1/reminder/" in j.id]
    assert reminder.trigger.run_date - old_due == timedelta(hours=1), (old_due, reminder.trigger.run_date)


@BOTH_DATABASES
async def test_a_poll_closed_by_one_process_takes_no_more_votes_in_the_other(start: Start) -> None:
    """A poll opened on the console; Matrix members vote in it (so the Matrix process has it cached as open,
    and its voters, as the vote path needs). The console's process closes it: the Matrix process's `poll
    results` says closed at once, and a vote arriving there after its watch has seen the close does not count,
    not even by the vote path that does no I/O."""
    console, matrix = await start("console"), await start("matrix")
    poll = number_after("poll", await console.say("olga", 'poll "Where?" "Here" "There"'))
    assert "is counted" in await matrix.say("erin", f"vote {poll} 1")
    bob = matrix.user("bob")
    assert await matrix.app.dispatch(VoteCast(bob, (0,), matrix.app.clock.now(), poll_id=poll)) is None
    assert matrix.store.cached_poll(poll, None) is not None  # the vote path would take the next vote as it is
    assert "(open, 2 voters)" in await matrix.say("erin", f"poll results {poll}")

    closed = await console.say("olga", f"poll close {poll}")
    assert "closed" in closed, closed

    shown = await matrix.say("erin", f"poll results {poll}")  # no wait
    assert "(closed, 2 voters)" in shown, shown
    await matrix.change_noticed("polls")
    assert await matrix.app.dispatch(VoteCast(bob, (1,), matrix.app.clock.now(), poll_id=poll)) is None
    late = await matrix.say("erin", f"vote {poll} 2")
    assert "is closed" in late, late
    for process in (matrix, console):
        shown = await process.say("erin", f"poll results {poll}")
        assert "(closed, 2 voters)" in shown and "1. Here: 2" in shown and "2. There: 0" in shown, shown


@BOTH_DATABASES
async def test_a_native_vote_reaching_a_process_just_after_another_closed_the_poll_is_not_counted(
        start: Start, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    """The console's process closes a poll and announces its results. A native vote reaches the Matrix process
    at once, before that process has looked at the change counts (its cache still holds the poll as open; the
    vote was cast a moment before the close, so no check by time refuses it either): the database refuses the
    ballot, the vote is dropped with a line in the log, and both processes show exactly what was announced."""
    console, matrix = await start("console"), await start("matrix", watch=False)
    poll = number_after("poll", await console.say("olga", 'poll "Where?" "Here" "There"'))
    assert "is counted" in await matrix.say("erin", f"vote {poll} 1")
    bob = matrix.user("bob")
    assert await matrix.app.dispatch(VoteCast(bob, (0,), clock.now(), poll_id=poll)) is None
    cast = clock.now()  # bob changes his vote to "There" just before the close; it reaches his process after it
    clock.advance(timedelta(seconds=1))

    announced = await console.say("olga", f"poll close {poll}")
    assert "(closed, 2 voters)" in announced and "1. Here: 2" in announced, announced

    cached = matrix.store.cached_poll(poll, None)
    assert cached is not None and cached.closed_at is None  # the vote path takes the vote as it is, no I/O
    with caplog.at_level(logging.INFO, logger="circlebot"):
        assert await matrix.app.dispatch(VoteCast(bob, (1,), cast, poll_id=poll)) is None
    for process in (matrix, console):
        assert await process.say("erin", f"poll results {poll}") == announced
    assert f"in poll #{poll}: the poll is closed (it closed before the vote reached" in caplog.text, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@BOTH_DATABASES
async def test_a_vote_command_written_as_another_process_closes_the_poll_is_told_the_poll_is_closed(
        start: Start) -> None:
    """A `vote` command in the Matrix process reads the change counts (the poll is open) while the console's
    process is committing the poll's close; its ballot reaches the database after that commit. The database
    refuses it, and the member gets the answer a vote in a closed poll gets: nothing changes after the close."""
    console, matrix = await start("console"), await start("matrix", watch=False)
    poll = number_after("poll", await console.say("olga", 'poll "Where?" "Here" "There"'))
    assert "is counted" in await matrix.say("erin", f"vote {poll} 1")

    async with console.store.changing(POLLS) as conn:  # what the console's `poll close` commits
        await conn.execute("UPDATE polls SET closed_at = ? WHERE id = ?", (ts(console.app.clock.now()), poll))
        voting = asyncio.create_task(matrix.say("erin", f"vote {poll} 2"))

        async def written() -> None:  # the vote passed its checks: its ballot is on its way to the database
            while matrix.store.batcher._writing is None and not voting.done():  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(0)

        await asyncio.wait_for(written(), NOTICED_WITHIN)
    answer = await asyncio.wait_for(voting, NOTICED_WITHIN)
    assert f"Poll #{poll} is closed; !poll results {poll} shows its results." in answer, answer
    assert await matrix.say("erin", f"vote {poll} 2") == answer  # as any vote in a closed poll is answered
    for process in (matrix, console):
        shown = await process.say("erin", f"poll results {poll}")
        assert "(closed, 1 voter)" in shown and "1. Here: 1" in shown and "2. There: 0" in shown, shown


@BOTH_DATABASES
async def test_links_rotated_by_one_process_are_the_links_the_other_shows_and_serves(start: Start) -> None:
    """Both processes run the web server. The console's organiser rotates the circle's links: the Matrix
    process's `links` gives the new page address at once, and its web server stops serving the old one (which
    it had looked up and cached) once its watch has seen the rotation, and serves the new one."""
    console, matrix = await start("console", web=True), await start("matrix", web=True)
    assert matrix.web is not None

    def page(answer: str) -> str:
        url = next(w for w in answer.split() if "/c/" in w)  # the page's, before its calendar's
        return urlsplit(url).path

    old = page(await matrix.say("erin", "links"))
    assert (await matrix.web.get(old)).status == 200
    new = page(await console.say("olga", "links rotate"))
    assert new != old

    assert page(await matrix.say("erin", "links")) == new  # no wait
    await matrix.change_noticed("links")
    assert (await matrix.web.get(old)).status == 404
    assert (await matrix.web.get(new)).status == 200

"""The record's pieces one at a time (issue 15): its migration keeps an existing database, the text forms a
scenario does not reach through every platform."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from circlebot.app import App
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from circlebot.store.migrations import MIGRATIONS, sqlite_statements
from conftest import circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter

RECORD = next(i for i, (what, _) in enumerate(MIGRATIONS) if what.startswith("the circle's record"))


async def test_the_record_migration_keeps_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as raw:  # a database at the version before the record's tables, with a meeting
        for version, (_, statements) in enumerate(MIGRATIONS[:RECORD], 1):
            for stmt in sqlite_statements(statements):
                raw.execute(stmt)
            raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            raw.execute("DELETE FROM schema_version")
            raw.execute("INSERT INTO schema_version VALUES (?)", (version,))
        raw.execute("INSERT INTO members (id, platform, user_id, name) VALUES (1, 'console', 'alice', 'alice')")
        raw.execute("INSERT INTO meetings (id, circle, starts_at, ends_at, reading, created_at) "
                    "VALUES (7, 'study', 'a', 'b', 'r', 'x')")
        raw.execute("INSERT INTO rsvps VALUES (7, 1, 'yes', 'x')")
    db = await Database.open(path)
    try:
        assert await db.version() == len(MIGRATIONS)
        assert [tuple(r) for r in await db.fetchall("SELECT meeting_id, member_id, answer FROM rsvps")] == [
            (7, 1, "yes")]
        assert await db.fetchall("SELECT * FROM reading_progress") == []
    finally:
        await db.close()


async def test_read_takes_a_meeting_number_in_place_of_the_answer(core: CoreDriver) -> None:
    await core.say("olga", "schedule bolivia-2003-first-balance-sheet")
    await core.say("olga", "schedule bolivia-2003-first-balance-sheet next")
    assert "you read part of it" in await core.say("alice", "read part 2")
    assert "meeting #2" in (shown := await core.say("alice", "read 2")) and "you read part of it" in shown, shown
    assert "you have not said" in await core.say("alice", "read #1")
    assert "there is no meeting #9" in (await core.say("alice", "read 9")).text.lower()
    both = await core.say("alice", "read 1 2")
    assert "before the meeting's number" in both and "Usage:" in both, both


async def test_a_yes_still_on_the_waitlist_is_no_no_show(tmp_path: Path, clock: FakeClock) -> None:
    """Issue 14's waitlist: a member who said yes but never got a place did not fail to come."""
    settings = make_settings(tmp_path, circles=[circle_config(syllabus=[], turnout={"capacity": 1})])
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
        app.add_adapter(adapter)
        d = CoreDriver(app, adapter, clock, "study")
        await d.say("olga", "schedule bolivia-2003-first-balance-sheet")
        await d.say("alice", "rsvp yes")
        waiting = await d.say("bob", "rsvp yes")
        assert "waitlist" in waiting.text.lower(), waiting
        clock.advance(timedelta(days=3))  # meeting #1 is over; nobody came
        assert "1 no-show" in await d.say("alice", "attendance me")
        bob = await d.say("bob", "attendance me")
        assert "0 no-show" in bob and "absent (on the waitlist)" in bob, bob
    finally:
        await store.batcher.stop()
        await store.db.close()

"""`circlebot db copy`: a circle's SQLite store moves to PostgreSQL whole, its counts checked; a non-empty
target is refused; the bot on the copy shows what it showed before and goes on numbering after the copied rows."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import scenarios
from circlebot.app import App
from circlebot.readings import load_collection
from circlebot.store import Database, PollClosed, Store
from conftest import START, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter
from pg_harness import PostgresServer


async def _cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "circlebot", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _bot(tmp_path: Path, database: str) -> tuple[CoreDriver, Store]:
    settings = make_settings(tmp_path, database=database)
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    clock = FakeClock(START)
    app = App(settings, store, load_collection(settings.readings), clock)
    adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
    app.add_adapter(adapter)
    return CoreDriver(app, adapter, clock, settings.circles[0].slug), store


async def _close(store: Store) -> None:
    await store.batcher.stop()
    await store.db.close()


async def test_a_sqlite_store_is_copied_to_postgresql_whole_and_the_bot_goes_on_there(
        tmp_path: Path, postgres: PostgresServer) -> None:
    sqlite = str(tmp_path / "circlebot.sqlite3")
    before, store = await _bot(tmp_path, sqlite)
    try:
        await scenarios.meeting_lifecycle(before)
        await scenarios.poll_lifecycle(before)
        attendance = (await before.say("olga", "attendance 1")).text
        results = (await before.say("dan", "poll results 1")).text
        counts = {t: (await store.db.fetchone(f"SELECT count(*) FROM {t}") or [0])[0]
                  for t in await store.db.tables()}
    finally:
        await _close(store)
    assert "Checked in (1): alice" in attendance and "2. Something on Chile: 2" in results
    assert counts["members"] >= 5 and counts["votes"] >= 3 and counts["rsvps"] == 3

    target = await postgres.fresh_schema()
    code, out, err = await _cli("db", "copy", "--from", f"sqlite:{sqlite}", "--to", target)
    assert code == 0, err
    assert f"members: {counts['members']} rows" in out and f"votes: {counts['votes']} rows" in out, out
    assert "every table's row count matches" in out

    after, store = await _bot(tmp_path / "pg", target)
    after.clock.set(before.clock.now())
    try:
        copied = await store.db.tables()
        for table, n in counts.items():
            assert table in copied
            if table != "schema_version":
                assert (await store.db.fetchone(f"SELECT count(*) FROM {table}") or [0])[0] == n, table
        assert (await after.say("olga", "attendance 1")).text == attendance
        assert (await after.say("dan", "poll results 1")).text == results
        # new rows are numbered after the copied ones: a new member, a new poll
        assert "Poll #2" in await after.say(after.organiser, 'poll "Next?" "A" "B"')
        assert "counted: A" in await after.say("newcomer", "vote 2 1")
        await _refuses_ballots_in_closed_poll(store, 1)
    finally:
        await _close(store)

    code, out, err = await _cli("db", "copy", "--from", f"sqlite:{sqlite}", "--to", target)
    assert code == 2
    assert "is not empty" in err and "members (" in err, err


async def _refuses_ballots_in_closed_poll(store: Store, poll: int) -> None:
    """The copy's database refuses a new ballot in a closed poll, as the original does (its triggers are on)."""
    member = (await store.ballots(poll))[0][0]
    with pytest.raises(PollClosed):
        await store.record_vote(poll, member, (0,), START)


async def test_a_sqlite_store_copied_to_a_new_file_keeps_its_closed_polls_ballots_and_its_triggers(
        tmp_path: Path) -> None:
    # the ballots of a closed poll are copied as they are, though the database refuses new ones in it
    source, copy = tmp_path / "circlebot.sqlite3", tmp_path / "copy" / "circlebot.sqlite3"
    before, store = await _bot(tmp_path, str(source))
    try:
        await scenarios.poll_lifecycle(before)
        results = (await before.say("dan", "poll results 1")).text
        triggers = await store.db.fetchall("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
    finally:
        await _close(store)
    assert "(closed, " in results and [t[0] for t in triggers] == ["post_delivery_done", "votes_only_in_open_polls"]

    code, _, err = await _cli("db", "copy", "--from", f"sqlite:{source}", "--to", f"sqlite:{copy}")
    assert code == 0, err
    after, store = await _bot(tmp_path / "copy", str(copy))
    try:
        assert (await after.say("dan", "poll results 1")).text == results
        copied = await store.db.fetchall("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
        assert [tuple(t) for t in copied] == [tuple(t) for t in triggers]
        await _refuses_ballots_in_closed_poll(store, 1)
    finally:
        await _close(store)


async def test_copy_names_a_missing_source_and_an_unreachable_target(tmp_path: Path) -> None:
    code, _, err = await _cli("db", "copy", "--from", f"sqlite:{tmp_path / 'none.sqlite3'}", "--to",
                              "postgresql://bot@127.0.0.1:1/x")
    assert code == 2 and "there is no database file" in err, err
    (tmp_path / "x.sqlite3").touch()
    code, _, err = await _cli("db", "copy", "--from", f"sqlite:{tmp_path / 'x.sqlite3'}", "--to",
                              "postgresql://bot@127.0.0.1:1/x")
    assert code == 2 and "cannot open the database postgresql://bot@127.0.0.1:1/x" in err, err

"""The store, on SQLite and on PostgreSQL: migrations, refusing a newer database, transactions, batched votes
acknowledged on commit, a bad row isolated; SQLite's pragmas and its migration of old files."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from circlebot.core.domain import ChannelRef, MessageRef, RsvpAnswer, UserRef
from circlebot.store import Database, Store, StoreError, WriteRejected
from circlebot.store.migrations import MIGRATIONS, sqlite_statements
from pg_harness import BOTH_DATABASES, in_transaction, other_connection

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
INTEGRITY = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


async def test_pragmas_and_version(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "sub" / "x.sqlite3")
    try:
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
        assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000  # type: ignore[index]
        assert await db.version() == len(MIGRATIONS)
    finally:
        await db.close()
    db = await Database.open(tmp_path / "sub" / "x.sqlite3")  # opening again migrates nothing
    await db.close()


@BOTH_DATABASES
async def test_migrated_once_and_opening_again_migrates_nothing(database: str) -> None:
    db = await Database.open(database)
    try:
        assert await db.version() == len(MIGRATIONS)
        assert "post_deliveries" in await db.tables()
    finally:
        await db.close()
    db = await Database.open(database)
    try:
        assert await db.version() == len(MIGRATIONS)
    finally:
        await db.close()


@BOTH_DATABASES
async def test_a_newer_database_is_refused(database: str) -> None:
    await (await Database.open(database)).close()
    await other_connection(database, "UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match=r"schema version 99.*Upgrade circlebot"):
        await Database.open(database)


@BOTH_DATABASES
async def test_a_failed_transaction_leaves_nothing(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    try:
        member = await store.ensure_member(UserRef("console", "alice", "Alice"))
        with pytest.raises(INTEGRITY):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO members (platform, user_id) VALUES ('console', 'bob')")
                await conn.execute("INSERT INTO rsvps (meeting_id, member_id, answer, at) "
                                   "VALUES (999, ?, 'yes', 'x')", (member,))  # no meeting 999
        assert await db.fetchone("SELECT 1 FROM members WHERE user_id = 'bob'") is None
    finally:
        await db.close()


@BOTH_DATABASES
async def test_a_task_cancelled_mid_transaction_leaves_the_connection_usable(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)

    async def write(name: str) -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO members (platform, user_id) VALUES ('console', ?)", (name,))
            await conn.execute("SELECT count(*) FROM members")

    try:
        for delay in (0, 0.0005, 0.001, 0.002):  # cancel at BEGIN, inside, and around COMMIT
            task = asyncio.ensure_future(write(f"u{delay}"))
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert not in_transaction(db)
            # a member's creation is shared by everyone waiting for it: a waiter cancelled does not stop it
            waiter = asyncio.ensure_future(store.ensure_member(UserRef("console", f"m{delay}")))
            await asyncio.sleep(delay)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            assert await store.ensure_member(UserRef("console", f"m{delay}")) > 0
        assert await store.ensure_member(UserRef("console", "after")) > 0  # the next write works
    finally:
        await db.close()


@BOTH_DATABASES
async def test_votes_are_batched_and_acknowledged_only_once_committed(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        members = [await store.ensure_member(UserRef("console", f"u{i}")) for i in range(50)]
        await asyncio.gather(*(store.record_vote(poll.id, m, (i % 2,), NOW) for i, m in enumerate(members)))
        # every acknowledged vote is visible to another connection: it is committed
        assert await other_connection(database, "SELECT count(*) FROM votes") == 50
        # an older ballot never replaces a newer one (platforms deliver out of order)
        await store.record_vote(poll.id, members[0], (1,), NOW + timedelta(seconds=5))
        await store.record_vote(poll.id, members[0], (0,), NOW + timedelta(seconds=1))
        assert await store.ballot_of(poll.id, members[0]) == (1,)
    finally:
        await store.batcher.stop()
        await db.close()


@BOTH_DATABASES
async def test_a_batch_of_many_rows_keeps_their_order_as_one_row_at_a_time_would(database: str) -> None:
    # a batch's vote rows are written many rows a statement (chunks of 64, 32, ...): the result must be what
    # writing them one at a time, in order, gives, members voting several times in one batch included
    db = await Database.open(database)
    store = Store(db)
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B", "C"), multi=True, secret=False, opened_by=None,
                                       now=NOW, closes_at=None)
        members = [await store.ensure_member(UserRef("console", f"u{i}")) for i in range(60)]
        for n in (150, 127, 2):  # 2 x 64 + 16 + 4 + 2; 64 + 32 + ... + 1; one chunk of 2
            # latest cast wins; a cast time that goes back and forth, and ties (the later row wins a tie)
            rows = [store.vote_row(poll.id, members[(i * 7) % len(members)], (i % 7 % 3,) if i % 4 else (0, 2),
                                   NOW + timedelta(seconds=n + (i * 37) % 11)) for i in range(n)]
            expected = dict(await store.ballots(poll.id))
            latest: dict[int, int] = {}
            for _, member, answers, cast in rows:
                if cast >= latest.get(member, cast):
                    latest[member] = cast
                    expected[member] = tuple(int(a) for a in answers.split(","))
            half = n // 2  # two writers of one moment: one batch
            await asyncio.gather(store.write_native_vote_rows(rows[:half]), store.write_native_vote_rows(rows[half:]))
            assert dict(await store.ballots(poll.id)) == expected
            # a read-back sets each ballot exactly as given: the last row of a member wins, whatever its time
            exact = [(p, m, a, c - 10**9) for p, m, a, c in reversed(rows)]
            await store.write_native_vote_rows(exact, exact=True)
            expected.update((m, tuple(int(x) for x in a.split(","))) for _, m, a, _ in exact)
            assert dict(await store.ballots(poll.id)) == expected
    finally:
        await store.batcher.stop()
        await db.close()


@BOTH_DATABASES
async def test_a_writer_cancelled_while_its_batch_is_written_stops_no_other_writer(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        async with db.transaction() as conn:
            await conn.executemany("INSERT INTO members (id, platform, user_id) VALUES (?, 'console', ?)",
                                   [(i, f"u{i}") for i in range(1, 1501)])
        # the writers of one moment share one batch (of at most 2,000) and wait for it to commit; one of them
        # is cancelled meanwhile
        writers = [asyncio.ensure_future(store.record_vote(poll.id, i, (i % 2,), NOW)) for i in range(1, 1501)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not any(w.done() for w in writers)
        writers[10].cancel()
        results = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 10)
        assert isinstance(results[10], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 10] == [None] * 1499
        # every write is committed, the cancelled one too
        assert await other_connection(database, "SELECT count(*) FROM votes") == 1500
    finally:
        await store.batcher.stop()
        await db.close()


@BOTH_DATABASES
async def test_rsvp_change_and_withdraw(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    try:
        m = await store.add_meeting("c", NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), "r", None, NOW)
        alice = await store.ensure_member(UserRef("console", "alice"))
        await store.set_rsvp(m.id, alice, RsvpAnswer.YES, NOW)
        await store.set_rsvp(m.id, alice, RsvpAnswer.NO, NOW)
        assert (await store.rsvp_counts([m.id]))[m.id][RsvpAnswer.NO] == 1
        await store.set_rsvp(m.id, alice, None, NOW)
        assert await store.rsvps(m.id) == []
    finally:
        await db.close()


@BOTH_DATABASES
async def test_post_claims_are_idempotent(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    try:
        assert await store.claim_post("c/1/reminder", "c", None, "reminder", NOW, NOW)
        assert not await store.claim_post("c/1/reminder", "c", None, "reminder", NOW, NOW)
        assert await store.unfinished_posts() == [("c/1/reminder", "reminder")]
        await store.finish_post("c/1/reminder", "sent", NOW)
        assert await store.unfinished_posts() == []
    finally:
        await db.close()


async def test_a_failed_commit_is_rolled_back_and_later_writes_work(tmp_path: Path) -> None:
    # a real COMMIT failure: a deferred foreign key that is still violated when the transaction commits
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    try:
        alice = await store.ensure_member(UserRef("console", "alice"))
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            async with db.transaction() as conn:
                await conn.execute("PRAGMA defer_foreign_keys = ON")
                await conn.execute("INSERT INTO rsvps (meeting_id, member_id, answer, at) "
                                   "VALUES (999, ?, 'yes', 'x')", (alice,))  # no meeting 999
        assert not db.conn.in_transaction
        assert await db.fetchone("SELECT 1 FROM rsvps") is None
        # the next writes work: a new member, and a batched RSVP
        bob = await store.ensure_member(UserRef("console", "bob"))
        m = await store.add_meeting("c", NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), "r", None, NOW)
        await store.set_rsvp(m.id, bob, RsvpAnswer.YES, NOW)
        assert [u.id for u, _ in await store.rsvps(m.id)] == ["bob"]
    finally:
        await db.close()


@BOTH_DATABASES
async def test_stopping_the_batcher_mid_batch_writes_everything_queued(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        async with db.transaction() as conn:
            await conn.executemany("INSERT INTO members (id, platform, user_id) VALUES (?, 'console', ?)",
                                   [(i, f"u{i}") for i in range(1, 5001)])
        # the first batch's transaction is under way when stop() is called: the writer of batches tells when it
        # begins (waiting on a loop of sleeps instead missed it on a loaded machine: the batch was done first)
        writing = asyncio.Event()
        write_runs = db.write_runs

        async def write_runs_told(runs: Any) -> None:
            writing.set()
            await write_runs(runs)

        db.write_runs = write_runs_told  # type: ignore[method-assign]
        write_runs_soon = db.write_runs_soon  # SQLite's batches start this way

        def write_runs_soon_told(runs: Any, done: Any) -> bool:
            started = write_runs_soon(runs, done)
            if started:
                writing.set()
            return started

        db.write_runs_soon = write_runs_soon_told  # type: ignore[method-assign]
        writers = [asyncio.ensure_future(store.record_vote(poll.id, i, (i % 2,), NOW)) for i in range(1, 5001)]
        await asyncio.wait_for(writing.wait(), 10)
        assert not all(w.done() for w in writers)
        await store.batcher.stop()
        done, pending = await asyncio.wait(writers, timeout=10)
        assert not pending, f"{len(pending)} writers never got an answer"
        assert all(w.exception() is None for w in done)
        assert await other_connection(database, "SELECT count(*) FROM votes") == 5000
        await store.record_vote(poll.id, 1, (1,), NOW + timedelta(seconds=1))  # after stop: written at once
        assert await store.ballot_of(poll.id, 1) == (1,)
    finally:
        await store.batcher.stop()
        await db.close()


@BOTH_DATABASES
async def test_one_bad_write_fails_alone_and_the_rest_of_its_batch_is_committed(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        members = [await store.ensure_member(UserRef("console", f"u{i}")) for i in range(20)]
        # twenty members vote at once (one batch); one ballot names a member that does not exist
        writers = [store.record_vote(poll.id, m, (0,), NOW) for m in members]
        writers.insert(7, store.record_vote(poll.id, 9999, (1,), NOW))
        results = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 10)
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [7]
        assert isinstance(results[7], INTEGRITY)
        assert len(await store.ballots(poll.id)) == 20
        # one write of several rows (a sync page) with a bad row: the other rows are committed, the bad one named
        rows = [store.vote_row(poll.id, m, (1,), NOW + timedelta(seconds=1)) for m in members[:5]]
        rows.insert(2, store.vote_row(poll.id, 8888, (1,), NOW))
        with pytest.raises(WriteRejected) as caught:
            await store.write_vote_rows(rows)
        assert [i for i, _ in caught.value.rejected] == [2]
        assert "1 of 6 rows" in str(caught.value)
        assert sorted(m for m, a in await store.ballots(poll.id) if a == (1,)) == sorted(members[:5])
    finally:
        await store.batcher.stop()
        await db.close()


@BOTH_DATABASES
async def test_members_seen_together_are_created_together_with_their_names(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    try:
        old = await store.ensure_member(UserRef("matrix", "@old:x", "Old name"))
        people = [UserRef("console", f"u{i % 300}", f"U {i % 300}") for i in range(600)]  # each one twice
        people.append(UserRef("matrix", "@old:x", "New name"))
        ids = await asyncio.gather(*(store.ensure_member(u) for u in people))
        assert ids[-1] == old
        assert len(set(ids[:600])) == 300 and ids[:300] == ids[300:600]
        stored = await db.fetchall("SELECT platform, user_id, id, name FROM members")
        rows = {(r[0], r[1]): (r[2], r[3]) for r in stored}
        assert len(rows) == 301
        assert all(rows[(u.platform, u.id)] == (mid, u.name) for u, mid in zip(people, ids, strict=True))
    finally:
        await db.close()


@BOTH_DATABASES
async def test_adapter_state_of_meetings_and_polls_long_past_is_cleaned_up(database: str) -> None:
    db = await Database.open(database)
    store = Store(db)
    try:
        day = timedelta(days=1)
        old = await store.add_meeting("c", NOW - 40 * day, NOW - 40 * day + timedelta(hours=1), "r", None, NOW)
        recent = await store.add_meeting("c", NOW - 10 * day, NOW - 10 * day + timedelta(hours=1), "r", None, NOW)
        closed_long_ago = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None,
                                                  now=NOW - 50 * day, closes_at=None)
        open_poll = await store.create_poll("c", "Q2?", ("A", "B"), multi=False, secret=False, opened_by=None,
                                            now=NOW - 50 * day, closes_at=None)
        await store.close_poll(closed_long_ago.id, NOW - 45 * day)
        for poll, event in ((closed_long_ago, "$poll-old"), (open_poll, "$poll-open")):
            await store.add_poll_message(poll.id, MessageRef(ChannelRef("matrix", "!room"), event))
        state = store.adapter_state("matrix")
        await state.put("controls", "$post-old", '{"meeting": 1}', meeting_id=old.id)
        await state.put("reaction", "$r-old", "{}", meeting_id=old.id)
        await state.put("controls", "$post-recent", '{"meeting": 2}', meeting_id=recent.id)
        await state.put("poll_end", "$poll-old", "1", poll_message="$poll-old")
        await state.put("poll_end", "$poll-open", "2", poll_message="$poll-open")
        await state.put("note", "unowned-old", "x", now=NOW - 31 * day)
        await state.put("note", "unowned-new", "x", now=NOW - day)
        await store.set_state("matrix", "sync_token", "s1")  # the platform's own settings stay
        assert await store.clean_up(NOW) == 4
        assert await state.get("controls", "$post-old") is None and await state.get("reaction", "$r-old") is None
        assert await state.get("poll_end", "$poll-old") is None and await state.get("note", "unowned-old") is None
        assert await state.get("controls", "$post-recent") == '{"meeting": 2}'
        assert await state.get("poll_end", "$poll-open") == "2"
        assert await state.get("note", "unowned-new") == "x"
        assert await store.get_state("matrix", "sync_token") == "s1"
        await state.delete("controls", "$post-recent")
        assert await state.get("controls", "$post-recent") is None
    finally:
        await db.close()


async def test_the_matrix_adapters_old_state_rows_move_with_their_owners(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    with sqlite3.connect(path) as raw:  # a database at the version before adapter_items, with Matrix's rows
        before = next(i for i, (what, _) in enumerate(MIGRATIONS) if what.startswith("adapter state by namespace"))
        for version, (_, statements) in enumerate(MIGRATIONS[:before], 1):
            for stmt in sqlite_statements(statements):
                raw.execute(stmt)
            raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            raw.execute("DELETE FROM schema_version")
            raw.execute("INSERT INTO schema_version VALUES (?)", (version,))
        raw.execute("INSERT INTO meetings (id, circle, starts_at, ends_at, reading, created_at) "
                    "VALUES (7, 'c', 'a', 'b', 'r', 'x')")
        raw.execute("INSERT INTO polls (id, circle, question, multi, secret, opened_at) "
                    "VALUES (3, 'c', 'q', 0, 0, 'x')")
        raw.execute("INSERT INTO poll_messages VALUES (3, 'matrix', '!room', '$poll')")
        raw.executemany("INSERT INTO adapter_state VALUES ('matrix', ?, ?)", [
            ("controls:$post", '{"meeting": 7, "controls": ["rsvp"]}'),
            ("reaction:$r1", '{"target": "$post", "sender": "@a:x", "key": "👍"}'),
            ("reaction:$r2", ""),  # forgotten
            ("poll_end:$poll", "1234"),
            ("sync_token", "s9"),
        ])
    db = await Database.open(path)
    try:
        rows = await db.fetchall("SELECT namespace, key, meeting_id, poll_id FROM adapter_items ORDER BY namespace")
        assert [tuple(r) for r in rows] == [("controls", "$post", 7, None), ("poll_end", "$poll", None, 3),
                                            ("reaction", "$r1", 7, None)]
        assert [r[0] for r in await db.fetchall("SELECT key FROM adapter_state")] == ["sync_token"]
    finally:
        await db.close()


@BOTH_DATABASES
async def test_the_bot_cleans_up_old_adapter_state_when_it_starts_and_stops_when_asked(tmp_path: Path,
                                                                                      database: str) -> None:
    from circlebot.app import App
    from circlebot.readings import load_collection
    from circlebot.store.accounts import Accounts, LinkOutcome
    from conftest import START, circle_config, make_settings
    from drivers import FakeClock, RecordingAdapter

    settings = make_settings(tmp_path, database=database, circles=[circle_config(syllabus=[])])
    db = await Database.open(settings.database)
    store = Store(db)
    try:
        ended = START - timedelta(days=31)
        meeting = await store.add_meeting("study", ended - timedelta(hours=1), ended, "r", None, START)
        state = store.adapter_state("matrix")
        await state.put("controls", "$post", "{}", meeting_id=meeting.id)
        accounts = Accounts(store)  # a link code asked for yesterday, and a wrong code sent then: both long over
        open_code, _ = await accounts.issue_code(UserRef("matrix", "@bob:x"), START - timedelta(minutes=1))
        await accounts.issue_code(UserRef("matrix", "@alice:x"), START - timedelta(days=1))
        await accounts.redeem(UserRef("discord", "666"), "00000000", START - timedelta(days=1))

        async def left(table: str) -> int:
            row = await db.fetchone(f"SELECT count(*) FROM {table}")
            return int(row[0]) if row else 0

        assert await left("link_codes") == 2 and await left("link_tries") == 1
        app = App(settings, store, load_collection(settings.readings), FakeClock(START))
        app.add_adapter(RecordingAdapter(settings.zone_of(settings.circles[0])))
        running = asyncio.create_task(app.run())
        for _ in range(2000):
            if await state.get("controls", "$post") is None and await left("link_codes") == 1:
                break
            await asyncio.sleep(0.001)
        assert await state.get("controls", "$post") is None
        assert await left("link_codes") == 1 and await left("link_tries") == 0  # bob's code still works
        assert (await accounts.redeem(UserRef("discord", "777"), open_code, START)).outcome is LinkOutcome.LINKED
        app.stop()
        await asyncio.wait_for(running, 10)
    finally:
        await db.close()


async def test_what_start_up_built_is_kept_out_of_the_collectors_way_once_the_timeline_runs(
        tmp_path: Path) -> None:
    """A full collection walking the start-up objects (10,000 circles' plan) delayed every post of a due
    minute by ~300 ms (bench/timeline_bench.py); App.run freezes them once the timeline has started."""
    import gc

    from circlebot.app import App
    from circlebot.readings import load_collection
    from conftest import START, circle_config, make_settings
    from drivers import FakeClock, RecordingAdapter

    settings = make_settings(tmp_path, circles=[circle_config(syllabus=[])])
    db = await Database.open(settings.database)
    gc.unfreeze()
    try:
        app = App(settings, Store(db), load_collection(settings.readings), FakeClock(START))
        app.add_adapter(RecordingAdapter(settings.zone_of(settings.circles[0])))
        assert gc.get_freeze_count() == 0
        running = asyncio.create_task(app.run())
        for _ in range(2000):
            if gc.get_freeze_count() > 0:
                break
            await asyncio.sleep(0.001)
        assert gc.get_freeze_count() > 0
        app.stop()
        await asyncio.wait_for(running, 10)
    finally:
        gc.unfreeze()
        await db.close()


def test_the_store_sql_is_turned_into_postgresql_outside_quotes_and_comments() -> None:
    from circlebot.store.postgresql import ddl, to_postgres

    assert to_postgres("SELECT '?', ? FROM t WHERE a = ? -- why?\n AND b = \"q?\"") == (
        "SELECT '?', $1 FROM t WHERE a = $2 -- why?\n AND b = \"q?\"")
    assert to_postgres("INSERT INTO v VALUES (?1, ?2, 'x', ?1) ON CONFLICT (a) DO UPDATE SET b = ?") == (
        "INSERT INTO v VALUES ($1, $2, 'x', $1) ON CONFLICT (a) DO UPDATE SET b = $3")
    assert to_postgres("INSERT OR IGNORE INTO c (a) VALUES (?) RETURNING a") == (
        "INSERT INTO c (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING a")
    with pytest.raises(StoreError, match="ON CONFLICT"):
        to_postgres("INSERT OR REPLACE INTO c (a) VALUES (?)")
    assert ddl("CREATE TABLE x (id INTEGER PRIMARY KEY, n INTEGER DEFAULT 'INTEGER', r REAL) WITHOUT ROWID") == (
        "CREATE TABLE x (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT DEFAULT 'INTEGER', "
        "r DOUBLE PRECISION)")


@BOTH_DATABASES
async def test_rows_counts_and_new_ids_read_alike_on_both(database: str) -> None:
    db = await Database.open(database)
    try:
        async with db.transaction() as conn:
            first = await conn.execute("INSERT INTO meetings (circle, starts_at, ends_at, reading, created_at) "
                                       "VALUES (?, 'a', 'b', 'r', 'x')", ("c",))
            second = await conn.execute("INSERT INTO meetings (circle, starts_at, ends_at, reading, created_at) "
                                        "VALUES (?, 'a', 'b', 'r', 'x')", ("c",))
            assert (first.rowcount, second.rowcount) == (1, 1)
            assert second.lastrowid == (first.lastrowid or 0) + 1
            await conn.execute("INSERT INTO members (platform, user_id) VALUES ('console', 'a')")
            twice = await conn.execute("INSERT OR IGNORE INTO members (platform, user_id) VALUES ('console', 'a')")
            assert twice.rowcount == 0
            moved = await conn.execute("UPDATE meetings SET reading = ? WHERE circle = ?", ("s", "c"))
            assert moved.rowcount == 2
        row = await db.fetchone("SELECT count(*) AS n, sum(id) AS total, min(reading) AS r FROM meetings")
        assert row is not None
        assert (row[0], row["n"], row["r"], row["total"]) == (2, 2, "s", (first.lastrowid or 0) * 2 + 1)
        assert isinstance(row["total"], int)
        assert sorted(row.keys()) == ["n", "r", "total"]
    finally:
        await db.close()


async def test_a_crowd_of_votes_on_a_poll_message_not_cached_looks_it_up_once(tmp_path: Path) -> None:
    """The first votes of a crowd on a poll this process did not post (or after its caches were dropped) make
    one look-up of the poll's message, not one each: they would queue one round trip each to SQLite's thread."""
    db = await Database.open(tmp_path / "crowd.sqlite3")
    poster, voter = Store(db), Store(db)  # the process that posted the poll, and one that did not
    looked_up: list[str] = []
    await db.conn.set_trace_callback(  # type: ignore[attr-defined]
        lambda sql: looked_up.append(sql) if "FROM poll_messages" in sql else None)
    try:
        poll = await poster.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None,
                                        now=NOW, closes_at=None)
        ref = MessageRef(ChannelRef("matrix", "!room"), "$poll")
        await poster.add_poll_message(poll.id, ref)
        assert await asyncio.gather(*(voter.poll_for_message(ref) for _ in range(1000))) == [poll.id] * 1000
        assert len(looked_up) == 1, looked_up
        assert await voter.poll_for_message(ref) == poll.id and len(looked_up) == 1  # cached from then on
        assert await poster.poll_for_message(ref) == poll.id and len(looked_up) == 1  # the poster knew it
        missing = MessageRef(ChannelRef("matrix", "!room"), "$other")
        assert await asyncio.gather(*(voter.poll_for_message(missing) for _ in range(3))) == [None] * 3
        assert len(looked_up) == 2, looked_up
    finally:
        await db.close()

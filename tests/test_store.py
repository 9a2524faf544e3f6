"""The SQLite store: pragmas, migrations, refusing a newer database, batched votes acknowledged on commit."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circlebot.domain import RsvpAnswer, UserRef
from circlebot.store import Database, Store, StoreError, WriteRejected
from circlebot.store.migrations import MIGRATIONS

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


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


async def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    (await Database.open(path)).conn  # noqa: B018
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match=r"schema version 99.*Upgrade circlebot"):
        await Database.open(path)


async def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    try:
        member = await store.member(UserRef("console", "alice", "Alice"))
        with pytest.raises(sqlite3.IntegrityError):
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO members (platform, user_id) VALUES ('console', 'bob')")
                await conn.execute("INSERT INTO rsvps VALUES (999, ?, 'yes', 'x')", (member,))  # no meeting 999
        assert await db.fetchone("SELECT 1 FROM members WHERE user_id = 'bob'") is None
    finally:
        await db.close()


async def test_a_task_cancelled_mid_transaction_leaves_the_connection_usable(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
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
            assert not db.conn.in_transaction
            # a member's creation is shared by everyone waiting for it: a waiter cancelled does not stop it
            waiter = asyncio.ensure_future(store.member(UserRef("console", f"m{delay}")))
            await asyncio.sleep(delay)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            assert await store.member(UserRef("console", f"m{delay}")) > 0
        assert await store.member(UserRef("console", "after")) > 0  # the next write works
    finally:
        await db.close()


async def test_votes_are_batched_and_acknowledged_only_once_committed(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        members = [await store.member(UserRef("console", f"u{i}")) for i in range(50)]
        await asyncio.gather(*(store.record_vote(poll.id, m, (i % 2,), NOW) for i, m in enumerate(members)))
        # every acknowledged vote is visible to another connection: it is committed
        with sqlite3.connect(tmp_path / "x.sqlite3") as other:
            assert other.execute("SELECT count(*) FROM votes").fetchone()[0] == 50
        # an older ballot never replaces a newer one (platforms deliver out of order)
        await store.record_vote(poll.id, members[0], (1,), NOW + timedelta(seconds=5))
        await store.record_vote(poll.id, members[0], (0,), NOW + timedelta(seconds=1))
        assert await store.ballot_of(poll.id, members[0]) == (1,)
    finally:
        await store.batcher.stop()
        await db.close()


async def test_rsvp_change_and_withdraw(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    try:
        m = await store.add_meeting("c", NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), "r", None, NOW)
        alice = await store.member(UserRef("console", "alice"))
        await store.set_rsvp(m.id, alice, RsvpAnswer.YES, NOW)
        await store.set_rsvp(m.id, alice, RsvpAnswer.NO, NOW)
        assert (await store.rsvp_counts([m.id]))[m.id][RsvpAnswer.NO] == 1
        await store.set_rsvp(m.id, alice, None, NOW)
        assert await store.rsvps(m.id) == []
    finally:
        await db.close()


async def test_post_claims_are_idempotent(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
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
        alice = await store.member(UserRef("console", "alice"))
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            async with db.transaction() as conn:
                await conn.execute("PRAGMA defer_foreign_keys = ON")
                await conn.execute("INSERT INTO rsvps VALUES (999, ?, 'yes', 'x')", (alice,))  # no meeting 999
        assert not db.conn.in_transaction
        assert await db.fetchone("SELECT 1 FROM rsvps") is None
        # the next writes work: a new member, and a batched RSVP
        bob = await store.member(UserRef("console", "bob"))
        m = await store.add_meeting("c", NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1), "r", None, NOW)
        await store.set_rsvp(m.id, bob, RsvpAnswer.YES, NOW)
        assert [u.id for u, _ in await store.rsvps(m.id)] == ["bob"]
    finally:
        await db.close()


async def test_stopping_the_batcher_mid_batch_writes_everything_queued(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        async with db.transaction() as conn:
            await conn.executemany("INSERT INTO members (id, platform, user_id) VALUES (?, 'console', ?)",
                                   [(i, f"u{i}") for i in range(1, 5001)])
        writers = [asyncio.ensure_future(store.record_vote(poll.id, i, (i % 2,), NOW)) for i in range(1, 5001)]
        for _ in range(10_000):  # until the first batch is inside its transaction
            if db.conn.in_transaction:
                break
            await asyncio.sleep(0)
        assert db.conn.in_transaction
        await store.batcher.stop()
        done, pending = await asyncio.wait(writers, timeout=10)
        assert not pending, f"{len(pending)} writers never got an answer"
        assert all(w.exception() is None for w in done)
        with sqlite3.connect(tmp_path / "x.sqlite3") as other:
            assert other.execute("SELECT count(*) FROM votes").fetchone()[0] == 5000
        await store.record_vote(poll.id, 1, (1,), NOW + timedelta(seconds=1))  # after stop: written at once
        assert await store.ballot_of(poll.id, 1) == (1,)
    finally:
        await store.batcher.stop()
        await db.close()


async def test_one_bad_write_fails_alone_and_the_rest_of_its_batch_is_committed(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    store.batcher.start()
    try:
        poll = await store.create_poll("c", "Q?", ("A", "B"), multi=False, secret=False, opened_by=None, now=NOW,
                                       closes_at=None)
        members = [await store.member(UserRef("console", f"u{i}")) for i in range(20)]
        # twenty members vote at once (one batch); one ballot names a member that does not exist
        writers = [store.record_vote(poll.id, m, (0,), NOW) for m in members]
        writers.insert(7, store.record_vote(poll.id, 9999, (1,), NOW))
        results = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 10)
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [7]
        assert isinstance(results[7], sqlite3.IntegrityError)
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


async def test_members_seen_together_are_created_together_with_their_names(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    store = Store(db)
    try:
        old = await store.member(UserRef("matrix", "@old:x", "Old name"))
        people = [UserRef("console", f"u{i % 300}", f"U {i % 300}") for i in range(600)]  # each one twice
        people.append(UserRef("matrix", "@old:x", "New name"))
        ids = await asyncio.gather(*(store.member(u) for u in people))
        assert ids[-1] == old
        assert len(set(ids[:600])) == 300 and ids[:300] == ids[300:600]
        stored = await db.fetchall("SELECT platform, user_id, id, name FROM members")
        rows = {(r[0], r[1]): (r[2], r[3]) for r in stored}
        assert len(rows) == 301
        assert all(rows[(u.platform, u.id)] == (mid, u.name) for u, mid in zip(people, ids, strict=True))
    finally:
        await db.close()

"""The SQLite store: pragmas, migrations, refusing a newer database, batched votes acknowledged on commit."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circlebot.domain import RsvpAnswer, UserRef
from circlebot.store import Database, Store, StoreError
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
    try:
        for delay in (0, 0.0005, 0.001, 0.002):  # cancel at BEGIN, inside, and around COMMIT
            task = asyncio.ensure_future(store.member(UserRef("console", f"u{delay}")))
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert not db.conn.in_transaction
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

"""Benchmark: the store on PostgreSQL beside SQLite, each beside its raw driver floor (run on demand; not a test).

    .venv/bin/python bench/postgres_bench.py

PostgreSQL runs from the pgserver wheel's binaries (as the tests start it, but durable: fsync and synchronous
commit on), on 127.0.0.1; SQLite is a file in a temporary directory. For each database:

1. Votes: 10,000 votes from 1,000 members on one poll through the core's vote path (App.dispatch(VoteCast)),
   each acknowledged once committed: one dispatch per vote with 100 in flight, and one back-fill batch of
   10,000. The floor, measured in the same run: the same 10,000 rows written by the raw driver in one
   transaction (asyncpg `executemany`, aiosqlite `executemany`).
2. Posts: 1,000 reminders due at the same moment, through the timeline (claimed in one transaction, sent
   concurrently to an adapter that answers at once, each location marked sent, batched, committed). The
   floor: the same rows written raw, post log and deliveries in one transaction (asyncpg
   `copy_records_to_table`, aiosqlite `executemany`), then the 1,000 marks in another (`executemany`, the
   trigger that finishes each post included).

Target (issue 16): the PostgreSQL figures within 3x of their floor.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from core_bench import (  # noqa: E402
    BACK_FILL_WAY,
    IN_FLIGHT_WAY,
    MEMBERS,
    NOW,
    VOTES,
    Clock,
    NullAdapter,
    floor_rows,
    make_votes,
    open_poll,
    vote_rounds,
    vote_ways,
)

from circlebot.app import App  # noqa: E402
from circlebot.config import validate  # noqa: E402
from circlebot.core.domain import UserRef  # noqa: E402
from circlebot.core.timeline import Timeline  # noqa: E402
from circlebot.readings import load_collection  # noqa: E402
from circlebot.store import Database, Store  # noqa: E402
from circlebot.store.queries import ts  # noqa: E402
from pg_harness import PostgresServer  # noqa: E402

ROUNDS = 3
POSTS = 1_000
SEED = "bolivia-2003-first-balance-sheet"


class Target:
    """Where one kind of database is: a fresh database (file or schema) on each call."""

    def __init__(self, kind: str, tmp: Path, server: PostgresServer | None) -> None:
        self.kind, self.tmp, self.server, self.n = kind, tmp, server, 0

    async def fresh(self) -> str:
        self.n += 1
        if self.server is None:
            return str(self.tmp / f"{self.n}.sqlite3")
        return await self.server.fresh_schema()


async def make_app(database: str, circles: int = 1) -> tuple[App, NullAdapter, Clock]:
    settings = validate(
        {"database": database, "readings": str(REPO / "readings"),
         "circles": [{"slug": "bench" if circles == 1 else f"c{i}", "name": f"Bench {i}", "timezone": "UTC",
                      "meets": {"weekdays": ["thursday"], "time": "19:00"}, "organisers": {"console": ["olga"]},
                      # the assignment goes out after the reminder: at the reminder's time only it is due
                      "timeline": {"assignment": "12h", "reminder": "24h"}}
                     for i in range(circles)]},
        Path("/tmp/bench.toml"))
    db = await Database.open(settings.database)
    clock = Clock()
    app = App(settings, Store(db), load_collection(settings.readings), clock)
    adapter = NullAdapter()
    app.add_adapter(adapter)
    app.store.batcher.start()
    return app, adapter, clock


async def close(app: App) -> None:
    await app.store.batcher.stop()
    await app.store.db.close()


class Raw:
    """The raw driver on a database the store migrated (so the same schema, triggers and indexes)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.pg: asyncpg.Connection | None = None
        self.lite: aiosqlite.Connection | None = None

    async def __aenter__(self) -> Raw:
        await (await Database.open(self.database)).close()  # migrated
        if self.database.startswith("postgresql://"):
            self.pg = await asyncpg.connect(self.database)
        else:
            self.lite = await aiosqlite.connect(self.database, isolation_level=None)
            await self.lite.execute("PRAGMA journal_mode = WAL")
            await self.lite.execute("PRAGMA synchronous = NORMAL")
            await self.lite.execute("PRAGMA foreign_keys = ON")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.pg is not None:
            await self.pg.close()
        if self.lite is not None:
            await self.lite.close()

    async def run(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One executemany in one transaction (`sql` in each driver's placeholders: ? for both, turned here)."""
        if self.pg is not None:
            n = iter(range(1, 100))
            q = "".join(f"${next(n)}" if c == "?" else c for c in sql)
            async with self.pg.transaction():
                await self.pg.executemany(q, rows)
        else:
            assert self.lite is not None
            await self.lite.execute("BEGIN IMMEDIATE")
            await self.lite.executemany(sql, rows)
            await self.lite.execute("COMMIT")

    async def copy(self, tables: list[tuple[str, list[str], list[tuple[Any, ...]]]]) -> None:
        """Rows into tables, in one transaction: COPY on PostgreSQL, executemany on SQLite."""
        if self.pg is not None:
            async with self.pg.transaction():
                for table, columns, rows in tables:
                    await self.pg.copy_records_to_table(table, records=rows, columns=columns)
            return
        assert self.lite is not None
        await self.lite.execute("BEGIN IMMEDIATE")
        for table, columns, rows in tables:
            await self.lite.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                        f"({', '.join('?' * len(columns))})", rows)
        await self.lite.execute("COMMIT")


async def bench_votes(target: Target) -> dict[str, float]:
    app, _, _ = await make_app(await target.fresh())
    poll = await open_poll(app)
    users = [UserRef("console", f"member{i}", f"Member {i}") for i in range(MEMBERS)]
    votes = make_votes(poll, users, VOTES, 7)
    await asyncio.gather(*(app.dispatch(v) for v in votes[:MEMBERS]))  # the members exist

    ways = {label: deliver for label, deliver in vote_ways(app).items() if label in (IN_FLIGHT_WAY, BACK_FILL_WAY)}
    rows = floor_rows(votes)

    async def floor(_: int) -> float:
        async with Raw(await target.fresh()) as raw:
            await raw.copy([("polls", ["id", "circle", "question", "multi", "secret", "opened_at"],
                             [(1, "b", "q", 0, 0, "x")]),
                            ("members", ["id", "platform", "user_id"],
                             [(i + 1, "c", f"m{i}") for i in range(MEMBERS)])])
            start = time.perf_counter()
            await raw.run(Store.VOTE_SQL, rows)
            return time.perf_counter() - start

    times, floors = await vote_rounds(ways, votes, ROUNDS, floor)
    await close(app)
    out = {label: min(t) for label, t in times.items()}
    out["floor"] = min(floors)
    out["floor median"] = statistics.median(floors)
    return out


async def bench_posts(target: Target) -> dict[str, float]:
    times: list[float] = []
    floors: list[float] = []
    due = NOW
    for _ in range(ROUNDS):
        app, _, clock = await make_app(await target.fresh(), circles=POSTS)
        starts = due + timedelta(hours=24)  # every reminder due at `due`
        async with app.store.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO meetings (circle, starts_at, ends_at, reading, created_at, modified_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(f"c{i}", ts(starts), ts(starts + timedelta(hours=1)), SEED, ts(due), ts(due)) for i in range(POSTS)])
        clock.t = due
        timeline = Timeline(app)
        await timeline.prepare()
        start = time.perf_counter()
        sent = await timeline.tick()
        times.append(time.perf_counter() - start)
        row = await app.store.db.fetchone("SELECT count(*) FROM post_deliveries WHERE state = 'sent'")
        assert sent == POSTS and row is not None and int(row[0]) == POSTS, (sent, row)  # the reminders, no more
        await close(app)

        stamp = ts(due)
        keys = [f"c{i}/{i + 1}/reminder/{stamp}" for i in range(POSTS)]
        async with Raw(await target.fresh()) as raw:
            await raw.copy([("meetings", ["id", "circle", "starts_at", "ends_at", "reading", "created_at"],
                             [(i + 1, f"c{i}", ts(starts), ts(starts), SEED, stamp) for i in range(POSTS)])])
            start = time.perf_counter()
            await raw.copy([
                ("post_log", ["key", "circle", "meeting_id", "kind", "due_at", "state", "claimed_at"],
                 [(k, f"c{i}", i + 1, "reminder", stamp, "claimed", stamp) for i, k in enumerate(keys)]),
                ("post_deliveries", ["post_key", "platform", "channel", "state", "first_try_at"],
                 [(k, "console", f"c{i}", "sending", stamp) for i, k in enumerate(keys)])])
            await raw.run("UPDATE post_deliveries SET state = ?, done_at = ?, message_id = ?, detail = ? "
                          "WHERE post_key = ? AND platform = ? AND channel = ? AND state = 'sending'",
                          [("sent", stamp, f"m{i}", None, k, "console", f"c{i}") for i, k in enumerate(keys)])
            floors.append(time.perf_counter() - start)
    return {"timeline": min(times), "timeline median": statistics.median(times), "floor": min(floors),
            "floor median": statistics.median(floors)}


def report(kind: str, votes: dict[str, float], posts: dict[str, float]) -> None:
    print(f"{kind}:")
    floor = votes["floor"]
    print(f"  votes floor, raw executemany of {VOTES:,} rows in one transaction: {floor * 1000:7.1f} ms (median "
          f"{votes['floor median'] * 1000:.1f})")
    for label, best in votes.items():
        if not label.startswith("floor"):
            print(f"  votes, {label:<36} {best * 1000:7.1f} ms  {VOTES / best:9,.0f} votes/s  "
                  f"{best / floor:5.2f}x the floor")
    print(f"  posts floor, raw claims (copy) + marks (executemany): {posts['floor'] * 1000:7.1f} ms (median "
          f"{posts['floor median'] * 1000:.1f})")
    print(f"  posts, {POSTS:,} due at once through the timeline:   {posts['timeline'] * 1000:7.1f} ms (median "
          f"{posts['timeline median'] * 1000:.1f})  {posts['timeline'] / posts['floor']:5.2f}x the floor")


async def main() -> None:
    server = PostgresServer(durable=True)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"(best of {ROUNDS} rounds; PostgreSQL {server.binaries.parent.name} binaries, durable commits)")
            for kind in ("postgresql", "sqlite"):
                target = Target(kind, Path(tmp), server if kind == "postgresql" else None)
                report(kind, await bench_votes(target), await bench_posts(target))
    finally:
        server.stop()


if __name__ == "__main__":
    started = datetime.now(UTC)
    asyncio.run(main())
    print(f"({(datetime.now(UTC) - started).total_seconds():.0f} s)")

"""The SQLite connection: pragmas, explicit transactions, migrations at open, and batched writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from circlebot.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The database cannot be used as it is (too new, unreadable); the message says what to do."""


class Database:
    """One aiosqlite connection in autocommit mode; writes go through `transaction()` (BEGIN IMMEDIATE)."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        """Open (creating if needed) and migrate the database at `path`."""
        p = Path(path)
        if str(p) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(p, isolation_level=None)
        except Exception as e:  # sqlite3.OperationalError: unable to open database file
            raise StoreError(f"cannot open the database {p}: {e}") from None
        conn.row_factory = aiosqlite.Row
        db = cls(conn, p)
        try:
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await db._migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self.conn.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A short write transaction; commits on success, rolls back on any error or cancellation.

        BEGIN, COMMIT and ROLLBACK run to completion even if the task is cancelled meanwhile (the statement
        runs in aiosqlite's thread anyway); otherwise a cancelled task could leave the connection inside a
        transaction and every later write would fail."""
        async with self._write_lock:
            try:
                await _to_completion(self.conn.execute("BEGIN IMMEDIATE"))
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    await _to_completion(self.conn.execute("ROLLBACK"))
                raise
            await _to_completion(self.conn.execute("COMMIT"))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        """All rows, in one trip to aiosqlite's thread (execute + fetch + close would be three)."""
        return list(await self.conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        """The first row (queries here select by key or say LIMIT 1), in one trip."""
        rows = await self.conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def version(self) -> int:
        row = await self.fetchone(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        )
        if row is None:
            return 0
        row = await self.fetchone("SELECT version FROM schema_version")
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.version()
        latest = len(MIGRATIONS)
        if current > latest:
            raise StoreError(
                f"the database {self.path} is at schema version {current}, but this circlebot only knows "
                f"versions up to {latest}: it was written by a newer circlebot. Upgrade circlebot, or point "
                f"'database' in the config at another file."
            )
        for version in range(current + 1, latest + 1):
            description, statements = MIGRATIONS[version - 1]
            log.info("migrating database to version %d: %s", version, description)
            async with self.transaction() as conn:
                for stmt in statements:
                    await conn.execute(stmt)
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


async def _to_completion(awaitable: Awaitable[Any]) -> Any:
    """Await something that must finish even if the caller is cancelled; the cancellation is re-raised after."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


@dataclass(slots=True)
class _Pending:
    sql: str
    rows: Sequence[tuple[Any, ...]]
    done: asyncio.Future[None]


class WriteBatcher:
    """Gathers many small writes into short transactions.

    `submit` returns only after the transaction holding the write has committed, so a caller acknowledges
    nothing that is not on disk. Writes keep their order; consecutive writes with the same SQL go through one
    `executemany`.
    """

    def __init__(self, db: Database, max_batch: int = 2000) -> None:
        self._db = db
        self._max = max_batch
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.before_flush: Callable[[aiosqlite.Connection], Awaitable[None]] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="circlebot-write-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            await self._flush()

    async def submit(self, sql: str, params: tuple[Any, ...]) -> None:
        await self.submit_many(sql, (params,))

    async def submit_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write several rows; returns once all are committed (in one transaction, in order)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(sql, rows, fut))
        self._wake.set()
        if self._task is None:  # not started: write at once
            await self._flush()
        await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the writers that are ready now join this batch
            while self._queue:
                await self._flush()

    async def _flush(self) -> None:
        batch, self._queue = self._queue[: self._max], self._queue[self._max :]
        runs: list[tuple[str, list[tuple[Any, ...]]]] = []
        for p in batch:
            if runs and runs[-1][0] == p.sql:
                runs[-1][1].extend(p.rows)
            else:
                runs.append((p.sql, list(p.rows)))
        try:
            async with self._db.transaction() as conn:
                for sql, rows in runs:
                    await conn.executemany(sql, rows)
        except Exception as e:
            log.exception("a batch of %d writes failed", len(batch))
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(e)
            return
        for p in batch:
            if not p.done.done():
                p.done.set_result(None)

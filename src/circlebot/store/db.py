"""The database: SQLite (aiosqlite, the embedded default) or PostgreSQL (asyncpg, `postgresql.py`) behind one
interface, with explicit transactions, migrations at open, and batched writes.

Queries are written once, in the SQL both understand, with `?` (or `?N`) placeholders; on PostgreSQL the layer
turns them into `$N`. Rows read by index or by column name alike on both."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import aiosqlite

from circlebot.store.migrations import MIGRATIONS, Dialects

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


class StoreError(Exception):
    """The database cannot be used as it is (too new, unreadable); the message says what to do."""


class Row(Protocol):
    """A row as either database returns it: by index (`row[0]`) or by column name (`row["id"]`);
    iterating gives its values in order."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...

    def keys(self) -> Iterable[str]: ...


class Cursor(Protocol):
    """What a statement run in a transaction tells: rows changed, and the id of a row just inserted."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...


class Connection(Protocol):
    """The connection a transaction hands out (aiosqlite's own on SQLite; `postgresql.PgConnection` speaks the
    same calls on PostgreSQL)."""

    def execute(self, sql: str, parameters: Iterable[Any] | None = None, /) -> Awaitable[Cursor]: ...

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]], /) -> Awaitable[Any]: ...

    def execute_fetchall(self, sql: str, parameters: Iterable[Any] | None = None, /) -> Awaitable[Iterable[Row]]: ...

    @property
    def in_transaction(self) -> bool: ...


_SERVERS: dict[str, Callable[[str, str | None], Awaitable[Database]]] = {}
"""How to open a database of each server kind, by URL scheme; `postgresql.py` adds itself (it builds on this
module, so this one cannot import it)."""


class Database:
    """The store's database. `open` picks the kind by its target: a file path (SQLite) or a
    `postgresql://user@host/db` URL (PostgreSQL). Writes go through `transaction()` or `write_runs`."""

    dialect: ClassVar[str] = ""
    shared: ClassVar[bool] = False  # several bot processes may use it at once (a server), not one (a file)
    statement_errors: ClassVar[tuple[type[Exception], ...]] = ()  # one statement refused; the transaction lives

    @classmethod
    async def open(cls, target: Path | str, *, password: str | None = None) -> Database:
        """Open (creating if needed) and migrate the database at `target`: a SQLite file path, or a PostgreSQL
        URL (its password, when the server asks for one, given apart: it never sits in the URL or a log)."""
        if is_postgres_url(target):
            server = _SERVERS.get("postgresql")
            if server is None:
                raise StoreError("PostgreSQL support is not loaded (import circlebot.store)")
            return await server(str(target), password)
        return await SqliteDatabase.connect(Path(target))

    @property
    def name(self) -> str:
        """The database as messages name it (never with a password)."""
        raise NotImplementedError

    @property
    def writes(self) -> int | None:
        """A count that changes with every row this process writes, for caches of what the rows show (the web
        pages); None where the database keeps no such count."""
        return None

    async def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A short write transaction; commits on success, rolls back on any error or cancellation."""
        raise NotImplementedError

    async def write_runs(self, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """Run each (SQL, rows) `executemany`, in order, in one write transaction: all or nothing, committed
        when it returns, run to the end even if the caller is cancelled (the batcher's path)."""
        raise NotImplementedError

    def write_runs_soon(self, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
                        done: Callable[[BaseException | None], object]) -> bool:
        """Start what `write_runs` does without waiting for it, if this database can at this moment: `done` is
        then called in the event loop with None once committed, or with the error once rolled back. Returns
        False if it started nothing (the caller awaits `write_runs` instead)."""
        return False

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        raise NotImplementedError

    async def has_table(self, name: str) -> bool:
        raise NotImplementedError

    async def tables(self) -> list[str]:
        """The names of the tables the store keeps (schema_version included), in creation order."""
        raise NotImplementedError

    async def columns(self, table: str) -> list[tuple[str, str]]:
        """A table's columns in order: (name, the database's type name in lower case)."""
        raise NotImplementedError

    async def ids_after_copy(self, conn: Connection) -> None:
        """After rows were copied in with their ids: new rows are numbered after the highest (PostgreSQL's
        identity columns; SQLite numbers after the highest by itself)."""

    def triggers_off(self, conn: Connection) -> contextlib.AbstractAsyncContextManager[None]:
        """Inside a transaction: the rows written in the block are stored as they are, no trigger of the store's
        runs on them (a copy of rows that were checked when first written: the ballots of a closed poll); the
        triggers are back before the transaction commits (and, DDL being transactional, if it rolls back)."""
        raise NotImplementedError

    async def _lock_schema(self, conn: Connection) -> None:
        """Inside a migration's transaction: keep other processes from migrating at the same time."""

    async def _migrated(self) -> None:
        """After migrations ran (the PostgreSQL layer reads the tables' identity columns)."""

    async def version(self) -> int:
        if not await self.has_table("schema_version"):
            return 0
        row = await self.fetchone("SELECT version FROM schema_version")
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.version()
        latest = len(MIGRATIONS)
        if current > latest:
            raise StoreError(
                f"the database {self.name} is at schema version {current}, but this circlebot only knows "
                f"versions up to {latest}: it was written by a newer circlebot. Upgrade circlebot, or point "
                f"'database' in the config at another database."
            )
        for version in range(current + 1, latest + 1):
            description, statements = MIGRATIONS[version - 1]
            async with self.transaction() as conn:
                await self._lock_schema(conn)
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                rows = list(await conn.execute_fetchall("SELECT version FROM schema_version"))
                if rows and int(rows[0][0]) >= version:
                    continue  # another process migrated meanwhile
                log.info("migrating database to version %d: %s", version, description)
                for stmt in statements:
                    sql = self._statement(stmt)
                    if sql is not None:
                        await conn.execute(sql)
                await conn.execute("DELETE FROM schema_version")
                await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        await self._migrated()

    def _statement(self, stmt: str | Dialects) -> str | None:
        """A migration statement as this database writes it (None: nothing to do here)."""
        if isinstance(stmt, Dialects):
            return stmt.sqlite
        return stmt


_CACHED_STATEMENTS = 512  # about 5 MB with every batch size of the vote statement prepared (sqlite3's default: 128)


class SqliteDatabase(Database):
    """One aiosqlite connection in autocommit mode; writes go through `transaction()` (BEGIN IMMEDIATE)."""

    dialect = "sqlite"
    statement_errors = (sqlite3.Error,)

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def writes(self) -> int:
        return self.conn.total_changes  # SQLite's own count of the rows its connection changed

    @classmethod
    async def connect(cls, path: Path) -> SqliteDatabase:
        p = path
        if str(p) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            # room in the statement cache for the store's queries and the batch statements of each size
            conn = await aiosqlite.connect(p, isolation_level=None, cached_statements=_CACHED_STATEMENTS)
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
    async def transaction(self) -> AsyncIterator[Connection]:
        """A short write transaction; commits on success, rolls back on any error or cancellation, and when
        the COMMIT itself fails (disk full, an I/O error, a deferred constraint), so the connection never stays
        inside a failed transaction.

        BEGIN, COMMIT and ROLLBACK run to completion even if the task is cancelled meanwhile (the statement
        runs in aiosqlite's thread anyway); otherwise a cancelled task could leave the connection inside a
        transaction and every later write would fail."""
        async with self._write_lock:
            try:
                await _to_completion(self.conn.execute("BEGIN IMMEDIATE"))
                yield self.conn
                await _to_completion(self.conn.execute("COMMIT"))
            except BaseException:
                if self.conn.in_transaction:
                    await _to_completion(self.conn.execute("ROLLBACK"))
                raise

    async def write_runs(self, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """Run each (SQL, rows) `executemany`, in order, in one write transaction: all nothing, or all committed
        when it returns. BEGIN, the statements and COMMIT (or ROLLBACK) run as one job in aiosqlite's thread,
        one trip instead of one per statement (it runs to the end even if the caller is cancelled). aiosqlite
        has no public way to run a function in its thread: this uses its `_execute` and `_conn`, stable within
        the aiosqlite versions pyproject.toml allows."""
        in_thread = cast(Callable[[Callable[[], None]], Coroutine[Any, Any, None]], self.conn._execute)
        async with self._write_lock:
            await _to_completion(in_thread(self._write_job(runs)))

    def write_runs_soon(self, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]],
                        done: Callable[[BaseException | None], object]) -> bool:
        """Start what `write_runs` does without waiting for it (the batcher's path): the job goes to aiosqlite's
        thread at once, and `done` is called in the event loop with None once it is committed, or with the
        error once it is rolled back. No task, future or lock stands between the thread and `done`, so the
        writers of a batch are woken in the loop's next turn after the COMMIT.

        Starts nothing and returns False while a `transaction()` holds the connection (its statements are
        queued one at a time, so a job must not come between them): then await `write_runs`. This puts the job
        straight into aiosqlite's queue (`_tx`, as `_execute` does), within the aiosqlite versions pyproject.toml
        allows."""
        if self._write_lock.locked():
            return False
        conn = self.conn
        if not conn._running or conn._connection is None:
            raise ValueError("Connection closed")
        loop = asyncio.get_running_loop()
        job = self._write_job(runs)

        def run() -> None:
            error: BaseException | None = None
            try:
                job()
            except BaseException as e:  # handed to the loop, which raises it in the writers
                error = e
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(done, error)

        conn._tx.put_nowait((None, run))
        return True

    def _write_job(self, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> Callable[[], None]:
        """The function, run in aiosqlite's thread, that writes `runs` in one transaction (see `RowsInsert`)."""
        conn = self.conn

        # the usual batch (the votes of one moment): one statement of exactly its rows, its own transaction in
        # autocommit mode (a write statement takes the write lock as it starts, as BEGIN IMMEDIATE does),
        # committed in the same step, so SQLite's work runs without the GIL from the first row to the COMMIT
        first, first_rows = runs[0]
        one: tuple[str, int] | None = None  # that statement, and the width its rows must have
        if len(runs) == 1 and isinstance(first, RowsInsert) and 1 < len(first_rows) <= RowsInsert.ONE_STEP:
            one = first.many(len(first_rows)), first.width

        def job() -> None:
            raw = conn._conn
            # rows of the wrong width go the general way, which names the bad one
            single = one is not None and all(len(r) == one[1] for r in first_rows)
            if not single:
                raw.execute("BEGIN IMMEDIATE")
            try:
                if one is not None and single:
                    raw.execute(one[0], tuple(itertools.chain.from_iterable(first_rows)))
                else:
                    for sql, rows in runs:
                        if isinstance(sql, RowsInsert) and len(rows) > 1:
                            sql.write(raw, rows)
                        else:
                            raw.executemany(sql, rows)
                    raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:  # (one statement: SQLite leaves some failures, SQLITE_BUSY at commit, open)
                    raw.execute("ROLLBACK")
                raise

        return job

    @contextlib.asynccontextmanager
    async def triggers_off(self, conn: Connection) -> AsyncIterator[None]:
        """SQLite cannot switch a trigger off: each is dropped, and created again from its own text after."""
        triggers = [(str(r[0]), str(r[1])) for r in await conn.execute_fetchall(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid")]
        for name, _ in triggers:
            await conn.execute(f'DROP TRIGGER "{name}"')
        yield
        for _, sql in triggers:
            await conn.execute(sql)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """All rows, in one trip to aiosqlite's thread (execute + fetch + close would be three)."""
        return list(await self.conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row (queries here select by key or say LIMIT 1), in one trip."""
        rows = await self.conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def has_table(self, name: str) -> bool:
        return await self.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    async def tables(self) -> list[str]:
        rows = await self.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                   "ORDER BY rowid")
        return [str(r[0]) for r in rows]

    async def columns(self, table: str) -> list[tuple[str, str]]:
        rows = await self.fetchall("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", (table,))
        return [(str(r[0]), str(r[1]).lower()) for r in rows]


class RowsInsert(str):
    """An `INSERT ... VALUES (row) ...` statement that can also be written for many rows at once
    (`VALUES (row), (row), ...`), which SQLite runs about three times faster than one `executemany` step per
    row, and in one step of its thread rather than one per row. As a `str` it is the one-row statement: every
    other path (the one-by-one retry, another database) runs that.

    `row` writes its parameters as `?` (in order) or `?N` (numbered within the row; renumbered for each row of
    a many-row statement). SQLite applies the rows of one statement in order, each seeing the ones before it,
    as `executemany` does, so a write's rows keep their order. Many-row statements are made in a few fixed sizes
    (powers of two up to `CHUNK`), so SQLite's statement cache keeps them prepared."""

    CHUNK = 64  # rows in the largest statement: 64 x a few parameters, well under SQLite's limit
    ONE_STEP = 128  # a batch of up to this many rows is one statement of its exact size (SqliteDatabase)

    head: str
    row: str
    tail: str
    width: int
    _many: dict[int, str]

    def __new__(cls, head: str, row: str, tail: str = "") -> RowsInsert:
        self = super().__new__(cls, head + row + tail)
        self.head, self.row, self.tail = head, row, tail
        numbered = [int(n) for n in re.findall(r"\?(\d+)", row)]
        self.width = max(numbered) if numbered else row.count("?")
        self._many = {1: str(self)}
        return self

    def many(self, n: int) -> str:
        """The statement for `n` rows, their parameters one row after another."""
        sql = self._many.get(n)
        if sql is None:
            width = self.width

            def row(k: int) -> str:
                return re.sub(r"\?(\d+)", lambda m: f"?{int(m[1]) + k * width}", self.row)

            sql = self._many[n] = self.head + ", ".join(row(k) for k in range(n)) + self.tail
        return sql

    def write(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write `rows` in order, `CHUNK` at a time, the rest in smaller statements (in SQLite's thread)."""
        width = self.width
        if any(len(r) != width for r in rows):  # let SQLite name the bad row, as executemany does
            conn.executemany(self, rows)
            return
        chain = itertools.chain.from_iterable
        n, chunk = len(rows), self.CHUNK
        whole = n - n % chunk
        if whole:
            conn.executemany(self.many(chunk), [tuple(chain(rows[i : i + chunk])) for i in range(0, whole, chunk)])
        i = whole
        while i < n:
            size = 1 << ((n - i).bit_length() - 1)  # the largest power of two that fits
            conn.execute(self.many(size), tuple(chain(rows[i : i + size])))
            i += size


async def _to_completion(awaitable: Awaitable[Any]) -> Any:
    """Await something that must finish even if the caller is cancelled; the cancellation is re-raised after."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class WriteRejected(Exception):
    """Some rows of one multi-row write were refused by the database; its other rows are committed.

    `rejected` holds (index of the row in the write, the database's error) for each refused row."""

    def __init__(self, rejected: list[tuple[int, Exception]], total: int) -> None:
        self.rejected = rejected
        self.total = total
        index, error = rejected[0]
        super().__init__(f"{len(rejected)} of {total} rows were refused by the database (the others are "
                         f"committed); row {index}: {error}")


@dataclass(slots=True)
class Batch:
    """Writes gathered for one transaction: each write's SQL and rows, the future they all wait on (`done`),
    and once written, the error of each write that failed by index (`errors`; None: all committed).

    `done` is a plain future shared by every waiter (a future each, or one that ignores `cancel`, costs about
    0.4 us more a write). A waiting task that is cancelled cancels it for all: the waiters woken by another's
    cancellation see that their own task is not being cancelled and wait on `settled` (shielded) instead."""

    sqls: list[str]
    rows: list[Sequence[tuple[Any, ...]]]
    done: asyncio.Future[None]
    written: bool = False
    errors: dict[int, Exception] | None = None
    settled: asyncio.Future[None] | None = None

    def finish(self, errors: dict[int, Exception] | None) -> None:
        self.written = True
        self.errors = errors
        for fut in (self.done, self.settled):
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def until_written(self) -> None:
        """For a waiter whose `done` another waiter's cancellation cancelled: wait until the batch is written."""
        if not self.written:
            if self.settled is None:
                self.settled = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.settled)

    def raise_error(self, index: int) -> None:
        """Once written: raise the error of the batch's write `index`, if that write failed."""
        error = self.errors.get(index) if self.errors else None
        if error is not None:
            raise error


class WriteBatcher:
    """Gathers many small writes from concurrent writers into short shared transactions.

    `submit` returns only after the transaction holding the write has committed, so a caller acknowledges
    nothing that is not on disk; a write that fails raises in its own writer only (a failed batch is retried
    one write, and for a multi-row write one row, at a time, so one bad row does not fail the others). Writes
    keep their order; consecutive writes with the same SQL go through one `executemany`, and a batch is one
    job in the database's thread. A batch is never cancelled inside its transaction, and `stop` returns once
    everything queued is written.

    No task of its own runs the batches: the first write of a moment schedules the send of its batch for the
    end of that turn of the loop (so the other writers ready at that moment join it); the database's thread
    calls back once the batch is committed, which wakes its writers and schedules the next batch's send after
    them (their next writes join it). A turn of the loop per batch each way, and no task, lock or extra future
    between the COMMIT and the writers (`Database.write_runs_soon`). The slow paths (waiting for a
    `transaction()` to end, or a database without `write_runs_soon`; retrying a failed batch one write at a
    time) run in tracked tasks."""

    def __init__(self, db: Database, max_batch: int = 2000) -> None:
        self._db = db
        self._max = max_batch
        self._batches: list[Batch] = []  # waiting: the first is written next; writes join the last
        self._writing: Batch | None = None  # being written
        self._send_due = False  # a send of the next batch is scheduled
        self._idle: asyncio.Future[None] | None = None  # `stop` waits on it
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Nothing to start (no task runs the batches); kept so that owners pair `start` with `stop`."""

    async def stop(self) -> None:
        """Return once every write queued (before or while it waits) is committed or has its error; the batch
        in hand is never cancelled. The batcher takes writes after it as before."""
        while self._writing is not None or self._batches:
            if self._idle is None or self._idle.done():
                self._idle = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._idle)

    async def submit(self, sql: str, params: tuple[Any, ...]) -> None:
        await written(self.enqueue(sql, (params,)))

    def submit_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> Awaitable[None]:
        """Write several rows; the awaitable is done once all are committed, or raises `WriteRejected` naming
        the rows the database refused (the others are committed). A one-row write raises the database's own
        error."""
        return written(self.enqueue(sql, rows))

    def enqueue(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> Pending:
        """Queue a write without waiting for it (no I/O, no coroutine): `written(pending)` waits for its commit
        and raises its error. For the hottest path (a vote from a gateway) the awaiting caller's own coroutine
        waits on it, with no coroutine of the batcher's between it and the COMMIT; everyone else awaits
        `submit_many`."""
        batches = self._batches
        batch = batches[-1] if batches else None
        if batch is None or len(batch.sqls) >= self._max:
            batch = Batch([], [], asyncio.get_running_loop().create_future())
            batches.append(batch)
        index = len(batch.sqls)
        batch.sqls.append(sql)
        batch.rows.append(rows)
        if not self._send_due and self._writing is None:
            self._send_due = True
            batch.done.get_loop().call_soon(self._send)
        return batch, index

    def _send(self) -> None:
        """Start writing the next batch (at the end of a turn of the loop: every writer of that turn is in it)."""
        self._send_due = False
        if self._writing is not None or not self._batches:
            return
        batch = self._writing = self._batches.pop(0)
        runs = _runs(batch)
        try:
            started = self._db.write_runs_soon(runs, lambda error: self._written(batch, error))
        except Exception as e:  # the connection is closed: the batch's writers get the error
            self._finished(batch, dict.fromkeys(range(len(batch.sqls)), e))
            return
        if not started:  # a transaction() holds the connection, say: wait for it
            self._track(self._send_later(batch, runs))

    async def _send_later(self, batch: Batch, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """Write a batch the database could not start at once (a transaction() holds it; or its kind has no
        `write_runs_soon`)."""
        try:
            await self._db.write_runs(runs)
        except Exception as e:
            self._written(batch, e)
        except BaseException as e:  # the loop is closing: whether it committed is not known; told as failed
            self._finished(batch, dict.fromkeys(range(len(batch.sqls)), _as_error(e)))
            raise
        else:
            self._written(batch, None)

    def _written(self, batch: Batch, error: BaseException | None) -> None:
        """The database's thread is done with a batch (in the loop)."""
        if error is None:
            self._finished(batch, None)
        elif len(batch.sqls) == 1 and len(batch.rows[0]) == 1:
            self._finished(batch, {0: _as_error(error)})
        else:
            self._track(self._retry(batch))

    async def _retry(self, batch: Batch) -> None:
        errors: dict[int, Exception] | None = None
        try:
            errors = await _to_completion(self._write_one_by_one(batch))
        finally:
            self._finished(batch, errors if errors is not None else dict.fromkeys(
                range(len(batch.sqls)), RuntimeError("the bot stopped while retrying this write")))

    def _finished(self, batch: Batch, errors: dict[int, Exception] | None) -> None:
        """Wake the batch's writers, then (after them, so their next writes join it) send the next batch."""
        batch.finish(errors)
        self._writing = None
        if self._batches:
            if not self._send_due:
                self._send_due = True
                batch.done.get_loop().call_soon(self._send)
        elif self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name="circlebot-write-batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_one_by_one(self, batch: Batch) -> dict[int, Exception]:
        """Retry a failed batch in one transaction, each write (and each row of a write that fails) inside
        its own savepoint: the writes that fail are rolled back alone. Returns their errors by index."""
        errors: dict[int, Exception] = {}
        try:
            async with self._db.transaction() as conn:
                for i, (sql, rows) in enumerate(zip(batch.sqls, batch.rows, strict=True)):
                    error = await _isolated(conn, self._db.statement_errors, sql, rows)
                    if error is not None:
                        errors[i] = error
        except Exception as e:  # the transaction itself failed (the disk is full, say): nothing was written
            log.error("a batch of %d writes failed: %s", len(batch.sqls), e)
            return dict.fromkeys(range(len(batch.sqls)), e)
        if errors:
            log.warning("%d of %d writes in a batch were refused; the others are committed", len(errors),
                        len(batch.sqls))
        return errors


def cancelling() -> bool:
    """Whether the running task is being cancelled (else a CancelledError it sees came from a future shared
    with a task that is)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


Pending = tuple[Batch, int]
"""A write queued in a `WriteBatcher` (`enqueue`): its batch, and its place in the batch."""


async def written(pending: Pending) -> None:
    """Wait until a write queued with `WriteBatcher.enqueue` is committed; raise its error if it failed.

    A waiter whose task is not the one being cancelled (another waiter's cancellation cancelled the batch's
    shared future) goes on waiting until the batch is written; the write itself is made either way. (The
    router's vote path has these lines inlined: a coroutine less per vote.)"""
    batch = pending[0]
    try:
        await batch.done
    except asyncio.CancelledError:
        if cancelling():
            raise  # this writer is the one cancelled (its write is still made)
        await batch.until_written()
    if batch.errors:
        batch.raise_error(pending[1])


def _runs(batch: Batch) -> list[tuple[str, Sequence[tuple[Any, ...]]]]:
    """A batch's writes as (SQL, rows) runs: consecutive writes with the same SQL in one run, in order."""
    sqls, rows = batch.sqls, batch.rows
    first = sqls[0]
    if len(sqls) == 1:
        return [(first, rows[0])]
    if sqls.count(first) == len(sqls):  # the usual batch: one kind of write (votes, say)
        return [(first, list(itertools.chain.from_iterable(rows)))]
    return [(sql, list(itertools.chain.from_iterable(r for _, r in group)))
            for sql, group in itertools.groupby(zip(sqls, rows, strict=True), key=operator.itemgetter(0))]


def _as_error(error: BaseException) -> Exception:
    """What a writer is told when its batch failed with `error` (a cancellation, say, is not an Exception)."""
    return error if isinstance(error, Exception) else RuntimeError(f"the write was not made: {error!r}")


async def _isolated(conn: Connection, errors: tuple[type[Exception], ...], sql: str,
                    rows: Sequence[tuple[Any, ...]]) -> Exception | None:
    """Run one write inside a savepoint; on failure roll back to it and retry its rows one at a time.
    Returns the write's error, if any (`errors`: what the database raises for one refused statement). Raises if
    the database gave up the whole transaction."""
    await conn.execute("SAVEPOINT batch_write")
    try:
        await conn.executemany(sql, rows)
        return None
    except errors as e:
        _still_in_transaction(conn, e)
        await conn.execute("ROLLBACK TO batch_write")
        if len(rows) == 1:
            return e
        rejected: list[tuple[int, Exception]] = []
        for index, row in enumerate(rows):
            await conn.execute("SAVEPOINT batch_row")
            try:
                await conn.execute(sql, row)
            except errors as row_error:
                _still_in_transaction(conn, row_error)
                await conn.execute("ROLLBACK TO batch_row")
                rejected.append((index, row_error))
            await conn.execute("RELEASE batch_row")
        return WriteRejected(rejected, len(rows)) if rejected else None
    finally:
        if conn.in_transaction:
            await conn.execute("RELEASE batch_write")


def _still_in_transaction(conn: Connection, error: Exception) -> None:
    if not conn.in_transaction:  # some errors (SQLITE_FULL, an I/O error, a lost connection) end the transaction
        raise error

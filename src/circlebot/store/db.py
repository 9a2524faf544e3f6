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

    async def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A short write transaction; commits on success, rolls back on any error or cancellation."""
        raise NotImplementedError

    async def write_runs(self, runs: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """Run each (SQL, rows) `executemany`, in order, in one write transaction: all or nothing, committed
        when it returns, run to the end even if the caller is cancelled (the batcher's path)."""
        raise NotImplementedError

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

    @classmethod
    async def connect(cls, path: Path) -> SqliteDatabase:
        p = path
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
        """BEGIN, the statements and COMMIT (or ROLLBACK) run as one job in aiosqlite's thread, one trip instead
        of one per statement. aiosqlite has no public way to run a function in its thread: this uses its
        `_execute` and `_conn`, stable within the aiosqlite versions pyproject.toml allows."""
        conn = self.conn

        def job() -> None:
            raw = conn._conn
            raw.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in runs:
                    raw.executemany(sql, rows)
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise

        in_thread = cast(Callable[[Callable[[], None]], Coroutine[Any, Any, None]], conn._execute)
        async with self._write_lock:
            await _to_completion(in_thread(job))

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
class _Batch:
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


class WriteBatcher:
    """Gathers many small writes from concurrent writers into short shared transactions.

    `submit` returns only after the transaction holding the write has committed, so a caller acknowledges
    nothing that is not on disk; a write that fails raises in its own writer only (a failed batch is retried
    one write, and for a multi-row write one row, at a time, so one bad row does not fail the others). Writes
    keep their order; consecutive writes with the same SQL go through one `executemany`, and a batch is one
    trip to the database's thread (`Database.write_runs`). A batch is never cancelled inside its transaction,
    and `stop` writes everything queued before it returns.
    """

    def __init__(self, db: Database, max_batch: int = 2000) -> None:
        self._db = db
        self._max = max_batch
        self._batches: list[_Batch] = []  # the first is written next; writes join the last
        self._wake: asyncio.Future[None] | None = None  # the idle runner waits on it
        self._task: asyncio.Task[None] | None = None
        self._batching = False  # a runner is taking writes (started, not stopping)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._batching = True
            self._task = asyncio.create_task(self._run(), name="circlebot-write-batcher")

    async def stop(self) -> None:
        """Write everything queued (waiting for the batch in hand to commit), then stop batching: later
        writes are written at once, each batch of them in its own transaction."""
        self._batching = False
        self._wake_runner()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait([task])  # never cancelled from here: it ends once the queue is empty
        await _to_completion(self._drain())  # whatever a runner cancelled from outside left behind

    async def submit(self, sql: str, params: tuple[Any, ...]) -> None:
        await self.submit_many(sql, (params,))

    async def submit_many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write several rows; returns once all are committed, or raises `WriteRejected` naming the rows the
        database refused (the others are committed). A one-row write raises the database's own error."""
        batches = self._batches
        batch = batches[-1] if batches else None
        if batch is None or len(batch.sqls) >= self._max:
            batch = _Batch([], [], asyncio.get_running_loop().create_future())
            batches.append(batch)
        index = len(batch.sqls)
        batch.sqls.append(sql)
        batch.rows.append(rows)
        if self._batching:
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)
        elif self._task is None or self._task.done():  # not started, or stopped: write at once
            await _to_completion(self._drain())
        try:
            await batch.done
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this writer is the one cancelled (its write is still made)
            await batch.until_written()
        errors = batch.errors
        if errors:
            error = errors.get(index)
            if error is not None:
                raise error

    def _wake_runner(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._batches:
                if not self._batching:
                    return
                # woken by the first write of a moment; the other writers ready at that moment run before
                # this task resumes, so they join the same batch
                self._wake = loop.create_future()
                await self._wake
                continue
            batch = self._batches.pop(0)
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                # cancelled from outside (the loop is closing): the batch's transaction ran to its end, but
                # whether it committed is not known here, so write it again (writes are idempotent) with
                # whatever is queued, to completion, then stop
                if not batch.written:
                    self._batches.insert(0, batch)
                await _to_completion(self._drain())
                raise

    async def _drain(self) -> None:
        while self._batches:
            await self._write(self._batches.pop(0))

    async def _write(self, batch: _Batch) -> None:
        sqls, rows = batch.sqls, batch.rows
        first = sqls[0]
        runs: list[tuple[str, Sequence[tuple[Any, ...]]]]
        if len(sqls) == 1:
            runs = [(first, rows[0])]
        elif sqls.count(first) == len(sqls):  # the usual batch: one kind of write (votes, say)
            runs = [(first, list(itertools.chain.from_iterable(rows)))]
        else:
            runs = [(sql, list(itertools.chain.from_iterable(r for _, r in group)))
                    for sql, group in itertools.groupby(zip(sqls, rows, strict=True), key=operator.itemgetter(0))]
        try:
            await self._db.write_runs(runs)
        except Exception as e:
            if len(sqls) == 1 and len(rows[0]) == 1:
                batch.finish({0: e})
            else:
                batch.finish(await self._write_one_by_one(batch))
            return
        batch.finish(None)

    async def _write_one_by_one(self, batch: _Batch) -> dict[int, Exception]:
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

"""A real PostgreSQL server on 127.0.0.1 for circlebot's store tests, started once per test run.

The module is both a library and a pytest plugin (``pytest_plugins = ["pg_harness"]``); it provides:

* ``postgres`` (session scope): one :class:`PostgresServer`, started the first time a test asks for it.
* ``db_kind`` (function scope): "sqlite" unless a test parametrises it (``BOTH_DATABASES``), and ``database``:
  what ``database =`` in the config says for that kind, a fresh SQLite file or a fresh schema of the server
  (``postgresql://circlebot@127.0.0.1:PORT/postgres?search_path=t_N``), so each test starts empty.

The server binaries come from the pgserver wheel (PostgreSQL 16, installed by ``make test``), so a machine
with nothing but Python runs these tests; ``CIRCLEBOT_TEST_PG_BIN`` names another directory of binaries, and
a system PostgreSQL is used when pgserver's cannot be had. PostgreSQL refuses to run as root: a test run as
root (CI, containers) starts the server as the unprivileged user ``nobody``, its data in a directory of its
own. The server trades durability for speed (fsync off): it holds only test data.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from synapse_harness import _death_signal_preexec

__all__ = ["BOTH_DATABASES", "PostgresServer", "find_binaries", "in_transaction", "other_connection"]

BOTH_DATABASES = pytest.mark.parametrize("db_kind", ["sqlite", "postgresql"])
START_TIMEOUT = 60.0
USER = "circlebot"


def find_binaries() -> Path:
    """The directory holding initdb and postgres: CIRCLEBOT_TEST_PG_BIN, pgserver's, or a system PostgreSQL."""
    named = os.environ.get("CIRCLEBOT_TEST_PG_BIN")
    if named:
        return Path(named)
    spec = importlib.util.find_spec("pgserver")  # found, not imported: importing it sets up its own servers
    if spec is not None and spec.submodule_search_locations:
        wheel = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (wheel / "postgres").exists():
            return wheel
    on_path = shutil.which("postgres") or shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if system:
        return system[-1].parent
    raise RuntimeError("no PostgreSQL server binaries: install the test extra (pip install -e '.[test]', which "
                       "brings pgserver), or set CIRCLEBOT_TEST_PG_BIN to a directory holding initdb and postgres")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 (trust authentication, user ``circlebot``), data in a temporary
    directory removed at stop."""

    def __init__(self, binaries: Path | None = None, *, durable: bool = False) -> None:
        """`durable`: commits reach the disk (fsync, synchronous commit) as on a real deployment; tests
        leave it off for speed."""
        self.binaries = binaries or find_binaries()
        self.durable = durable
        self.port = 0
        self.data: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0
        self._schemas = itertools.count(1)
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            import pwd

            try:
                entry = pwd.getpwnam("nobody")
            except KeyError:
                raise RuntimeError("running as root, PostgreSQL needs an unprivileged user to run as; there is no "
                                   "'nobody' here: run the tests as a plain user") from None
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def schema_url(self, schema: str) -> str:
        return f"{self.url}?search_path={schema}"

    def start(self) -> None:
        began = time.monotonic()
        self.data = Path(tempfile.mkdtemp(prefix="circlebot-pg-"))
        if self._as:
            os.chown(self.data, self._as["user"], self._as["group"])
        pgdata = self.data / "data"
        log = self.data / "server.log"
        self._run([str(self.binaries / "initdb"), "-D", str(pgdata), "-U", USER, "--auth=trust", "--encoding=UTF8",
                   "--no-locale", "--no-sync"])
        self.port = _free_port()
        with log.open("wb") as out:
            if self._as:
                os.chown(log, self._as["user"], self._as["group"])
            self.process = subprocess.Popen(
                [str(self.binaries / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.port),
                 "-k", str(self.data), "-c", "max_connections=300", "-c", "shared_buffers=64MB",
                 *([] if self.durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                            "-c", "full_page_writes=off"])],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_death_signal_preexec(), **self._as)  # a test run killed outright takes it along
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start:\n{log.read_text(errors='replace')[-3000:]}")
            ready = subprocess.run([str(self.binaries / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                                    str(self.port), "-U", USER], check=False)
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start in {START_TIMEOUT:.0f} s:\n"
                                   f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - began

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, capture_output=True, check=False, stdin=subprocess.DEVNULL, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): "
                               f"{(done.stdout + done.stderr).decode(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self.data is not None:
            shutil.rmtree(self.data, ignore_errors=True)
            self.data = None

    async def fresh_schema(self) -> str:
        """A new empty schema; returns the URL of the database with that schema first on the search path."""
        name = f"t_{os.getpid()}_{next(self._schemas)}"
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(f"CREATE SCHEMA {name}")
        finally:
            await conn.close()
        return self.schema_url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db_kind() -> str:
    """Which database a test's bot runs on; test modules that cover both parametrise it (BOTH_DATABASES)."""
    return "sqlite"


@pytest.fixture
async def database(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """What `database =` says in the test's config: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if db_kind == "sqlite":
        yield str(tmp_path / "circlebot.sqlite3")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield await server.fresh_schema()


async def other_connection(database: str, sql: str) -> Any:
    """The first value `sql` reads (or None) on a connection of its own to the test's database: what another
    process would see, so only what is committed."""
    if database.startswith("postgresql://"):
        conn = await asyncpg.connect(database)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()
    import sqlite3

    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as raw:
        row = raw.execute(sql).fetchone()
        return row[0] if row else None


def in_transaction(db: Any) -> bool:
    """Whether the store's database has a transaction open now (SQLite: its one connection; PostgreSQL: a
    pooled connection not handed back)."""
    pool = getattr(db, "pool", None)
    if pool is not None:
        return bool(pool.get_size() - pool.get_idle_size())
    return bool(db.conn.in_transaction)

"""Shared fixtures: settings for a test circle, a real database (a SQLite file, or a schema of the PostgreSQL
server pg_harness starts), a fake clock, and the core driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from circlebot.app import App
from circlebot.config import Settings, validate
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from drivers import CoreDriver, FakeClock, RecordingAdapter

pytest_plugins = ["synapse_harness", "pg_harness"]

REPO = Path(__file__).resolve().parent.parent
SEED = "bolivia-2003-first-balance-sheet"
START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday; the circle meets on Thursdays at 19:00


@pytest.fixture(autouse=True, scope="session")
def _cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The readings load cache of every test (and of the processes tests start) stays in this run's tmp."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield


def circle_config(**overrides: Any) -> dict[str, Any]:
    circle: dict[str, Any] = {
        "slug": "study",
        "name": "Test study circle",
        "timezone": "Europe/London",
        "meets": {"weekdays": ["thursday"], "time": "19:00", "duration": "90m"},
        "organisers": {"console": ["olga"]},
        "syllabus": [SEED],
    }
    circle.update(overrides)
    return circle


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A test circle's settings; `database` (a SQLite path or a PostgreSQL URL) defaults to a file in tmp_path."""
    data: dict[str, Any] = {
        "database": str(tmp_path / "circlebot.sqlite3"),
        "readings": str(REPO / "readings"),
        "circles": [circle_config()],
    }
    data.update(overrides)
    return validate(data, tmp_path / "circlebot.toml")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    """The test circle on the test's database (SQLite, or PostgreSQL where the test parametrises db_kind)."""
    return make_settings(tmp_path, database=database)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    db = await Database.open(settings.database)
    s = Store(db)
    s.batcher.start()
    try:
        yield s
    finally:
        await s.batcher.stop()
        await db.close()


@pytest.fixture
async def core(settings: Settings, store: Store, clock: FakeClock) -> CoreDriver:
    app = App(settings, store, load_collection(settings.readings), clock)
    adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
    app.add_adapter(adapter)
    return CoreDriver(app, adapter, clock, settings.circles[0].slug)

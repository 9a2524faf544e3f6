"""Shared by the web tests: a bot with its web app behind aiohttp's test client, readings made for a test, and
feeds parsed back with icalendar."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar

from circlebot.app import App
from circlebot.config import Settings
from circlebot.core.timeline import Timeline
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import REPO, SEED
from drivers import CoreDriver, FakeClock, RecordingAdapter


def make_readings(directory: Path, titles: list[str], questions: list[str] | None = None) -> list[str]:
    """Copies of the seed reading under new slugs (`reading-01` ...) with the given titles; their slugs."""
    directory.mkdir(parents=True, exist_ok=True)
    seed = (REPO / "readings" / f"{SEED}.md").read_text(encoding="utf-8")
    slugs = []
    for i, title in enumerate(titles, 1):
        slug = f"reading-{i:02d}"
        text = re.sub(r'^title = ".*"$', lambda _m, t=title: "title = " + _toml(t), seed, count=1, flags=re.M)
        if questions is not None:
            text = re.sub(r"^questions = \[\n(?:.*\n)*?\]\n", lambda _m: "questions = [" + ", ".join(
                _toml(q) for q in questions) + "]\n", text, count=1, flags=re.M)
        (directory / f"{slug}.md").write_text(text, encoding="utf-8")
        slugs.append(slug)
    return slugs


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class WebBot:
    """A bot with the recording adapter, its timeline driven by the fake clock, and a test client on its web app."""

    def __init__(self, app: App, adapter: RecordingAdapter, client: TestClient[Any, Any], clock: FakeClock,
                 db: Database) -> None:
        self.app = app
        self.adapter = adapter
        self.client = client
        self.clock = clock
        self.db = db
        self.driver = CoreDriver(app, adapter, clock, app.settings.circles[0].slug)

    @property
    def slug(self) -> str:
        return self.app.settings.circles[0].slug

    def path(self, url: str | None) -> str:
        """The path of one of the server's own addresses."""
        assert url is not None and self.app.web is not None and url.startswith(self.app.web.url)
        return url[len(self.app.web.url):]

    async def feed(self, url: str | None = None) -> Calendar:
        assert self.app.web is not None
        resp = await self.client.get(self.path(url or self.app.web.feed_url(self.slug)))
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/calendar"
        return Calendar.from_ical(await resp.read())

    async def close(self) -> None:
        await self.client.close()
        await self.app.store.batcher.stop()
        await self.db.close()


async def start_web_bot(settings: Settings, clock: FakeClock) -> WebBot:
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), clock)
    adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
    app.add_adapter(adapter)
    app.timeline = Timeline(app)
    await app.timeline.start()
    assert app.web is not None
    await app.web.prepare()
    client: TestClient[Any, Any] = TestClient(TestServer(app.web.app, host="127.0.0.1"))
    await client.start_server()
    return WebBot(app, adapter, client, clock, db)


def events(cal: Calendar) -> list[Any]:
    return list(cal.walk("VEVENT"))


def local(event: Any, key: str = "dtstart") -> datetime:
    value: datetime = event.decoded(key)
    return value

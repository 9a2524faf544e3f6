"""The web server in the bot: `/healthz`, `/readyz`, `/metrics`, started and stopped by `App.run`, through
aiohttp's test client (and, for `App.run`, a real loopback socket)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from circlebot.app import App
from circlebot.config import Settings
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from drivers import FakeClock, RecordingAdapter
from web_helpers import WebBot, start_web_bot


def web_settings(tmp_path: Path, **web: Any) -> Settings:
    return make_settings(tmp_path, web={"port": 0, **web})


@pytest.fixture
async def webbot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[WebBot]:
    bot = await start_web_bot(web_settings(tmp_path), clock)
    try:
        yield bot
    finally:
        await bot.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_healthz_answers(webbot: WebBot) -> None:
    resp = await webbot.client.get("/healthz")
    assert resp.status == 200
    assert await resp.text() == "ok\n"


async def test_readyz_names_the_platform_that_is_not_connected_and_a_database_that_takes_no_write(
        webbot: WebBot) -> None:
    resp = await webbot.client.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert "console: connected" in await resp.text()

    webbot.adapter.ready = asyncio.Event()  # a platform still connecting
    resp = await webbot.client.get("/readyz")
    assert resp.status == 503
    assert "console: not connected" in await resp.text()
    webbot.adapter.ready.set()

    await webbot.app.store.db.conn.execute("PRAGMA query_only = ON")  # the database refuses writes
    try:
        resp = await webbot.client.get("/readyz")
        text = await resp.text()
        assert resp.status == 503
        assert "database: not writable" in text
        assert "console" not in text
    finally:
        await webbot.app.store.db.conn.execute("PRAGMA query_only = OFF")
    assert (await webbot.client.get("/readyz")).status == 200


async def test_metrics_count_commands_errors_posts_votes_and_lateness(webbot: WebBot) -> None:
    d = webbot.driver
    await d.say("alice", "rsvp yes")
    await d.say("alice", "rsvp perhaps")  # a usage error
    await d.say("alice", "unschedule 1")  # organisers only
    await d.say("olga", 'poll "Which day?" "Mon" "Wed"')
    await d.say("alice", "vote 1 1")
    await d.vote("bob", 1, [2])
    webbot.clock.advance(timedelta(hours=32))  # the reminder falls due: sent by the timeline
    assert webbot.app.timeline is not None
    await webbot.app.timeline.tick()
    resp = await webbot.client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    got = samples(await resp.text())
    assert got[("circlebot_commands_total", (("command", "rsvp"), ("outcome", "ok")))] == 1
    assert got[("circlebot_commands_total", (("command", "rsvp"), ("outcome", "usage")))] == 1
    assert got[("circlebot_commands_total", (("command", "unschedule"), ("outcome", "refused")))] == 1
    assert got[("circlebot_commands_total", (("command", "poll"), ("outcome", "ok")))] == 1
    assert got[("circlebot_votes_stored_total", ())] == 2
    assert got[("circlebot_posts_total", (("kind", "assignment"), ("outcome", "sent")))] == 1
    assert got[("circlebot_posts_total", (("kind", "reminder"), ("outcome", "sent")))] == 1
    assert got[("circlebot_platform_reconnects_total", (("platform", "console"),))] == 0
    assert got[("circlebot_platform_connected", (("platform", "console"),))] == 1
    assert got.get(("circlebot_errors_total", (("where", "command"),)), 0) == 0


async def test_a_failed_send_and_a_miss_are_counted(webbot: WebBot) -> None:
    webbot.adapter.down = True
    webbot.clock.advance(timedelta(hours=32))
    assert webbot.app.timeline is not None
    await webbot.app.timeline.tick()  # the reminder fails (retried later)
    got = samples(await (await webbot.client.get("/metrics")).text())
    assert got[("circlebot_posts_total", (("kind", "reminder"), ("outcome", "failed")))] >= 1
    webbot.clock.advance(timedelta(days=3))  # past the meeting: what was not sent is missed
    await webbot.app.timeline.tick()
    got = samples(await (await webbot.client.get("/metrics")).text())
    assert got[("circlebot_posts_total", (("kind", "reminder"), ("outcome", "missed")))] >= 1


async def test_scheduler_lateness_is_how_late_a_post_job_starts(webbot: WebBot) -> None:
    timeline = webbot.app.timeline
    assert timeline is not None
    job = next(j for j in await timeline.current_plan() if j.kind.value == "reminder")
    webbot.clock.set(job.due_at + timedelta(milliseconds=300))  # the scheduler ran the job 0.3 s late
    await timeline._fire(job)
    got = samples(await (await webbot.client.get("/metrics")).text())
    assert got[("circlebot_scheduler_lateness_seconds_count", ())] == 1
    assert got[("circlebot_scheduler_lateness_seconds_sum", ())] == pytest.approx(0.3)
    assert got[("circlebot_scheduler_lateness_seconds_bucket", (("le", "0.25"),))] == 0
    assert got[("circlebot_scheduler_lateness_seconds_bucket", (("le", "0.5"),))] == 1
    assert got[("circlebot_posts_total", (("kind", "reminder"), ("outcome", "sent")))] == 1


async def test_each_bot_counts_in_its_own_registry(tmp_path: Path, clock: FakeClock) -> None:
    first = await start_web_bot(web_settings(tmp_path / "a"), clock)
    second = await start_web_bot(web_settings(tmp_path / "b"), clock)
    try:
        await first.driver.say("alice", "circle")
        got1 = samples(await (await first.client.get("/metrics")).text())
        got2 = samples(await (await second.client.get("/metrics")).text())
        assert got1[("circlebot_commands_total", (("command", "circle"), ("outcome", "ok")))] == 1
        assert ("circlebot_commands_total", (("command", "circle"), ("outcome", "ok"))) not in got2
    finally:
        for bot in (first, second):
            await bot.close()


async def test_app_run_serves_on_a_free_loopback_port_and_stops_with_the_bot(tmp_path: Path, clock: FakeClock) -> None:
    settings = web_settings(tmp_path)
    db = await Database.open(settings.database)
    app = App(settings, Store(db), load_collection(settings.readings), clock)
    app.add_adapter(RecordingAdapter(settings.zone_of(settings.circles[0])))
    running = asyncio.create_task(app.run())
    try:
        assert app.web is not None
        for _ in range(500):
            if app.web.port:
                break
            await asyncio.sleep(0.01)
        assert app.web.port, "the web server did not start"
        url = app.web.url
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as resp:
            assert resp.status == 200
        app.stop()  # what SIGTERM does
        await asyncio.wait_for(running, 10)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(url + "/healthz")
    finally:
        if not running.done():
            running.cancel()
        await db.close()


def test_the_web_section_is_checked(tmp_path: Path) -> None:
    from circlebot.config import ConfigError, validate

    with pytest.raises(ConfigError) as e:
        validate({"readings": "r", "circles": [circle_config()],
                  "web": {"port": 70000, "base_url": "ftp://x", "listne": "x"}}, tmp_path / "c.toml")
    text = "\n".join(e.value.problems)
    assert "web.port" in text and "web.base_url" in text and "web.listne: unknown key" in text
    off = make_settings(tmp_path, web={"enabled": False})
    assert off.web is not None and not off.web.enabled

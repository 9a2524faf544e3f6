"""Benchmark: the web server under load (run on demand; not a test).

    .venv/bin/python bench/web_bench.py [--seconds 10] [--clients 100]

A circle with 500 meetings (half past, with check-ins; half coming, with RSVPs). Its calendar feed and its page
are each fetched by 100 concurrent loopback clients for 10 s (a separate process, so the clients do not share the
bot's event loop), and so is the floor: aiohttp serving a static file of the same size (`add_static`, the same
bytes), in the same run, with the same clients. p50 / p99 latency and requests per second of each; target
(issue 13): the feed and the page within 2x the floor's (render once, serve from memory until something changes).
Meanwhile the bot answers a command (`upcoming`) every 50 ms through its router: its latency under the load,
beside the same command with no load.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from core_bench import NullAdapter  # noqa: E402

from circlebot.app import App  # noqa: E402
from circlebot.config import validate  # noqa: E402
from circlebot.core.domain import ChannelRef, Invocation, UserRef  # noqa: E402
from circlebot.readings import load_collection  # noqa: E402
from circlebot.store import Database, Store  # noqa: E402
from circlebot.store.queries import ts  # noqa: E402

SEED = "bolivia-2003-first-balance-sheet"
MEETINGS = 500
MEMBERS = 40


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(url: str, clients: int, seconds: float) -> tuple[list[float], int, int, int]:
    """In a process of its own: `clients` concurrent GETs of `url`, each again as soon as it is answered, for
    `seconds`; (latencies in s, answers, errors, bytes of one answer)."""

    async def run() -> tuple[list[float], int, int, int]:
        latencies: list[float] = []
        errors = 0
        size = 0
        stop = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=clients, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                nonlocal errors, size
                while time.perf_counter() < stop:
                    start = time.perf_counter()
                    try:
                        async with session.get(url) as resp:
                            body = await resp.read()
                            if resp.status != 200:
                                errors += 1
                                continue
                            size = len(body)
                    except aiohttp.ClientError:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - start)

            await asyncio.gather(*(client() for _ in range(clients)))
        return latencies, len(latencies), errors, size

    return asyncio.run(run())


async def seed(store: Store, slug: str, now: datetime) -> None:
    """500 weekly meetings around now, members, their RSVPs to the coming ones and check-ins at the past ones."""
    first = (now - timedelta(weeks=MEETINGS // 2)).replace(hour=19, minute=0, second=0, microsecond=0)
    starts = [first + timedelta(weeks=i) for i in range(MEETINGS)]
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO meetings (circle, starts_at, ends_at, reading, created_at, modified_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(slug, ts(s), ts(s + timedelta(minutes=90)), SEED, ts(first), ts(first)) for s in starts])
        await conn.executemany("INSERT INTO members (platform, user_id, name) VALUES ('console', ?, ?)",
                               [(f"m{i}", f"m{i}") for i in range(MEMBERS)])
        await conn.executemany(
            "INSERT INTO checkins (meeting_id, member_id, at) VALUES (?, ?, ?)",
            [(mid, member, ts(starts[mid - 1])) for mid in range(1, MEETINGS // 2 + 1)
             for member in range(1, MEMBERS + 1) if (mid * 7 + member) % 3])
        await conn.executemany(
            "INSERT INTO rsvps (meeting_id, member_id, answer, at) VALUES (?, ?, ?, ?)",
            [(mid, member, ("yes", "maybe", "no")[(mid + member) % 3], ts(first))
             for mid in range(MEETINGS // 2 + 1, MEETINGS + 1) for member in range(1, MEMBERS + 1)])


class Probe:
    """A command every 50 ms through the bot's router, its latency recorded."""

    def __init__(self, app: App, adapter: NullAdapter) -> None:
        self.app = app
        self.adapter = adapter
        self.latencies: list[float] = []

    async def run(self, seconds: float) -> list[float]:
        out: list[float] = []
        stop = time.perf_counter() + seconds
        channel = ChannelRef("console", "bench")
        while time.perf_counter() < stop:
            inv = Invocation(UserRef("console", "prober", "prober"), channel, datetime.now(UTC), text="upcoming")
            before = self.adapter.replies
            start = time.perf_counter()
            await self.app.dispatch(inv)
            out.append(time.perf_counter() - start)
            assert self.adapter.replies == before + 1
            await asyncio.sleep(0.05)
        return out


def line(name: str, lat: list[float], count: int, errors: int, seconds: float) -> str:
    return (f"  {name:<28} p50 {_pct(lat, 0.5) * 1e3:7.2f} ms  p99 {_pct(lat, 0.99) * 1e3:7.2f} ms  "
            f"{count / seconds:8.0f} req/s  ({errors} errors)")


async def main(seconds: float, clients: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="web-bench-"))
    settings = validate({
        "database": str(tmp / "bench.sqlite3"), "readings": str(REPO / "readings"),
        "web": {"listen": "127.0.0.1", "port": 0},
        "circles": [{"slug": "bench", "name": "Bench circle", "timezone": "Europe/London",
                     "meets": {"weekdays": ["thursday"], "time": "19:00"}, "where": {"console": True}}],
    }, tmp / "bench.toml")
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings))
    adapter = NullAdapter()
    app.add_adapter(adapter)
    await seed(store, "bench", datetime.now(UTC))
    assert app.web is not None
    await app.web.start()
    probe = Probe(app, adapter)
    floor_runner: web.AppRunner | None = None
    ctx = multiprocessing.get_context("spawn")
    try:
        feed_url, page_url = app.web.feed_url("bench"), app.web.page_url("bench")
        assert feed_url and page_url
        await probe.run(0.1)  # the prober's first command makes it a member (a write: renderings start after it)
        renders = []
        async with aiohttp.ClientSession() as session:
            for url in (feed_url, page_url):
                start = time.perf_counter()
                async with session.get(url) as resp:
                    renders.append((await resp.read(), time.perf_counter() - start))
        (feed, feed_render), (page, page_render) = renders
        static = tmp / "static"
        static.mkdir()
        (static / "feed.ics").write_bytes(feed)
        (static / "page.html").write_bytes(page)
        floor = web.Application()
        floor.router.add_static("/static", static)
        floor_runner = web.AppRunner(floor, access_log=None)
        await floor_runner.setup()
        site = web.TCPSite(floor_runner, "127.0.0.1", 0)
        await site.start()
        floor_base = f"http://127.0.0.1:{floor_runner.addresses[0][1]}/static"
        idle = await probe.run(2.0)
        print(f"web_bench: {MEETINGS} meetings; feed {len(feed):,} bytes (rendered in {feed_render * 1e3:.0f} ms), "
              f"page {len(page):,} bytes (rendered in {page_render * 1e3:.0f} ms); {clients} concurrent loopback "
              f"clients for {seconds:g} s each")
        print(f"  command `upcoming`, no load: p50 {_pct(idle, 0.5) * 1e3:.2f} ms, p99 {_pct(idle, 0.99) * 1e3:.2f} ms")
        results: dict[str, tuple[list[float], int, int, int]] = {}
        probes: dict[str, list[float]] = {}
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            await loop.run_in_executor(pool, load, floor_base + "/feed.ics", 2, 0.5)  # start the process
            for name, url in (("floor: static, feed's size", floor_base + "/feed.ics"), ("feed", feed_url),
                              ("floor: static, page's size", floor_base + "/page.html"), ("page", page_url)):
                running = loop.run_in_executor(pool, load, url, clients, seconds)
                probes[name] = await probe.run(seconds)
                results[name] = await running
        ok = True
        for floor_name, name in (("floor: static, feed's size", "feed"), ("floor: static, page's size", "page")):
            for n in (floor_name, name):
                lat, count, errors, size = results[n]
                print(line(n, lat, count, errors, seconds) + f"  {size:,} bytes")
            f_lat, f_count = results[floor_name][0], results[floor_name][1]
            lat, count = results[name][0], results[name][1]
            p50, p99 = _pct(lat, 0.5) / _pct(f_lat, 0.5), _pct(lat, 0.99) / _pct(f_lat, 0.99)
            rate = f_count / max(count, 1)
            met = p50 <= 2 and p99 <= 2 and rate <= 2
            ok = ok and met
            print(f"  {name}: p50 {p50:.2f}x, p99 {p99:.2f}x, req/s {1 / rate:.2f}x the floor "
                  f"({'within' if met else 'NOT within'} the 2x target)")
            cmd = probes[name]
            print(f"  command `upcoming` during the {name} load: p50 {_pct(cmd, 0.5) * 1e3:.2f} ms, "
                  f"p99 {_pct(cmd, 0.99) * 1e3:.2f} ms, max {max(cmd) * 1e3:.2f} ms ({len(cmd)} commands; "
                  f"idle p50 {statistics.median(idle) * 1e3:.2f} ms)")
        return 0 if ok else 1
    finally:
        if floor_runner is not None:
            await floor_runner.cleanup()
        await app.web.stop()
        await store.batcher.stop()
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=100)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.clients)))

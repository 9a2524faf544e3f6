"""Benchmark: the timeline at scale (run on demand; not a test).

    .venv/bin/python bench/timeline_bench.py

1. Plan and load: 10,000 circles meeting weekly (spread over the week), one stored meeting each; time and peak
   RSS of reading the meetings, planning every post and loading the next 24 hours of jobs into APScheduler.
   Targets (issue 9): <= 0.5 s, and peak RSS <= 100 MB over the RSS before the step.
2. Firing: 1,000 meetings whose reminders fall due in the same second, with the real AsyncIOScheduler and
   clock; lateness of each job's start (target p99 <= 50 ms), and of each post being sent and its delivery
   committed (target p99 <= 250 ms; claims in one transaction, sends concurrent, marks batched), and how many
   were sent twice (must be 0).
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # noqa: E402
from core_bench import NullAdapter  # noqa: E402

from circlebot.app import App, settle_heap  # noqa: E402
from circlebot.config import validate  # noqa: E402
from circlebot.core.clock import SystemClock  # noqa: E402
from circlebot.core.domain import ChannelRef, MessageRef, Post  # noqa: E402
from circlebot.core.timeline import Job, Timeline  # noqa: E402
from circlebot.readings import load_collection  # noqa: E402
from circlebot.store import Database, Store  # noqa: E402
from circlebot.store.queries import ts  # noqa: E402

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SEED = "bolivia-2003-first-balance-sheet"


def settings_for(tmp: Path, n: int, name: str):  # type: ignore[no-untyped-def]
    circles = [{"slug": f"c{i}", "name": f"Circle {i}", "timezone": "Europe/London",
                "meets": {"weekdays": [DAYS[i % 7]], "time": f"{8 + i % 12:02d}:{(i * 7) % 60:02d}"},
                "where": {"console": True}} for i in range(n)]
    return validate({"database": str(tmp / f"{name}.sqlite3"), "readings": str(REPO / "readings"),
                     "circles": circles}, tmp / "t.toml")


async def seed_meetings(store: Store, starts: list[tuple[str, datetime]]) -> None:
    async with store.db.transaction() as conn:
        await conn.executemany(
            "INSERT INTO meetings (circle, starts_at, ends_at, reading, created_at) VALUES (?, ?, ?, ?, ?)",
            [(c, ts(s), ts(s + timedelta(minutes=90)), SEED, ts(s)) for c, s in starts],
        )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def plan_and_load(tmp: Path) -> None:
    from circlebot.core.recurrence import next_occurrence

    n = 10_000
    settings = settings_for(tmp, n, "plan")
    now = datetime.now(UTC)
    db = await Database.open(settings.database)
    store = Store(db)
    app = App(settings, store, load_collection(settings.readings), SystemClock())
    await seed_meetings(store, [(c.slug, next_occurrence(c, settings.zone_of(c), now + timedelta(hours=1)))
                                for c in settings.circles])
    scheduler = AsyncIOScheduler(timezone=UTC)
    timeline = Timeline(app, scheduler)
    before = rss_mb()
    start = time.perf_counter()
    jobs = await timeline.current_plan()
    planned = time.perf_counter() - start
    await timeline._load_jobs(jobs, None)
    took = time.perf_counter() - start
    loaded = len(scheduler.get_jobs())
    start = time.perf_counter()
    for circle in settings.circles[:100]:  # an organiser's change re-plans that circle only
        await timeline.rebuild(circle)
    per_change = (time.perf_counter() - start) / 100
    await db.close()
    print(f"plan and load: {n:,} circles, {len(jobs):,} posts planned, {loaded:,} jobs in the next 24 h loaded")
    print(f"  {took:.2f} s (plan {planned:.2f} s, load {took - planned:.2f} s); peak RSS {rss_mb():.0f} MB "
          f"({before:.0f} MB before the step, +{rss_mb() - before:.0f} MB); targets <= 0.5 s, <= +100 MB")
    print(f"  re-planning after a change in one circle: {per_change * 1000:.1f} ms")


class TimedAdapter(NullAdapter):
    """Takes every post at once and remembers, per idempotency key, how often it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: dict[str | None, int] = {}

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        self.sends[key] = self.sends.get(key, 0) + 1
        return MessageRef(where, str(len(self.sends)))


async def firing(tmp: Path) -> None:
    n = 1_000
    settings = settings_for(tmp, n, "fire")
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), SystemClock())
    adapter = TimedAdapter()
    app.add_adapter(adapter)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    # meetings starting 24 h after `due`: every reminder falls due at the same second
    await seed_meetings(store, [(f"c{i}", due + timedelta(hours=24)) for i in range(n)])
    scheduler = AsyncIOScheduler(timezone=UTC)
    timeline = Timeline(app, scheduler)
    started: list[float] = []
    recorded: dict[str, float] = {}
    all_done = asyncio.Event()
    fire, finish = timeline._fire, store.finish_deliveries

    fired: list[float] = []

    async def timed_fire(job: Job) -> None:
        started.append(time.time() - job.due_at.timestamp())
        await fire(job)
        fired.append(time.time())
        if len(fired) == n and len(recorded) == n:
            all_done.set()

    async def timed_finish(rows: Sequence[tuple[str, ChannelRef, str, datetime, str | None, str | None]]) -> None:
        await finish(rows)  # returns once committed
        for row in rows:
            recorded.setdefault(row[0], time.time() - due.timestamp())
        if len(fired) == n and len(recorded) == n:
            all_done.set()

    timeline._fire = timed_fire  # type: ignore[method-assign]
    store.finish_deliveries = timed_finish  # type: ignore[method-assign]
    scheduler.start()
    await timeline._load_jobs(await timeline.current_plan(), None)
    reminders = [j for j in scheduler.get_jobs() if "/reminder/" in j.id]
    assert len(reminders) == n
    settle_heap()  # as App.run does once the timeline has started
    await asyncio.wait_for(all_done.wait(), 30)
    scheduler.shutdown(wait=False)
    sent = await db.fetchone("SELECT count(*) FROM post_log WHERE state = 'sent'")
    await store.batcher.stop()
    await db.close()
    twice = sum(1 for count in adapter.sends.values() if count > 1)

    def p(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000

    finished = list(recorded.values())
    print(f"firing: {len(reminders):,} reminders due in the same second; {sent[0] if sent else 0:,} sent and "
          f"recorded; {twice} sent twice")
    print(f"  job start lateness: p50 {p(started, 0.5):.1f} ms, p99 {p(started, 0.99):.1f} ms, "
          f"max {max(started) * 1000:.1f} ms (target p99 <= 50 ms)")
    print(f"  post sent and recorded: p50 {p(finished, 0.5):.1f} ms, p99 {p(finished, 0.99):.1f} ms, "
          f"mean {statistics.mean(finished) * 1000:.1f} ms (target p99 <= 250 ms)")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await plan_and_load(Path(tmp))
        await firing(Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())

"""The composition root: the core's router assembled with every feature's COMMANDS and EVENT_HANDLERS, and
`App.run`, which runs the adapters, the timeline's scheduler and the daily clean-up until stopped.

`cli.py` and the tests build the bot as `App(settings, store, readings, clock)`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from datetime import UTC

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import connection
from circlebot.core.clock import Clock
from circlebot.core.commands import Command
from circlebot.core.router import Router
from circlebot.core.timeline import Timeline
from circlebot.features import all_commands, all_direct_posts, all_event_handlers, all_post_lines
from circlebot.features.questions import meeting_questions
from circlebot.readings import Collection
from circlebot.store import Meeting, Store
from circlebot.store.accounts import Accounts
from circlebot.web import WebServer

log = logging.getLogger(__name__)

CLEAN_UP_EVERY = 24 * 3600.0  # seconds between clean-ups of old adapter state
STOP_GRACE = 7.0  # seconds a stopping bot gives what is in hand; `docker stop` kills after 10


def settle_heap() -> None:
    """Put what start-up built and keeps for the bot's life (imported modules, the reading collection, the
    config, the timeline's plan) out of the cyclic collector's way, once, when the bot has started.

    Without it, every full collection walks all of those objects again: with 10,000 circles one such pass
    took about 300 ms, and when it fell on a due minute every post of that minute started that much late
    (bench/timeline_bench.py). `gc.freeze` is CPython's documented way to do this; garbage made later is
    collected as before."""
    gc.collect()
    gc.freeze()


class App(Router):
    """The bot with every feature; `run` runs it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        readings: Collection,
        clock: Clock | None = None,
        commands: Sequence[Command] | None = None,
    ) -> None:
        super().__init__(settings, store, readings, clock,
                         commands=all_commands() if commands is None else commands,
                         event_handlers=all_event_handlers(), questions=self._questions,
                         post_lines=all_post_lines(), direct_posts=all_direct_posts())
        self._stop = asyncio.Event()
        web = settings.web
        self.web = WebServer(self, web) if web is not None and web.enabled else None  # started by `run`
        self.web_links = self.web
        self.metrics.watch_platforms(lambda: {p: connection(a) for p, a in self.adapters.items()})

    async def _questions(self, meeting: Meeting, circle: CircleSettings) -> list[str]:
        return await meeting_questions(self, meeting, circle)

    async def changed_elsewhere(self, kinds: frozenset[str], circles: frozenset[str] | None = None) -> None:
        """Another process changed meetings, polls or the web's links: as the router does, and the web server
        reads the circles' links again (a rotated page address)."""
        await super().changed_elsewhere(kinds, circles)
        if "links" in kinds and self.web is not None:
            await self.web.current()

    async def _clean_up_daily(self) -> None:
        """Remove adapter state of meetings and polls long past, and link codes and tries that are over, at
        start and then once a day."""
        while True:
            try:
                now = self.clock.now()
                removed = await self.store.clean_up(now)
                if removed:
                    log.info("clean-up: removed %d item(s) of adapter state of meetings and polls long past", removed)
                over = await Accounts(self.store).clean_up(now)
                if over:
                    log.info("clean-up: removed %d expired link code(s) and old wrong tries", over)
            except Exception:
                log.exception("clean-up failed; trying again in a day")
            await asyncio.sleep(CLEAN_UP_EVERY)

    def stop(self) -> None:
        """Ask `run` to stop (SIGTERM, SIGINT): no new events are taken, those in hand are finished, the
        writes flushed and the platforms closed. Safe to call from a signal handler, and more than once."""
        if not self._stop.is_set():
            log.info("stopping: finishing what is in hand")
        self._stop.set()

    async def run(self, ready_timeout: float = 60.0) -> None:
        """Run every adapter and the timeline until the first adapter finishes, `stop` is called, or the task
        is cancelled.

        The timeline starts (and catches up on what fell due while the bot was down) once every adapter that
        has a `ready` event has set it, so catch-up posts are not sent into a platform still connecting.

        The web server (`[web]`) starts first, on this loop, so the console's banner can show the circle's page.

        Stopping, in order: the scheduler takes no new job; each adapter is cancelled, which is how it is told
        to stop taking events, finish those in hand and close (given until STOP_GRACE after the stop began,
        then cancelled again); the timeline jobs already running finish (within the same bound); then the web
        server closes and every queued write is committed. The caller closes the database."""
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobEvent
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.store.batcher.start()
        scheduler = AsyncIOScheduler(timezone=UTC)
        jobs_running: list[int] = [0]
        jobs_idle = asyncio.Event()

        def job_counted(event: JobEvent) -> None:
            jobs_running[0] += 1 if event.code == EVENT_JOB_SUBMITTED else -1
            if jobs_running[0] <= 0:
                jobs_idle.set()
            else:
                jobs_idle.clear()

        scheduler.add_listener(job_counted, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.timeline = Timeline(self, scheduler)
        stop_by: float | None = None
        watching: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        try:
            if self.web is not None:
                await self.web.start()  # before the adapters: the console's banner shows the circle's page
            await self.timeline.prepare()  # the syllabus's meetings exist before the first command arrives
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(a.serve(self.dispatch), name=f"adapter-{p}") for p, a in self.adapters.items()]
                stopping = tg.create_task(self._stop.wait(), name="circlebot-stop")
                cleaning = tg.create_task(self._clean_up_daily(), name="circlebot-clean-up")
                for adapter in self.adapters.values():
                    ready = adapter.ready
                    if ready is not None and not stopping.done():
                        waiting = asyncio.ensure_future(ready.wait())
                        await asyncio.wait([waiting, stopping], timeout=ready_timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
                        waiting.cancel()
                        if not ready.is_set() and not stopping.done():
                            log.warning("%s is not ready after %.0f s; starting the timeline anyway",
                                        adapter.platform, ready_timeout)
                if not stopping.done():
                    scheduler.start()
                    await self.timeline.start()
                    # what other processes on the database change in meetings and polls (`Store.watch`)
                    watching = tg.create_task(self.store.watch(self.changed_elsewhere), name="circlebot-watch")
                    settle_heap()
                    await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
                stop_by = loop.time() + STOP_GRACE
                if scheduler.running:
                    scheduler.pause()  # no new job; those running finish below
                stopping.cancel()
                cleaning.cancel()
                if watching is not None:
                    watching.cancel()
                for t in tasks:
                    t.cancel()
                _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
                for t in late:
                    log.warning("%s did not stop within %.0f s; cut short", t.get_name(), STOP_GRACE)
                    t.cancel()
        finally:
            if scheduler.running:
                scheduler.pause()
                if jobs_running[0] > 0:
                    left = (stop_by or loop.time() + STOP_GRACE) - loop.time()
                    try:
                        await asyncio.wait_for(jobs_idle.wait(), max(left, 0.5))
                    except TimeoutError:
                        log.warning("%d timeline job(s) still running at stop; cut short", jobs_running[0])
                scheduler.shutdown(wait=False)
            if self.timeline is not None:
                await self.timeline.close()  # direct reminders still being sent are cut short
            self.timeline = None
            if self.web is not None:
                await self.web.stop()
            await self.store.batcher.stop()

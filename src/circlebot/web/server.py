"""The aiohttp application and its lifecycle: started by `App.run` on the bot's own event loop before the
adapters, stopped after them (SIGTERM included), on the address `[web]` configures (a free port when none is set).

Routes: `/healthz` (the loop answers), `/readyz` (each platform connected, the database writable), `/metrics`
(Prometheus text), and per circle and member the page and the calendar feeds at unguessable links (`links.py`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from circlebot.config import CircleSettings, WebSettings
from circlebot.core.adapter import connection
from circlebot.core.weblinks import MemberFeed
from circlebot.store.queries import LINKS
from circlebot.web.calendar import Personal, build_calendar
from circlebot.web.entries import circle_entries, member_answers
from circlebot.web.links import ALARM_DEFAULT, Link, Links
from circlebot.web.page import render_page
from circlebot.web.render import RenderCache

if TYPE_CHECKING:
    from circlebot.core.router import Router

log = logging.getLogger(__name__)

READY_TIMEOUT = 2.0  # seconds /readyz waits for the database's write lock before it says the database is not ready
NOINDEX = {"X-Robots-Tag": "noindex, nofollow"}
ICS = "text/calendar"


class WebServer:
    """The bot's web server; `start` binds it, `url` is its public base address, `stop` closes it."""

    def __init__(self, bot: Router, settings: WebSettings) -> None:
        self.bot = bot
        self.settings = settings
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self.links = Links(bot.store)
        self.cache = RenderCache(self._generation)
        self._circle_tokens: dict[str, str] = {}
        self._links_epoch = -1  # the store's epoch of links `_circle_tokens` were read at
        self._circles = {c.slug: c for c in bot.settings.circles}
        self.app = self._build()

    def _build(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
            web.get("/c/{token}", self.circle_page),
            web.get("/c/{token}/", self.circle_page),
            web.get("/c/{token}/calendar.ics", self.circle_feed),
            web.get("/m/{token}/calendar.ics", self.member_calendar),
        ])
        return app

    def _generation(self) -> Hashable:
        """What a rendering depends on beside its key: the bot's changes, every row the database wrote (an RSVP,
        a check-in, a vote, a meeting; SQLite counts them), and the minute on the bot's clock (meetings move from
        coming to past). Where the database does not count its writes (PostgreSQL), every event dispatched."""
        writes = self.bot.store.db.writes
        if writes is None:
            writes = -self.bot.events
        return self.bot.generation, writes, int(self.bot.clock.now().timestamp() // 60)

    # links -----------------------------------------------------------------------------------------
    def page_url(self, circle: str) -> str | None:
        """The address of a circle's page (known once `prepare` ran)."""
        token = self._circle_tokens.get(circle)
        return f"{self.url}/c/{token}" if token else None

    def feed_url(self, circle: str) -> str | None:
        """The address of a circle's calendar feed."""
        page = self.page_url(circle)
        return f"{page}/calendar.ics" if page else None

    def _member(self, link: Link) -> MemberFeed:
        return MemberFeed(f"{self.url}/m/{link.token}/calendar.ics",
                          ALARM_DEFAULT if link.alarm_minutes is None else link.alarm_minutes)

    async def member_feed(self, circle: str, member_id: int) -> MemberFeed:
        """A member's own calendar feed in a circle (made on first use)."""
        return self._member(await self.links.member(circle, member_id, self.bot.clock.now()))

    async def rotate_member(self, circle: str, member_id: int) -> MemberFeed:
        """Retire a member's own feed link; the new one."""
        return self._member(await self.links.rotate_member(circle, member_id, self.bot.clock.now()))

    async def set_alarm(self, circle: str, member_id: int, minutes: int) -> MemberFeed:
        """The lead of the alarm in a member's own feed, in minutes (0: none)."""
        return self._member(await self.links.set_alarm(circle, member_id, minutes, self.bot.clock.now()))

    async def rotate_circle(self, circle: str) -> str:
        """Retire a circle's links (its page and feed, and its members' feeds); the new page address."""
        self._circle_tokens[circle] = await self.links.rotate_circle(circle, self.bot.clock.now())
        self.cache.clear()
        page = self.page_url(circle)
        assert page is not None
        return page

    @property
    def url(self) -> str:
        """The public base address (no trailing slash): `[web] base_url`, else the address it listens on."""
        if self.settings.base_url:
            return self.settings.base_url
        host = self.settings.listen
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port if self.port is not None else self.settings.port}"

    async def prepare(self) -> None:
        """What the routes need before the first request (without binding a socket): each circle's link."""
        now = self.bot.clock.now()
        await self.links.fresh()
        self._links_epoch = self.bot.store.epoch(LINKS)
        for c in self.bot.settings.circles:
            self._circle_tokens[c.slug] = await self.links.circle(c.slug, now, fresh=False)

    async def current(self) -> None:
        """The links as stored now: each circle's read again if links changed since (another process rotated
        them), and the pages rendered anew."""
        await self.links.fresh()
        if self.bot.store.epoch(LINKS) != self._links_epoch:
            await self.prepare()
            self.cache.clear()

    async def start(self) -> None:
        """Prepare, bind and serve (in the running loop's own tasks, as aiohttp does)."""
        await self.prepare()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.listen, self.settings.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise OSError(e.errno, f"the web server cannot listen on {self.settings.listen} port "
                                   f"{self.settings.port} ({e.strerror}); change [web] listen/port, or set "
                                   "[web] enabled = false") from e
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.info("web server on %s (listening on %s port %d)", self.url, self.settings.listen, self.port)
        await self.bot.store.set_state("web", "url", self.url)  # `circlebot links` prints what the bot serves

    async def stop(self) -> None:
        """Stop taking requests, let those in hand finish (briefly), close."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # health and metrics ----------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        """The event loop answers."""
        return web.Response(text="ok\n", headers=NOINDEX)

    async def readyz(self, request: web.Request) -> web.Response:
        """200 when every platform is connected and the database takes a write; else 503 naming what is not."""
        problems = [f"{platform}: not connected" for platform, adapter in sorted(self.bot.adapters.items())
                    if not connection(adapter)[1]]
        try:
            await asyncio.wait_for(self._write_probe(), READY_TIMEOUT)
        except TimeoutError:
            problems.append(f"database: no write lock within {READY_TIMEOUT:.0f} s")
        except Exception as e:
            problems.append(f"database: not writable ({type(e).__name__}: {e})")
        if problems:
            return web.Response(status=503, text="not ready\n" + "".join(f"{p}\n" for p in problems),
                                headers=NOINDEX)
        return web.Response(text="ready\n" + "".join(f"{p}: connected\n" for p in sorted(self.bot.adapters))
                            + "database: writable\n", headers=NOINDEX)

    async def _write_probe(self) -> None:
        """A real write that changes nothing, in a transaction of its own (takes the write lock, writes a page)."""
        async with self.bot.store.db.transaction() as conn:
            await conn.execute("UPDATE schema_version SET version = version")

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.bot.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, **NOINDEX})

    # pages -----------------------------------------------------------------------------------------
    async def circle_page(self, request: web.Request) -> web.Response:
        link, circle = await self._circle_of(request)
        if link.member_id is not None:
            raise web.HTTPNotFound(headers=NOINDEX)
        feed = self.feed_url(circle.slug) or ""

        async def render() -> bytes:
            return await render_page(self.bot, circle, self.settings, self.bot.clock.now(), feed)

        return await self._serve(request, ("page", circle.slug), render, "text/html")

    # calendars -------------------------------------------------------------------------------------
    async def _circle_of(self, request: web.Request) -> tuple[Link, CircleSettings]:
        link = await self.links.lookup(request.match_info["token"])
        circle = self._circles.get(link.circle) if link is not None else None
        if link is None or circle is None:
            raise web.HTTPNotFound(text="There is nothing at this address: the link is wrong, or it was replaced "
                                        "by a new one (ask the circle's organisers).\n", headers=NOINDEX)
        return link, circle

    async def _serve(self, request: web.Request, key: Hashable, render: Callable[[], Awaitable[bytes]],
                     content_type: str) -> web.Response:
        got = await self.cache.get(key, render)
        headers = {"ETag": got.etag, "Cache-Control": "private, max-age=60", **NOINDEX}
        if request.headers.get("If-None-Match") == got.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=got.body, content_type=content_type, charset="utf-8", headers=headers)

    async def circle_calendar(self, circle: CircleSettings) -> bytes:
        """A circle's calendar: every meeting past and planned (what `circlebot export ics` writes too)."""
        bot, now = self.bot, self.bot.clock.now()
        entries = await circle_entries(bot.store, bot.readings, circle, bot.zone(circle), now,
                                       self.settings.calendar_weeks)
        # icalendar takes about 3 ms a meeting: off the event loop, so the bot keeps answering meanwhile
        return await asyncio.to_thread(build_calendar, circle, entries, now, page_url=self.page_url(circle.slug))

    async def circle_feed(self, request: web.Request) -> web.Response:
        link, circle = await self._circle_of(request)
        if link.member_id is not None:
            raise web.HTTPNotFound(headers=NOINDEX)
        return await self._serve(request, ("feed", circle.slug), lambda: self.circle_calendar(circle), ICS)

    async def member_calendar(self, request: web.Request) -> web.Response:
        link, circle = await self._circle_of(request)
        if link.member_id is None:
            raise web.HTTPNotFound(headers=NOINDEX)
        member_id = link.member_id

        async def render() -> bytes:
            bot, now = self.bot, self.bot.clock.now()
            entries = await circle_entries(bot.store, bot.readings, circle, bot.zone(circle), now,
                                           self.settings.calendar_weeks)
            answers = await member_answers(bot.store, circle.slug, member_id)
            minutes = ALARM_DEFAULT if link.alarm_minutes is None else link.alarm_minutes
            personal = Personal(answers, timedelta(minutes=minutes) if minutes else None)
            return await asyncio.to_thread(build_calendar, circle, entries, now, page_url=self.page_url(circle.slug),
                                           personal=personal)

        return await self._serve(request, ("member", link.token, link.alarm_minutes), render, ICS)

"""The aiohttp application and its lifecycle: started by `App.run` on the bot's own event loop before the
adapters, stopped after them (SIGTERM included), on the address `[web]` configures (a free port when none is set).

Routes: `/healthz` (the loop answers), `/readyz` (each platform connected, the database writable), `/metrics`
(Prometheus text), and per circle and member the page and the calendar feeds at unguessable links (`links.py`)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from circlebot.config import WebSettings
from circlebot.core.adapter import connection

if TYPE_CHECKING:
    from circlebot.core.router import Router

log = logging.getLogger(__name__)

READY_TIMEOUT = 2.0  # seconds /readyz waits for the database's write lock before it says the database is not ready
NOINDEX = {"X-Robots-Tag": "noindex, nofollow"}


class WebServer:
    """The bot's web server; `start` binds it, `url` is its public base address, `stop` closes it."""

    def __init__(self, bot: Router, settings: WebSettings) -> None:
        self.bot = bot
        self.settings = settings
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self.app = self._build()

    def _build(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ])
        return app

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
        """What the routes need before the first request (without binding a socket)."""

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

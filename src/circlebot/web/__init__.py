"""The web server in the bot (aiohttp.web, on the bot's own event loop): each circle's page and calendar feed
at unguessable links, each member's own feed, and `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from circlebot.web.server import WebServer

__all__ = ["WebServer"]

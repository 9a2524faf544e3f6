"""The unguessable links of the web server: one per circle (its page and its calendar feed), one per member of a
circle (their own feed), each a `secrets.token_urlsafe` token kept in the `web_links` table.

Rotating a link retires its token (kept, marked retired: the old address answers 404) and makes a new one.
Look-ups are cached for a short while, so a feed under load costs no database trip per request; a rotation or a
new alarm drops the cache at once in this process, and in another process sharing the database as soon as its
store's watch sees the change (`Store.watch`, every quarter second; a command's look-up reads the change counts
first, so its answer is current)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from circlebot.config import WebSettings
from circlebot.store import Store
from circlebot.store.queries import LINKS, ts

TOKEN_BYTES = 24  # 32 URL-safe characters, 192 bits
CACHE_FOR = 30.0  # seconds a look-up is trusted
ALARM_DEFAULT = 60  # minutes before a meeting a personal feed's alarm rings, until the member chooses


@dataclass(frozen=True, slots=True)
class Link:
    """What a token opens: a circle's page and feed (`member_id` None), or a member's own feed."""

    token: str
    circle: str
    member_id: int | None
    alarm_minutes: int | None


class Links:
    """The tokens of circles and members: created on first use, looked up per request, rotated on demand."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_token: dict[str, tuple[float, Link | None]] = {}
        self._of_circle: dict[str, str] = {}
        self._epoch = store.epoch(LINKS)  # the store's epoch of links the caches were filled at

    def _forget(self) -> None:
        self._by_token.clear()
        self._of_circle.clear()

    def _current_epoch(self) -> None:
        """Drop the caches if links changed (here or in another process) since they were filled. No I/O."""
        epoch = self.store.epoch(LINKS)
        if epoch != self._epoch:
            self._forget()
            self._epoch = epoch

    async def lookup(self, token: str) -> Link | None:
        """The live link of a token, or None (unknown or retired)."""
        if not 20 <= len(token) <= 64:
            return None
        self._current_epoch()
        cached = self._by_token.get(token)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CACHE_FOR:
            return cached[1]
        epoch = self._epoch
        row = await self.store.db.fetchone(
            "SELECT token, circle, member_id, alarm_minutes FROM web_links WHERE token = ? AND retired_at IS NULL",
            (token,))
        link = Link(row["token"], row["circle"], row["member_id"], row["alarm_minutes"]) if row else None
        if len(self._by_token) > 10_000:
            self._by_token.clear()
        if self.store.epoch(LINKS) == epoch:  # not changed while it was read
            self._by_token[token] = (now, link)
        return link

    async def circle(self, circle: str, now: datetime, *, fresh: bool = True) -> str:
        """The circle's token (its page and feed), made on first use; `fresh=False`: the caller has just
        called `fresh`."""
        if fresh:
            await self.fresh()
        else:
            self._current_epoch()
        cached = self._of_circle.get(circle)
        if cached is not None:
            return cached
        epoch = self._epoch
        token = await self._ensure(circle, None, now)
        if self.store.epoch(LINKS) == epoch:
            self._of_circle[circle] = token
        return token

    async def fresh(self) -> None:
        """Before a command's look-up: drop what another process changed (reads the change counts)."""
        await self.store.look_for_changes()
        self._current_epoch()

    async def member(self, circle: str, member_id: int, now: datetime) -> Link:
        """A member's own feed in a circle, made on first use."""
        await self.fresh()
        token = await self._ensure(circle, member_id, now)
        link = await self.lookup(token)
        assert link is not None
        return link

    async def _ensure(self, circle: str, member_id: int | None, now: datetime) -> str:
        row = await self._current(circle, member_id)
        if row is not None:
            return row
        async with self.store.db.transaction() as conn:  # a unique index keeps it to one live link
            await conn.execute(
                "INSERT INTO web_links (token, circle, member_id, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING", (secrets.token_urlsafe(TOKEN_BYTES), circle, member_id, ts(now)))
        token = await self._current(circle, member_id)
        assert token is not None
        return token

    async def _current(self, circle: str, member_id: int | None) -> str | None:
        if member_id is None:
            row = await self.store.db.fetchone(
                "SELECT token FROM web_links WHERE circle = ? AND member_id IS NULL AND retired_at IS NULL",
                (circle,))
        else:
            row = await self.store.db.fetchone(
                "SELECT token FROM web_links WHERE circle = ? AND member_id = ? AND retired_at IS NULL",
                (circle, member_id))
        return str(row[0]) if row else None

    async def rotate_circle(self, circle: str, now: datetime) -> str:
        """Retire the circle's link and every member's link in it (the organisers' `links rotate`); the new
        circle link. Members get a new link of their own when they next ask (`calendar`)."""
        async with self.store.changing(LINKS) as conn:
            await conn.execute("UPDATE web_links SET retired_at = ? WHERE circle = ? AND retired_at IS NULL",
                               (ts(now), circle))
        return await self.circle(circle, now)

    async def rotate_member(self, circle: str, member_id: int, now: datetime) -> Link:
        """Retire a member's own link (keeping their alarm) and make a new one."""
        old = await self._current(circle, member_id)
        alarm = (await self.lookup(old)).alarm_minutes if old else None  # type: ignore[union-attr]
        async with self.store.changing(LINKS) as conn:
            await conn.execute("UPDATE web_links SET retired_at = ? WHERE circle = ? AND member_id = ? "
                               "AND retired_at IS NULL", (ts(now), circle, member_id))
            await conn.execute(
                "INSERT INTO web_links (token, circle, member_id, alarm_minutes, created_at) VALUES (?, ?, ?, ?, ?)",
                (secrets.token_urlsafe(TOKEN_BYTES), circle, member_id, alarm, ts(now)))
        return await self.member(circle, member_id, now)

    async def set_alarm(self, circle: str, member_id: int, minutes: int | None, now: datetime) -> Link:
        """The lead of the alarm in a member's own feed (None: no alarm)."""
        link = await self.member(circle, member_id, now)
        async with self.store.changing(LINKS) as conn:
            await conn.execute("UPDATE web_links SET alarm_minutes = ? WHERE token = ?", (minutes, link.token))
        return await self.member(circle, member_id, now)


async def base_url(store: Store, web: WebSettings) -> str | None:
    """The web server's public address as a command run beside the bot can know it: `base_url`, else what the
    running bot (or its last run) served on, else the configured port; None with a free port never served."""
    if web.base_url:
        return web.base_url
    served = await store.get_state("web", "url")
    if served:
        return served
    if web.port:
        host = f"[{web.listen}]" if ":" in web.listen else web.listen
        return f"http://{host}:{web.port}"
    return None

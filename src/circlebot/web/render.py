"""Render once, serve many: what a page or feed renders is kept until what it depends on moves (the server's
`generation`: the bot's changes, the database's writes, the minute on its clock) or it is `MAX_AGE` old, so a
feed under load is served from memory, not rebuilt per request, while a command that only reads changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from cachetools import LRUCache

MAX_AGE = 60.0  # seconds a rendering is served without a change, at most
SIZE = 2048  # renderings kept (circle pages and feeds, members' feeds), least recently used go first


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendering: its bytes, its ETag, and what it was rendered for."""

    body: bytes
    etag: str
    generation: Hashable
    at: float


class RenderCache:
    """Renderings by key, one rendering at a time per key: the request that finds its key out of date renders
    it (and gets the new one); requests meanwhile get the last rendering, or wait for the first."""

    def __init__(self, generation: Callable[[], Hashable], max_age: float = MAX_AGE) -> None:
        self._generation = generation
        self._max_age = max_age
        self._done: LRUCache[Hashable, Rendered] = LRUCache(SIZE)
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def _fresh(self, key: Hashable) -> Rendered | None:
        got = self._done.get(key)
        if got is not None and got.generation == self._generation() and time.monotonic() - got.at < self._max_age:
            return got
        return None

    async def get(self, key: Hashable, render: Callable[[], Awaitable[bytes]]) -> Rendered:
        """The current rendering of `key`, rendering it with `render` when there is none."""
        got = self._fresh(key)
        if got is not None:
            return got
        lock = self._locks.setdefault(key, asyncio.Lock())  # one per circle or member: bounded by them
        stale = self._done.get(key)
        if lock.locked() and stale is not None:  # being rendered again: the last rendering, without waiting
            return stale
        async with lock:
            got = self._fresh(key)
            if got is not None:
                return got
            generation = self._generation()
            body = await render()
            got = Rendered(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"', generation,
                           time.monotonic())
            self._done[key] = got
            return got

    def clear(self) -> None:
        self._done.clear()

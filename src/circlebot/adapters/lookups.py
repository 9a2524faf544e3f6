"""`AppLookups`: the narrow view (`core.adapter.Lookups`) each adapter gets of the running bot, for one platform:
its own state in the store, the open polls with a message on it, autocomplete choices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circlebot.core.adapter import OpenPoll
from circlebot.core.domain import ChannelRef
from circlebot.store import AdapterState

if TYPE_CHECKING:
    from circlebot.config import CircleSettings
    from circlebot.core.router import Router


class AppLookups:
    """`Lookups` for `platform` over the router's store, settings and reading collection."""

    def __init__(self, app: Router, platform: str) -> None:
        self._app = app
        self.platform = platform
        self._state = app.store.adapter_state(platform)

    @property
    def state(self) -> AdapterState:
        return self._state

    async def open_polls(self) -> list[OpenPoll]:
        out: list[OpenPoll] = []
        for circle in self._app.settings.circles:
            if not _lives_on(circle, self.platform):
                continue
            for poll in await self._app.store.polls(circle.slug, open_only=True, limit=1000):
                refs = await self._app.store.poll_messages(poll.id)
                opener = await self._app.store.member(poll.opened_by) if poll.opened_by is not None else None
                opener = opener if opener is not None and opener.platform == self.platform else None
                out += [OpenPoll(poll.id, circle.slug, ref, len(poll.answers), poll.secret, opener)
                        for ref in refs if ref.channel.platform == self.platform]
        return out

    async def choices(self, kind: str, channel: ChannelRef, typed: str) -> list[tuple[str, str | int]]:
        app = self._app
        circle = app.circle_for(channel)
        typed = typed.strip().lower()
        if kind == "reading":
            found = app.readings.search(typed) if typed else list(app.readings.search(""))
            if typed and not found:
                found = [r for r in app.readings.search("") if typed in r.slug]
            return [(_clip(f"{r.slug}: {r.title}"), r.slug[:100]) for r in found[:25]]
        if circle is None:
            return []
        now = app.clock.now()
        if kind == "meeting":
            meetings = await app.store.meetings(circle.slug, ending_after=now, limit=25)
            out: list[tuple[str, str | int]] = []
            for m in meetings:
                reading = app.readings.get(m.reading)
                label = f"#{m.id} {m.starts_at:%Y-%m-%d %H:%M} UTC: {reading.title if reading else m.reading}"
                if not typed or typed.lstrip("#") in label.lower():
                    out.append((_clip(label), m.id))
            return out
        if kind == "poll":
            polls = await app.store.polls(circle.slug, open_only=True, limit=25)
            return [(_clip(f"#{p.id}: {p.question}"), p.id) for p in polls
                    if not typed or typed.lstrip("#") in f"#{p.id}: {p.question}".lower()]
        return []


def _lives_on(circle: CircleSettings, platform: str) -> bool:
    """Whether the circle has a place on the platform (every circle may be on the console)."""
    where = circle.where
    places = {"matrix": where.matrix_rooms, "discord": where.discord_channels}
    return bool(places.get(platform, True))


def _clip(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"

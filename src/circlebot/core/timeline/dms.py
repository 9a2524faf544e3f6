"""Reminders by direct message, for the members who asked (`remind me dm on`, `remind me 2h`): each member
who said yes (with a place) or maybe gets one before each meeting, at their own lead or the circle's reminder
lead; never those who said no or wait for a place.

Each is claimed in the database before it is sent (once per meeting, member and start time, so a moved meeting
reminds again for its new time). A platform sends one direct message per its `direct_interval` at most; the
platforms are served side by side. A refused one (`DirectRefused`) switches that member's direct messages off,
without trying again; another failure is logged and not retried (the reminder in the channel still goes out)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, DirectMessages, DirectRefused
from circlebot.core.clock import Clock
from circlebot.core.domain import Post, UserRef
from circlebot.core.recurrence import lead_before
from circlebot.core.text import Text, cmd, when
from circlebot.core.timeline.compose import PostSources
from circlebot.store import Meeting
from circlebot.store.turnout import DirectReminders, TurnoutStore

log = logging.getLogger(__name__)

LOOK_AHEAD = timedelta(days=8)  # the longest lead a member may choose, plus a day


class DirectHost(PostSources, Protocol):
    """What direct reminders need of the bot: the circles, the clock and the running platforms."""

    settings: Settings
    clock: Clock

    @property
    def adapters(self) -> Mapping[str, ChatAdapter]: ...


class DirectSender:
    """Finds the direct-message reminders due now, claims them and sends them, throttled per platform."""

    def __init__(self, host: DirectHost) -> None:
        self.host = host
        self._next_at: dict[str, float] = {}  # per platform: the loop time the next direct message may go

    async def sweep(self, now: datetime) -> int:
        """Send every reminder due at `now` not sent yet; returns how many went out."""
        host = self.host
        reminders = DirectReminders(host.store.db)
        asked = await reminders.asked()
        if not asked:
            return 0
        due: list[tuple[CircleSettings, Meeting, int, UserRef, str]] = []
        for circle in host.settings.circles:
            members = [(mid, user, lead) for mid, user, lead in asked.get(circle.slug, ())  # this process's platforms
                       if isinstance(host.adapters.get(user.platform), DirectMessages)]
            if not members or not circle.turnout.dm_reminders:
                continue
            meetings = [m for m in await host.store.meetings(circle.slug, ending_after=now, limit=20)
                        if now < m.starts_at <= now + LOOK_AHEAD]
            turnouts = await TurnoutStore(host.store.db).turnouts(m.id for m in meetings)
            for m in meetings:
                t = turnouts[m.id]
                said = {(u.platform, u.id): "yes" for u in (*t.coming, *(t.waiting if circle.turnout.capacity is None
                                                                        else ()))}
                said.update({(u.platform, u.id): "maybe" for u in t.maybe})
                for member_id, user, lead in members:
                    answer = said.get((user.platform, user.id))
                    if answer is None:
                        continue
                    at = (m.starts_at - timedelta(minutes=lead) if lead
                          else lead_before(m.starts_at, circle.timeline.reminder, circle.zone))
                    if at <= now:
                        due.append((circle, m, member_id, user, answer))
        if not due:
            return 0
        claimed = await reminders.claim([(m.id, mid, m.starts_at) for _, m, mid, _, _ in due], now)
        by_platform: dict[str, list[tuple[CircleSettings, Meeting, int, UserRef, str]]] = {}
        for item in due:
            if (item[1].id, item[2]) in claimed:
                by_platform.setdefault(item[3].platform, []).append(item)
        sent = await asyncio.gather(*(self._send_all(p, items, reminders) for p, items in by_platform.items()))
        return sum(sent)

    async def _send_all(self, platform: str, items: list[tuple[CircleSettings, Meeting, int, UserRef, str]],
                        reminders: DirectReminders) -> int:
        adapter = self.host.adapters.get(platform)
        loop = asyncio.get_running_loop()
        sent = 0
        for circle, m, member_id, user, answer in items:
            now = self.host.clock.now()
            if not isinstance(adapter, DirectMessages):
                await reminders.done(m.id, member_id, m.starts_at, "failed", now)
                continue
            wait = self._next_at.get(platform, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_at[platform] = loop.time() + adapter.direct_interval
            key = f"dm/{circle.slug}/{m.id}/{member_id}/{int(m.starts_at.timestamp())}"
            try:
                await adapter.send_direct(user, self._post(circle, m, answer), key=key)
            except DirectRefused as e:
                log.info("%s refused a direct message to %s (%s): their direct reminders are off", platform,
                         user.id, e)
                await reminders.refused(circle.slug, member_id, now)
                await reminders.done(m.id, member_id, m.starts_at, "refused", now)
                continue
            except Exception as e:
                log.warning("could not send a direct reminder to %s on %s: %s: %s", user.id, platform,
                            type(e).__name__, e)
                await reminders.done(m.id, member_id, m.starts_at, "failed", now)
                continue
            await reminders.done(m.id, member_id, m.starts_at, "sent", now)
            sent += 1
        return sent

    def _post(self, circle: CircleSettings, m: Meeting, answer: str) -> Post:
        reading = self.host.readings.get(m.reading)
        title = reading.title if reading else m.reading
        text: Text = (f"⏰ **Reminder**: meeting #{m.id} of {circle.name} starts " + when(m.starts_at)
                      + f": **{title}**. You said {answer}. Changed your mind? "
                      + cmd("rsvp", answer="no", meeting=m.id) + ". No more of these: "
                      + cmd("remind me", what="dm", switch="off") + ".")
        return Post(text, meeting_id=m.id)

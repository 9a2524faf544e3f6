"""Reminders by direct message, for the members who asked (`remind me dm on`, `remind me 2h`): each member
who said yes (with a place) or maybe gets one before each meeting, at their own lead or the circle's reminder
lead; never those who said no or wait for a place.

Each is sent once, like the timeline's posts:
- it is claimed in the database before it is sent (once per meeting, member and start time, so a moved meeting
  reminds again for its new time), held by the process that claimed it for `delivery_lease_seconds` (wall
  clock, renewed while it sends);
- each try is recorded as it begins and sent with an idempotency key derived from the meeting, the member and
  the start time (Discord nonce, Matrix transaction id), so a resend after a stop mid-send returns the message
  already sent instead of sending a second;
- a try that fails for a reason other than a refusal (the platform is down, a 5xx, a rate limit past the
  client's own retries, a timeout) is tried again after 1 s, 2 s, 4 s ... up to 60 s, while the meeting has not
  started; then it is given up, with a log line naming the member and the last failure;
- a refused one (`DirectRefused`: Discord's 50007, a Matrix direct room the member left) switches that member's
  direct messages off, without trying again;
- what was claimed and not sent when the bot stopped (SIGTERM, a crash) is sent after the next start while its
  meeting has not started (one being sent at the stop only while the platform still recognises its key: the
  adapter's `dedup_window`; past that it may have gone, and is given up with a log line); on a database shared
  by several processes, another takes over what a process stopped renewing.

A platform sends one direct message per its `direct_interval` at most (tries again included); the platforms
are served side by side."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, DirectMessages, DirectRefused
from circlebot.core.clock import Clock
from circlebot.core.domain import Post, UserRef
from circlebot.core.recurrence import lead_before
from circlebot.core.text import Text, cmd, when
from circlebot.core.timeline.compose import PostSources
from circlebot.store import Meeting
from circlebot.store.turnout import DirectClaim, DirectReminders, TurnoutStore

log = logging.getLogger(__name__)

LOOK_AHEAD = timedelta(days=8)  # the longest lead a member may choose, plus a day
RETRY_FIRST = timedelta(seconds=1)  # a failed try is made again after 1 s, 2 s, 4 s ... up to RETRY_MAX
RETRY_MAX = timedelta(seconds=60)


class DirectHost(PostSources, Protocol):
    """What direct reminders need of the bot: the circles, the clock and the running platforms."""

    settings: Settings
    clock: Clock

    @property
    def adapters(self) -> Mapping[str, ChatAdapter]: ...


Due = tuple[CircleSettings, Meeting, int, UserRef, str]  # circle, meeting, member id, member, what they said


class DirectSender:
    """Finds the direct-message reminders due now, claims them and sends them, throttled per platform; tries
    again those that failed, and those an earlier process left unsent."""

    def __init__(self, host: DirectHost, owner: str = "", lease: timedelta = timedelta(seconds=30)) -> None:
        self.host = host
        self.owner = owner  # who holds the reminders this process claims (the timeline's owner)
        self._lease = lease
        self._renewed = 0.0  # the loop time the leases were last renewed
        self._next_at: dict[str, float] = {}  # per platform: the loop time the next direct message may go
        self.next_try: datetime | None = None  # the earliest try again the last sweep set, if any

    def _lease_until(self) -> datetime:
        return datetime.now(UTC) + self._lease

    async def sweep(self, now: datetime) -> int:
        """Send every reminder due at `now` not sent yet (new ones, tries again that are due, what an earlier
        process left unsent); returns how many went out."""
        host = self.host
        reminders = DirectReminders(host.store.db)
        self.next_try = None
        platforms = [p for p, a in host.adapters.items() if isinstance(a, DirectMessages)]
        if not platforms:
            return 0
        due = await self._due(await reminders.asked(), now)
        lease_until = self._lease_until()
        await reminders.claim(list(due), now, owner=self.owner, lease_until=lease_until)
        taken = await reminders.take(self.owner, platforms, now=now, wall_now=datetime.now(UTC),
                                     lease_until=lease_until, held_too=not host.store.db.shared)
        self._renewed = asyncio.get_running_loop().time()
        by_platform: dict[str, list[tuple[Due, DirectClaim]]] = {}
        for claim in taken:
            item = due.get((claim.meeting_id, claim.member_id, claim.starts_at))
            if item is None:
                await self._drop(claim, now, reminders)
                continue
            by_platform.setdefault(item[3].platform, []).append((item, claim))
        sent = await asyncio.gather(*(self._send_all(p, items, reminders) for p, items in by_platform.items()))
        return sum(sent)

    async def _due(self, asked: Mapping[str, list[tuple[int, UserRef, int | None]]], now: datetime
                   ) -> dict[tuple[int, int, datetime], Due]:
        """The reminders whose time has come at `now`, by (meeting, member, start), for meetings not started."""
        host = self.host
        due: dict[tuple[int, int, datetime], Due] = {}
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
                        due[(m.id, member_id, m.starts_at)] = (circle, m, member_id, user, answer)
        return due

    async def _drop(self, claim: DirectClaim, now: datetime, reminders: DirectReminders) -> None:
        """A claimed reminder that is no longer due: its meeting started (given up), or it moved, was cancelled,
        the member changed their answer or switched their reminders off."""
        user = await self.host.store.member(claim.member_id)
        who = f"{user.name} ({user.id} on {user.platform})" if user else f"member {claim.member_id}"
        if now >= claim.starts_at:
            log.warning("gave up the direct reminder of meeting #%d to %s: not sent before the meeting started "
                        "(%d tries; last: %s)", claim.meeting_id, who, claim.attempts, claim.detail or "never tried")
            await reminders.done(claim, "failed", now, "not sent before the meeting started")
        else:
            log.info("the direct reminder of meeting #%d to %s is not sent: no longer due (the meeting moved or "
                     "was cancelled, or the member's answer or choice changed)", claim.meeting_id, who)
            await reminders.done(claim, "failed", now, "no longer due")

    async def _send_all(self, platform: str, items: list[tuple[Due, DirectClaim]],
                        reminders: DirectReminders) -> int:
        adapter = self.host.adapters.get(platform)
        loop = asyncio.get_running_loop()
        sent = 0
        for (circle, m, member_id, user, answer), claim in items:
            now = self.host.clock.now()
            if not isinstance(adapter, DirectMessages):
                await reminders.done(claim, "failed", now, f"{platform} not running")
                continue
            if claim.sending_since is not None and now - claim.sending_since >= adapter.dedup_window:
                log.warning("the direct reminder of meeting #%d to %s (%s on %s) was interrupted while sending, too "
                            "long ago for %s to recognise a resend: not sent again", m.id, user.name, user.id,
                            platform, platform)
                await reminders.done(claim, "failed", now, "interrupted; the platform can no longer tell if it went")
                continue
            wait = self._next_at.get(platform, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_at[platform] = loop.time() + adapter.direct_interval
            if loop.time() - self._renewed > self._lease.total_seconds() / 3:  # still alive, still holding them
                await reminders.renew(self.owner, self._lease_until())
                self._renewed = loop.time()
            now = self.host.clock.now()
            key = f"dm/{circle.slug}/{m.id}/{member_id}/{int(m.starts_at.timestamp())}"
            await reminders.trying(claim, now)
            try:
                await adapter.send_direct(user, self._post(circle, m, answer), key=key)
            except DirectRefused as e:
                log.info("%s refused a direct message to %s (%s): %s; their direct reminders are off", platform,
                         user.name, user.id, e)
                await reminders.refused(circle.slug, member_id, now)
                await reminders.done(claim, "refused", now, str(e))
                continue
            except Exception as e:
                await self._failed(m, user, claim, f"{type(e).__name__}: {e}", reminders)
                continue
            await reminders.done(claim, "sent", self.host.clock.now())
            sent += 1
        return sent

    async def _failed(self, m: Meeting, user: UserRef, claim: DirectClaim, why: str,
                      reminders: DirectReminders) -> None:
        """A try failed: try again after a growing pause if that is before the meeting starts; else give up."""
        now = self.host.clock.now()
        attempts = claim.attempts + 1
        retry = now + min(RETRY_MAX, RETRY_FIRST * 2 ** min(attempts - 1, 16))
        if retry >= m.starts_at:
            log.warning("gave up the direct reminder of meeting #%d to %s (%s on %s): not sent before the meeting "
                        "starts (%d tries; last: %s)", m.id, user.name, user.id, user.platform, attempts, why)
            await reminders.done(claim, "failed", now, f"not sent before the meeting started: {why}"[:500])
            return
        log.warning("could not send the direct reminder of meeting #%d to %s (%s on %s), try %d: %s; trying again "
                    "at %s", m.id, user.name, user.id, user.platform, attempts, why, retry.isoformat())
        await reminders.retry_at(claim, retry, why[:500], now)
        self.next_try = retry if self.next_try is None else min(self.next_try, retry)

    def _post(self, circle: CircleSettings, m: Meeting, answer: str) -> Post:
        reading = self.host.readings.get(m.reading)
        title = reading.title if reading else m.reading
        text: Text = (f"⏰ **Reminder**: meeting #{m.id} of {circle.name} starts " + when(m.starts_at)
                      + f": **{title}**. You said {answer}. Changed your mind? "
                      + cmd("rsvp", answer="no", meeting=m.id) + ". No more of these: "
                      + cmd("remind me", what="dm", switch="off") + ".")
        return Post(text, meeting_id=m.id)

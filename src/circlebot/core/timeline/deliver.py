"""Delivering the timeline's posts: each sent exactly once per location, at its time, by itself.

The plan (`plan.py`) is a pure function of (circles, stored meetings, now). The database is the truth; APScheduler holds
only in-memory jobs derived from it, with stable ids, rebuilt at start and after every change, and only for a
rolling horizon (a reload job at its end), so a large deployment does not keep weeks of jobs in memory.

Exactly once, per location (platform + channel):
- a post is *claimed* in the post log (unique key per circle, meeting, kind and start time) before it is sent,
  with one delivery per location; posts due together are claimed in one transaction;
- when a post's time comes, the bot re-checks that its meeting is still scheduled at the time it was planned
  for (a loaded job is a reminder to look, not a promise);
- each location is sent with an idempotency key derived from the post key and the location (Matrix txnId,
  Discord nonce) and marked sent with its message id as soon as the platform answers (marks are batched);
- a location that fails is retried with growing pauses (1 s doubling to 60 s) until the post is no longer
  useful, then recorded as missed; the other locations are not held up;
- a delivery found unfinished at start (the process died between sending and marking) is sent again with the
  same key while the platform still recognises it (the adapter's `dedup_window`), which returns the message
  already posted and restores its controls; past that window it is recorded as missed ("interrupted");
- several processes on one (PostgreSQL) database claim each location once: the claim is per location, in one
  transaction, and a process claims only the locations on the platforms it runs; a process holds what it
  claimed for `delivery_lease_seconds` (wall clock), renewed while it lives, and a process whose lease ran out
  (killed, cut off) has its unfinished locations taken over by another, which resends them with their keys;
- a post that fell due while the bot was down is sent at start if it is still useful (the assignment and
  the reminder until the meeting starts, the questions until it ends, the summary until 12 hours after), and
  otherwise recorded as missed;
- a post decided as it is claimed (the RSVP deadline's, the nudge: `DECIDED`) is decided once per post, not
  per location: the first process to decide it stores the decision (first wins) with the post to send, in the
  transaction that moves or cancels the meeting if it says so; every other location, in any process, and any
  retry or takeover, is sent that stored post, even after its meeting moved. A process also sends the decided
  posts still useful that it has not sent to its locations (it started later, or the meeting moved first).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, DirectMessages, DirectRefused, MeetingMirror
from circlebot.core.clock import Clock
from circlebot.core.domain import ChannelRef, MessageRef, Post, RsvpAnswer, UserRef, direct_channel, direct_recipient
from circlebot.core.metrics import Metrics
from circlebot.core.polls import Polls
from circlebot.core.timeline.compose import PostSources, compose
from circlebot.core.timeline.dms import DirectSender
from circlebot.core.timeline.plan import (
    LOOKBACK,
    SUMMARY_GRACE,
    Job,
    PostKind,
    delivery_key,
    job_key,
    plan,
    syllabus_additions,
)
from circlebot.core.timeline.turnout import at_deadline, meeting_event, nudge
from circlebot.store import Delivery, Meeting, PostClaim
from circlebot.store.decisions import Decision, Decisions
from circlebot.store.turnout import DirectReminders

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)

HORIZON = timedelta(hours=24)
DECIDED = (PostKind.DEADLINE, PostKind.NUDGE)  # posts decided once, as they are claimed, and retried as decided
RETRY_FIRST = timedelta(seconds=1)  # a failed send is tried again after 1 s, 2 s, 4 s ... up to RETRY_MAX
RETRY_MAX = timedelta(seconds=60)
SEND_CONCURRENCY = 64  # sends in flight at once


class TimelineHost(PostSources, Protocol):
    """What the timeline needs of the bot, beside what posts are composed from (`PostSources`: the store,
    the readings, a meeting's questions): the circles, the clock, the running platforms to send to and a
    circle's locations on them, and the polls it closes when they are due."""

    settings: Settings
    clock: Clock
    polls: Polls
    metrics: Metrics

    @property
    def adapters(self) -> Mapping[str, ChatAdapter]: ...

    def zone(self, circle: CircleSettings) -> ZoneInfo: ...

    def locations(self, circle: CircleSettings) -> list[ChannelRef]: ...

    async def direct_post(self, kind: PostKind, meeting: Meeting, circle: CircleSettings
                          ) -> tuple[UserRef, Post] | None:
        """A post of `kind` for one member alone (`DirectPost`), or None: nobody to send it to yet."""


@dataclass(frozen=True, slots=True)
class _Target:
    """One location to send a post to; `resume`: an earlier process may have sent it already (first tried at
    `first_try_at`), so only a platform that still recognises the idempotency key may be asked again."""

    where: ChannelRef
    first_try_at: datetime
    resume: bool


@dataclass(frozen=True, slots=True)
class _Retry:
    job: Job
    target: _Target
    attempt: int
    at: datetime
    post: Post | None = None  # a post decided when it was claimed (the RSVP deadline's): sent as it is


def _kind_label(post_key: str) -> str:
    """The kind of post a post key names (`circle/meeting/kind/start`), as `/metrics` labels it."""
    parts = post_key.split("/")
    try:
        return PostKind(parts[2]).name.lower()
    except (IndexError, ValueError):
        return "other"


async def _none() -> None:
    return None


def _log_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sending direct reminders failed", exc_info=task.exception())


class Timeline:
    """Runs the plan: catches up at start, then sends each post at its time through APScheduler."""

    def __init__(self, host: TimelineHost, scheduler: AsyncIOScheduler | None = None) -> None:
        self.host = host
        self._scheduler = scheduler
        self._lock = asyncio.Lock()
        self._prepared = False
        self._interrupted: dict[str, list[Delivery]] = {}  # post key -> locations an earlier process left unsent
        self._retries: dict[str, _Retry] = {}  # delivery key -> its next try
        self._direct_to: dict[str, ChannelRef] = {}  # post key -> the direct conversation it is claimed for
        self._inflight: set[str] = set()  # delivery keys being sent now
        self._batch: list[Job] = []
        self._send_slots = asyncio.Semaphore(SEND_CONCURRENCY)
        self._circles = {c.slug: c for c in host.settings.circles}  # settings are frozen; look-ups by slug are many
        self._replan: set[str] = set()  # circles whose meetings a post changed (a deadline postponed or cancelled)
        self._dm_task: asyncio.Task[int] | None = None  # the direct reminders being sent now
        self._mirror: set[str] = set()  # circles whose next meeting a platform's own events should show again
        # who holds the deliveries this process claims, and for how long without renewing (wall clock: a lease
        # says a process is alive, whatever time the bot's clock reads)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._lease = timedelta(seconds=host.settings.delivery_lease_seconds)
        self._dms = DirectSender(host, self.owner, self._lease)

    def _lease_until(self) -> datetime:
        return datetime.now(UTC) + self._lease

    # planning --------------------------------------------------------------------------------------
    async def fill_syllabus(self, circles: Sequence[CircleSettings] | None = None) -> list[Meeting]:
        """Add the meetings the syllabus calls for now (for the given circles, or all); returns them."""
        host, now = self.host, self.host.clock.now()
        added: list[Meeting] = []
        for circle in host.settings.circles if circles is None else circles:
            if not circle.syllabus:
                continue
            meetings = await host.store.meetings(circle.slug, ending_after=None, limit=10_000, any_status=True)
            for start, slug, part, parts, uid in syllabus_additions(circle, host.zone(circle), meetings, now,
                                                                    host.readings):
                m = await host.store.add_meeting(circle.slug, start, start + circle.meets.duration, slug, None, now,
                                                part=part, parts=parts, calendar_uid=uid)
                log.info("syllabus: meeting #%d of %s on %s: %s", m.id, circle.slug, start, slug)
                added.append(m)
        return added

    async def current_plan(self, circle: CircleSettings | None = None, now: datetime | None = None) -> list[Job]:
        """The plan for every circle, or for one, at `now` (default: the clock's)."""
        now = now or self.host.clock.now()
        since = now - LOOKBACK - SUMMARY_GRACE
        if circle is not None:
            return plan([circle], await self.host.store.meetings(circle.slug, ending_after=since, limit=100_000), now)
        return plan(self.host.settings.circles, await self.host.store.all_meetings(ending_after=since), now)

    # running ---------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Before the adapters take commands: note the deliveries an earlier process left unfinished (they are
        resent with their idempotency keys once the adapters can send) and fill the syllabus (database only)."""
        store, now = self.host.store, self.host.clock.now()
        for key, kind in await store.unfinished_posts():  # claimed before deliveries were kept per location
            log.warning("post %s (%s) was interrupted while sending; not resent, recorded as missed", key, kind)
            await store.finish_post(key, "missed", now, detail="interrupted")
        self._interrupted = {}
        # a SQLite file has one process: what is 'sending' was left by an earlier one. A shared database: only
        # what a process stopped renewing (the others' are being sent now)
        for d in await store.take_over_deliveries(self.owner, self.host.adapters, now=datetime.now(UTC),
                                                  lease_until=self._lease_until(), held_too=not store.db.shared):
            self._interrupted.setdefault(d.post_key, []).append(d)
        async with self._lock:
            await self.fill_syllabus()
        self._prepared = True

    async def start(self) -> None:
        """Once the adapters can send: resend what an earlier process was sending, send or record what fell
        due while the bot was down, then load the in-memory jobs. (Runs `prepare` first if it has not run.)"""
        if not self._prepared:
            await self.prepare()
        await self.rebuild()
        await self._drop_interrupted()
        if self.host.store.db.shared and self._scheduler is not None:
            from apscheduler.triggers.interval import IntervalTrigger

            self._scheduler.add_job(self.keep_leases, IntervalTrigger(seconds=self._lease.total_seconds() / 3),
                                    id="timeline:leases", replace_existing=True, coalesce=True, max_instances=1)

    async def _drop_interrupted(self) -> None:
        # what is left was being sent for a meeting that has been cancelled or moved since: nothing to resume
        left = [d for ds in self._interrupted.values() for d in ds]
        self._interrupted = {}
        if left:
            now = self.host.clock.now()
            await self._finish(
                [(d.post_key, d.where, "missed", now, None, "interrupted; its meeting was cancelled or moved")
                 for d in left])

    async def keep_leases(self) -> int:
        """Several processes on one database: renew this process's hold on the locations it is sending, and
        take over those of a process that stopped renewing (killed, cut off) to resend them with their
        idempotency keys (the platform returns what that process may have posted). Returns how many it took."""
        store = self.host.store
        await store.renew_leases(self.owner, self._lease_until())
        await DirectReminders(store.db).renew(self.owner, self._lease_until())
        taken = await store.take_over_deliveries(self.owner, self.host.adapters, now=datetime.now(UTC),
                                                 lease_until=self._lease_until(), held_too=False)
        if taken:
            log.warning("took over %d unfinished deliveries of a process that stopped; resending them with their "
                        "keys", len(taken))
            for d in taken:
                self._interrupted.setdefault(d.post_key, []).append(d)
            await self.tick()
            await self._drop_interrupted()
        return len(taken)

    async def rebuild(self, circle: CircleSettings | None = None) -> None:
        """Recompute from the database (for one circle after a change there, or for all): fill the syllabus,
        run what is due, and reload the scheduler's jobs for what is due after that, both at the same `now`
        (a post due in between would otherwise be neither sent nor scheduled)."""
        async with self._lock:
            await self.fill_syllabus(None if circle is None else [circle])
            now = self.host.clock.now()
            jobs = await self.current_plan(circle, now)
            await self._run_due(jobs, now, circle)
            if self._scheduler is not None:
                await self._load_jobs(jobs, circle, now)
            self._mirror.update([c.slug for c in self.host.settings.circles] if circle is None else [circle.slug])
        await self._replan_changed()
        await self._mirror_meetings()

    async def tick(self) -> int:
        """Run every post that is due now and not yet done, and every retry that is due; returns how many
        posts were sent (to at least one location)."""
        async with self._lock:
            now = self.host.clock.now()
            sent = await self._run_due(await self.current_plan(None, now), now)
            sent += await self._run_retries(now)
        await self._replan_changed()
        await self._mirror_meetings()
        await self.direct_reminders_sent()
        return sent

    async def _mirror_meetings(self) -> None:
        """Show each circle's next meeting (where it changed) as the platforms' own events (`MeetingMirror`)."""
        mirrors = [a for a in self.host.adapters.values() if isinstance(a, MeetingMirror) and a.mirrors_meetings]
        circles, self._mirror = self._mirror, set()
        if not mirrors:
            return
        store, now = self.host.store, self.host.clock.now()
        for slug in sorted(circles):
            circle = self._circles.get(slug)
            if circle is None:
                continue
            locations = self.host.locations(circle)
            if not any(loc.platform == a.platform for a in mirrors for loc in locations):
                continue
            coming = await store.meetings(slug, ending_after=now, limit=100, any_status=True)
            cancelled = frozenset(m.id for m in coming if m.status != "scheduled")
            nxt = next((m for m in coming if m.status == "scheduled"), None)
            event = None if nxt is None else meeting_event(self.host, circle, nxt)
            for adapter in mirrors:
                try:
                    await adapter.mirror_meeting(slug, [loc for loc in locations if loc.platform == adapter.platform],
                                                 event, cancelled)
                except Exception:
                    log.exception("could not show the next meeting of %s as a %s event", slug, adapter.platform)

    def _start_direct_reminders(self, now: datetime) -> None:
        """Send the direct reminders due now, in the background (they are throttled); one sweep at a time."""
        if self._dm_task is None or self._dm_task.done():
            self._dm_task = asyncio.create_task(self._dms.sweep(now), name="circlebot-direct-reminders")
            self._dm_task.add_done_callback(_log_failure)
            self._dm_task.add_done_callback(self._schedule_direct_retry)

    def _schedule_direct_retry(self, task: asyncio.Task[int]) -> None:
        """A sweep left direct reminders to try again: sweep again then (the minutely sweep would be late for
        the first, short pauses)."""
        at = self._dms.next_try
        if self._scheduler is None or at is None or task.cancelled():
            return
        from apscheduler.triggers.date import DateTrigger

        self._scheduler.add_job(self._direct_reminders_job, DateTrigger(at), id="timeline:dm-retry",
                                replace_existing=True, misfire_grace_time=None)

    async def direct_reminders_sent(self) -> None:
        """Wait for the direct reminders being sent (if any) to be done."""
        task = self._dm_task
        if task is not None:
            await asyncio.wait([task])

    async def _direct_reminders_job(self) -> None:
        self._start_direct_reminders(self.host.clock.now())
        await self.direct_reminders_sent()

    async def close(self) -> None:
        """Stop sending direct reminders (the bot is stopping): those claimed and not sent yet stay claimed, and
        go out after the next start while still useful (`dms`)."""
        if self._dm_task is not None and not self._dm_task.done():
            self._dm_task.cancel()
            await asyncio.wait([self._dm_task])

    async def _replan_changed(self) -> None:
        """Plan again the circles whose meetings a post changed: a postponed meeting's posts run for its new
        time (its reading goes out again), a cancelled one's stop."""
        while self._replan:
            circle = self._circles.get(self._replan.pop())
            if circle is not None:
                await self.rebuild(circle)

    async def _run_due(self, jobs: Sequence[Job], now: datetime, circle: CircleSettings | None = None) -> int:
        due = [job for job in jobs if job.due_at <= now]
        sent = await self._run_jobs(due + await self._decided_elsewhere(due, now, circle), now)
        await self.host.polls.close_due_polls()
        self._start_direct_reminders(now)
        return sent

    async def _run_jobs(self, jobs: Sequence[Job], now: datetime) -> int:
        """Claim the posts together (one transaction), send each to its locations concurrently, and mark each
        location as the platform takes it (batched). A post whose meeting was cancelled or moved since the job
        was planned is not sent; one that is too late is recorded as missed."""
        if not jobs:
            return 0
        deadlines = [j for j in jobs if j.kind is PostKind.DEADLINE]
        if deadlines and len(deadlines) < len(jobs):  # first: what a deadline changes, the other posts see
            sent = await self._run_jobs(deadlines, now)
            return sent + await self._run_jobs([j for j in jobs if j.kind is not PostKind.DEADLINE], now)
        store = self.host.store
        late = [j for j in jobs if now >= j.expires_at]
        live = [j for j in jobs if now < j.expires_at]
        if late:
            for key in await store.record_missed([self._claim(j, ()) for j in late], now, "too late"):
                log.warning("post %s was missed: the bot was not running in time", key)
                self.host.metrics.posts.labels(_kind_label(key), "missed").inc()
            gone = [d for j in late for d in self._interrupted.pop(j.key, [])]
            await self._finish([(d.post_key, d.where, "missed", now, None, "too late") for d in gone])
        if not live:
            return 0
        reminders = [j.meeting_id for j in live if j.kind is PostKind.REMINDER]
        meetings, rsvps_of = await asyncio.gather(  # read together: a batch's RSVPs for its reminders
            store.meetings_by_id(j.meeting_id for j in live),
            store.rsvps_of(reminders) if len(reminders) > 1 else _none())
        # a decided post is sent as decided, though its meeting moved or was cancelled since (by the decision)
        decisions = await Decisions(store).of([j.key for j in live if j.kind in DECIDED]) if any(
            j.kind in DECIDED for j in live) else {}
        current: list[tuple[Job, Meeting]] = []
        for j in live:
            m = meetings.get(j.meeting_id)
            if m is None or (j.key not in decisions and (m.status != "scheduled" or job_key(m, j.kind) != j.key)):
                log.info("post %s not sent: its meeting was cancelled or moved", j.key)
                continue
            current.append((j, m))
        direct: dict[str, Post] = {}  # a post for one member: decided now, sent to their direct conversation
        for j, m in list(current):
            if j.kind is PostKind.FACILITATOR:
                made = await self._direct(j, m)
                if made is None:
                    current.remove((j, m))  # nobody to send it to yet: due again at the next tick
                    continue
                direct[j.key] = made[1]
                self._direct_to[j.key] = self._direct_location(j, made[0])
        claims = [self._claim(j, tuple(self._locations(j))) for j, _ in current]
        if store.db.shared:  # a post with no location here may have one in a process running its platform
            claims = [c for c in claims if c.locations]
        self._mirror.update(j.circle for j, _ in current if j.kind is PostKind.SUMMARY)  # it ended: the next one
        new = await store.claim_posts(claims, now, owner=self.owner, lease_until=self._lease_until())
        work = []
        for j, m in current:
            # the locations claimed now, and what an earlier (or a stopped) process left unfinished
            targets = [_Target(where, now, resume=False) for where in new.get(j.key, ())]
            targets += [_Target(d.where, d.first_try_at, resume=True) for d in self._interrupted.pop(j.key, [])]
            if not targets:
                continue
            decided: Post | None = direct.get(j.key)
            if j.kind in DECIDED:  # claimed just now (or never finished): decided (and acted on) once, by one
                found = await self._decide(j, m, now, decisions.get(j.key),
                                           {t.where.platform for t in targets if not t.resume})
                if not isinstance(found, Post):
                    await self._finish([(j.key, t.where, *found) for t in targets])
                    continue
                decided = found
            work.append(self._deliver_post(j, m, targets, rsvps_of=rsvps_of, post=decided))
        return sum(await asyncio.gather(*work))

    async def _decide(self, job: Job, meeting: Meeting, now: datetime, stored: Decision | None,
                      fresh: set[str]) -> Post | tuple[str, datetime, str | None, str | None]:
        """The post of a kind decided as it is claimed (see `turnout`): the RSVP deadline's outcome (a meeting
        it changed is planned again), the nudge; or how its deliveries end when there is nothing to post.

        Decided once per post: the decision `stored` (by this process or another, on any platform) when there
        is one; otherwise this process decides and stores it, first wins (a decision stored meanwhile by
        another process stands instead, and only the decision that stands moves or cancels the meeting). The
        members it names to tell privately are told by the deciding process on the platforms it runs, and by
        each other process on those of the platforms it claimed locations on now (`fresh`) that the deciding
        one did not run."""
        circle = self._circles.get(job.circle)
        decision = stored
        try:
            assert circle is not None
            if decision is None:
                change = None
                if job.kind is PostKind.NUDGE:
                    post = await nudge(self.host, meeting, circle)
                    tell: tuple[UserRef, ...] = ()
                else:
                    outcome = await at_deadline(self.host, meeting, circle, now, job.key)
                    post, change, tell = outcome.post, outcome.change, outcome.tell
                nothing = "nobody to nudge" if post is None else None
                ours = Decision(job.key, job.circle, job.meeting_id, job.kind.value, job.due_at, job.expires_at,
                                post, "sent" if nothing else "post", nothing, tell, tuple(sorted(self.host.adapters)))
                decision, won = await Decisions(self.host.store).decide(ours, change, now)
                if won and change is not None:
                    self._replan.add(circle.slug)
                if not won:
                    log.info("the %s post of meeting %d was decided by another process: sending its decision",
                             job.kind.value, meeting.id)
                    stored = decision
        except Exception as e:
            log.exception("the %s post of meeting %d could not be decided", job.kind.value, meeting.id)
            return ("missed", now, None, f"failed: {type(e).__name__}")
        if stored is not None and job.kind is PostKind.DEADLINE:
            # decided elsewhere (another process, or this one before a restart), and perhaps the meeting with
            # it: read the meetings again and plan the circle anew (a postponed meeting's posts for its new time)
            self.host.store.forget_meetings()
            self._replan.add(job.circle)
        if decision.post is None:
            return (decision.state, now, None, decision.detail)
        if stored is None:  # decided here: tell those on the platforms this process runs
            people = [u for u in decision.tell if u.platform in self.host.adapters]
        else:
            people = [u for u in decision.tell if u.platform in fresh and u.platform not in decision.told]
        return await self._tell(job, decision.post, people) if people else decision.post

    async def _tell(self, job: Job, post: Post, people: Sequence[UserRef]) -> Post:
        """Tell people privately, by direct message where their platform has them; the others are mentioned
        in the post instead (returned)."""
        mention: list[UserRef] = []
        for user in people:
            adapter = self.host.adapters.get(user.platform)
            if not isinstance(adapter, DirectMessages):
                mention.append(user)
                continue
            try:
                await adapter.send_direct(user, replace(post, controls=()), key=f"{job.key}@dm/{user.id}")
            except Exception as e:  # refused, or the platform failed: they see the post in the channel
                log.warning("could not tell %s by direct message about %s: %s: %s", user.id, job.key,
                            type(e).__name__, e)
                mention.append(user)
        return replace(post, mentions=tuple(mention), notify=bool(mention)) if mention else post

    async def _decided_elsewhere(self, due: Sequence[Job], now: datetime, circle: CircleSettings | None
                                 ) -> list[Job]:
        """The decided posts still useful that are not in the plan `due` (their meeting moved or was cancelled
        by the decision, before this process sent them to its locations): to send as decided."""
        planned = {j.key for j in due}
        out = []
        for d in await Decisions(self.host.store).still_useful(now):
            if d.key in planned or d.circle not in self._circles or (circle is not None and d.circle != circle.slug):
                continue
            try:
                kind = PostKind(d.kind)
            except ValueError:
                continue
            out.append(Job(d.key, d.circle, d.meeting_id, kind, d.due_at, d.expires_at))
        return out

    async def _finish(self, rows: Sequence[tuple[str, ChannelRef, str, datetime, str | None, str | None]]) -> None:
        """Record how deliveries ended (sent, missed), and count them for `/metrics`."""
        await self.host.store.finish_deliveries(rows)
        posts = self.host.metrics.posts
        for key, _where, state, *_ in rows:
            posts.labels(_kind_label(key), state).inc()

    def _claim(self, job: Job, locations: tuple[ChannelRef, ...]) -> PostClaim:
        return PostClaim(job.key, job.circle, job.meeting_id, job.kind.value, job.due_at, locations)

    async def _direct(self, job: Job, meeting: Meeting) -> tuple[UserRef, Post] | None:
        circle = self._circles.get(job.circle)
        try:
            found = await self.host.direct_post(job.kind, meeting, circle) if circle is not None else None
        except Exception:
            log.exception("the %s post of meeting %d could not be composed", job.kind.value, meeting.id)
            return None
        if found is None or found[0].platform not in self.host.adapters:
            return None
        return found

    def _direct_location(self, job: Job, user: UserRef) -> ChannelRef:
        """Where a post for `user` alone goes: their direct conversation where the platform has them (Discord
        DMs, Matrix direct rooms); elsewhere (the console, one terminal) the circle's channel there."""
        if isinstance(self.host.adapters.get(user.platform), DirectMessages):
            return direct_channel(user)
        circle = self._circles.get(job.circle)
        here = [c for c in self.host.locations(circle) if c.platform == user.platform] if circle else []
        return here[0] if here else direct_channel(user)

    def _locations(self, job: Job) -> list[ChannelRef]:
        if job.kind is PostKind.FACILITATOR:
            where = self._direct_to.pop(job.key, None)
            return [where] if where is not None else []
        circle = self._circles.get(job.circle)
        return self.host.locations(circle) if circle is not None else []

    async def _deliver_post(self, job: Job, meeting: Meeting, targets: Sequence[_Target], attempt: int = 0,
                            rsvps_of: Mapping[int, list[tuple[UserRef, RsvpAnswer]]] | None = None,
                            post: Post | None = None) -> int:
        """Compose one post (unless it was decided already: `post`) and send it to each target location
        concurrently; 1 if any location took it."""
        host = self.host
        circle = self._circles.get(job.circle)
        try:
            assert circle is not None
            post = post or await compose(host, job.kind, meeting, circle, rsvps_of)
            roots = await self._thread_roots(job, meeting)
        except Exception as e:
            log.exception("post %s could not be composed", job.key)
            await self._finish([(job.key, t.where, "missed", host.clock.now(), None,
                                                f"failed: {type(e).__name__}") for t in targets])
            return 0
        if len(targets) == 1:  # the common case: no task per location
            t = targets[0]
            return int(await self._deliver_one(job, post, t, roots.get((t.where.platform, t.where.id)), attempt))
        sent = await asyncio.gather(*(self._deliver_one(job, post, t, roots.get((t.where.platform, t.where.id)),
                                                        attempt) for t in targets))
        return 1 if any(sent) else 0

    async def _thread_roots(self, job: Job, meeting: Meeting) -> dict[tuple[str, str], MessageRef]:
        if job.kind is not PostKind.QUESTIONS:
            return {}
        refs = await self.host.store.post_messages(job_key(meeting, PostKind.ASSIGNMENT))
        return {(r.channel.platform, r.channel.id): r for r in refs}

    async def _deliver_one(self, job: Job, post: Post, target: _Target, root: MessageRef | None,
                           attempt: int) -> bool:
        """Send a post to one location with its idempotency key; on failure, try again later."""
        host, where = self.host, target.where
        dkey = delivery_key(job.key, where)
        if dkey in self._inflight:
            return False
        adapter = host.adapters.get(where.platform)
        now = host.clock.now()
        if adapter is None:
            await self._finish([(job.key, where, "missed", now, None, f"{where.platform} not running")])
            return False
        if target.resume:
            window = adapter.dedup_window
            if now - target.first_try_at >= window:
                log.warning("post %s was interrupted while sending to %s %s, too long ago for the platform to "
                            "recognise a resend: recorded as missed", job.key, where.platform, where.id)
                await self._finish([(job.key, where, "missed", now, None,
                                                    "interrupted; the platform can no longer tell if it was posted")])
                return False
        self._inflight.add(dkey)
        try:
            try:
                async with self._send_slots:
                    alone = direct_recipient(where)
                    if alone is not None and isinstance(adapter, DirectMessages):  # a post for one member
                        ref = await adapter.send_direct(UserRef(where.platform, alone), post, key=dkey)
                    else:
                        ref = await adapter.send(where, replace(post, thread_of=root), key=dkey)
            except DirectRefused as e:  # they take no direct messages: trying again will not help
                log.warning("%s does not take direct messages: %s not sent", alone, job.key)
                await self._finish([(job.key, where, "missed", host.clock.now(), None, f"refused: {e}")])
                return False
            except Exception as e:
                log.warning("could not send %s to %s %s (attempt %d): %s: %s", job.key, where.platform, where.id,
                            attempt + 1, type(e).__name__, e)
                self.host.metrics.posts.labels(_kind_label(job.key), "failed").inc()
                await self._retry_later(job, target, attempt + 1, e,
                                        post if job.kind in DECIDED or job.kind is PostKind.FACILITATOR else None)
                return False
            await self._finish([(job.key, where, "sent", host.clock.now(), ref.id, None)])
            return True
        finally:
            self._inflight.discard(dkey)

    async def _retry_later(self, job: Job, target: _Target, attempt: int, error: Exception,
                           post: Post | None = None) -> None:
        """Try a location again after a growing pause, as long as the post is still useful; else it is missed."""
        delay = min(RETRY_MAX, RETRY_FIRST * 2 ** min(attempt - 1, 16))
        when = self.host.clock.now() + delay
        where = target.where
        if when >= job.expires_at:
            log.warning("post %s was missed on %s %s: it could not be sent before %s", job.key, where.platform,
                        where.id, job.expires_at)
            await self._finish([(job.key, where, "missed", self.host.clock.now(), None,
                                                     f"not sent in time ({type(error).__name__})")])
            return
        dkey = delivery_key(job.key, where)
        self._retries[dkey] = _Retry(job, target, attempt, when, post)
        if self._scheduler is not None:
            from apscheduler.triggers.date import DateTrigger

            self._scheduler.add_job(self._fire_retries, DateTrigger(when), id=f"retry:{dkey}", replace_existing=True,
                                    misfire_grace_time=None)

    async def _run_retries(self, now: datetime) -> int:
        """Send again every location whose retry is due (a post composed once for its locations)."""
        due = [r for r in self._retries.values() if r.at <= now]
        if not due:
            return 0
        for r in due:
            self._retries.pop(delivery_key(r.job.key, r.target.where), None)
        store = self.host.store
        meetings = await store.meetings_by_id(r.job.meeting_id for r in due)
        by_post: dict[str, list[_Retry]] = {}
        for r in due:
            by_post.setdefault(r.job.key, []).append(r)
        work = []
        for group in by_post.values():
            job, m, decided = group[0].job, meetings.get(group[0].job.meeting_id), group[0].post
            stale = m is None or (decided is None and (m.status != "scheduled" or job_key(m, job.kind) != job.key))
            if now >= job.expires_at or stale:  # a decided post reports its own change: sent as decided
                detail = "too late" if now >= job.expires_at else "its meeting was cancelled or moved"
                await self._finish([(job.key, r.target.where, "missed", now, None, detail) for r in group])
                continue
            assert m is not None
            work.append(self._deliver_post(job, m, [r.target for r in group], max(r.attempt for r in group),
                                           post=decided))
        return sum(await asyncio.gather(*work))

    async def _fire_retries(self) -> None:
        await self._run_retries(self.host.clock.now())

    async def _load_jobs(self, jobs: Sequence[Job], circle: CircleSettings | None,
                         now: datetime | None = None) -> None:
        """Replace the scheduler's jobs for one circle (or all) with `jobs` due after `now`, within the horizon.

        Job ids are namespaced (`post:<key>`, `poll:<id>`, `retry:<delivery>`, `timeline:reload`), so no circle
        slug can name another kind of job."""
        from apscheduler.triggers.date import DateTrigger

        assert self._scheduler is not None
        now = now or self.host.clock.now()
        horizon = now + HORIZON
        if circle is None:
            for old in self._scheduler.get_jobs():
                if not old.id.startswith("retry:"):
                    old.remove()
            self._scheduler.add_job(self.rebuild, DateTrigger(horizon), id="timeline:reload", replace_existing=True,
                                    misfire_grace_time=None)
            if any(c.turnout.dm_reminders for c in self.host.settings.circles):
                from apscheduler.triggers.interval import IntervalTrigger

                self._scheduler.add_job(self._direct_reminders_job, IntervalTrigger(minutes=1), id="timeline:dm",
                                        replace_existing=True, coalesce=True, misfire_grace_time=None)
        else:
            for old in self._scheduler.get_jobs():
                if old.id.startswith(f"post:{circle.slug}/"):
                    old.remove()
        for job in jobs:
            if now < job.due_at <= horizon:
                self._scheduler.add_job(
                    self._fire, DateTrigger(job.due_at), args=[job], id=f"post:{job.key}", replace_existing=True,
                    misfire_grace_time=max(1, int((job.expires_at - job.due_at).total_seconds())),
                )
        for poll in await self.host.store.open_polls_closing(before=horizon):
            assert poll.closes_at is not None
            self._scheduler.add_job(self._close_polls, DateTrigger(max(poll.closes_at, now)), id=f"poll:{poll.id}",
                                    replace_existing=True, misfire_grace_time=None)

    async def _fire(self, job: Job) -> None:
        """A job's time has come. Jobs the scheduler starts together are run as one batch (one claim
        transaction); no lock: the claim in the database is what makes a post go out once."""
        self._batch.append(job)
        self.host.metrics.lateness.observe(max(0.0, (self.host.clock.now() - job.due_at).total_seconds()))
        await asyncio.sleep(0)  # let the jobs started in the same pass join
        batch, self._batch = self._batch, []
        await self._run_jobs(batch, self.host.clock.now())
        await self._replan_changed()
        await self._mirror_meetings()

    async def _close_polls(self) -> None:
        async with self._lock:
            await self.host.polls.close_due_polls()

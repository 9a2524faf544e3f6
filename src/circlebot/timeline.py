"""The timeline: every meeting's posts (assignment, reminder, start, end), planned and sent by themselves.

`plan()` is a pure function of (circles, stored meetings, now). The database is the truth; APScheduler holds
only in-memory jobs derived from it, with stable ids, rebuilt at start and after every change, and only for a
rolling horizon (a reload job at its end), so a large deployment does not keep weeks of jobs in memory.

Exactly-once, in the documented way:
- a post is *claimed* in the post log (unique key per circle, meeting, kind and start time) before it is sent,
  and marked sent with its platform message ids after;
- a claim found unfinished at start (the process died between claiming and marking) is never resent: it is
  recorded as missed ("interrupted"), so nothing is ever posted twice, and organisers see it in `upcoming`;
- a post that fell due while the bot was down is sent at start if it is still useful (the assignment and
  the reminder until the meeting starts, the questions until it ends, the summary until 12 hours after), and
  otherwise recorded as missed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from circlebot.config import CircleSettings
from circlebot.domain import ChannelRef, Control, MessageRef, Post, RsvpAnswer
from circlebot.recurrence import free_slots, lead_before
from circlebot.store import Meeting
from circlebot.text import Text, cmd, when

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from circlebot.app import App

log = logging.getLogger(__name__)

SUMMARY_GRACE = timedelta(hours=12)
HORIZON = timedelta(hours=24)
LOOKBACK = timedelta(days=2)


class PostKind(enum.StrEnum):
    ASSIGNMENT = "assignment"
    REMINDER = "reminder"
    START = "start"
    END = "end"


@dataclass(frozen=True, slots=True)
class Job:
    """One post of one meeting: when it is due and until when it is still worth sending."""

    key: str
    circle: str
    meeting_id: int
    kind: PostKind
    due_at: datetime
    expires_at: datetime


def job_key(meeting: Meeting, kind: PostKind) -> str:
    """Stable id: a moved meeting gets fresh posts for its new time; the same plan gives the same keys."""
    return f"{meeting.circle}/{meeting.id}/{kind.value}/{int(meeting.starts_at.timestamp())}"


def delivery_key(post_key: str, where: ChannelRef) -> str:
    """The idempotency key of one post at one location: the same in every process, unique per location."""
    return f"{post_key}@{where.platform}/{where.id}"


def plan(circles: Sequence[CircleSettings], meetings: Iterable[Meeting], now: datetime) -> list[Job]:
    """Every post of the given meetings that is not past its usefulness at `now`, plus those that are (so the
    caller can record them as missed), ordered by due time. Pure."""
    by_slug = {c.slug: c for c in circles}
    jobs: list[Job] = []
    for m in meetings:
        circle = by_slug.get(m.circle)
        if circle is None or m.status != "scheduled" or m.ends_at + SUMMARY_GRACE < now - LOOKBACK:
            continue
        t, zone = circle.timeline, circle.zone
        for kind, due, expires in (
            (PostKind.ASSIGNMENT, lead_before(m.starts_at, t.assignment, zone), m.starts_at),
            (PostKind.REMINDER, lead_before(m.starts_at, t.reminder, zone), m.starts_at),
            (PostKind.START, m.starts_at, m.ends_at),
            (PostKind.END, m.ends_at, m.ends_at + SUMMARY_GRACE),
        ):
            jobs.append(Job(job_key(m, kind), m.circle, m.id, kind, due, expires))
    jobs.sort(key=lambda j: (j.due_at, j.meeting_id, list(PostKind).index(j.kind)))
    return jobs


def syllabus_fill(
    circle: CircleSettings, zone: Any, meetings: Sequence[Meeting], now: datetime, parts_of: dict[str, int]
) -> list[tuple[datetime, str, int | None, int | None]]:
    """Meetings the syllabus should add now: the circle's free meeting times up to its assignment lead time
    (plus a day), filled in syllabus order with readings (or parts of readings) no meeting has taken yet.
    Free as `recurrence.free_slots` says: a slot holding any meeting, even a cancelled one (that is how
    `skip` marks a date), is not free. Pure."""
    if not circle.syllabus:
        return []
    taken_slots = {m.starts_at for m in meetings}
    used = {(m.reading, m.part) for m in meetings if m.status == "scheduled"}
    queue: list[tuple[str, int | None, int | None]] = []
    for slug in circle.syllabus:
        count = parts_of.get(slug, 1)
        for part in range(1, count + 1):
            key = (slug, part if count > 1 else None)
            if key not in used:
                queue.append((slug, key[1], count if count > 1 else None))
    horizon = now + circle.timeline.assignment.approx + timedelta(days=1)
    out: list[tuple[datetime, str, int | None, int | None]] = []
    for start in free_slots(circle, zone, taken_slots, now):
        if start > horizon or not queue:
            break
        slug, part_no, part_count = queue.pop(0)
        out.append((start, slug, part_no, part_count))
    return out


class Timeline:
    """Runs the plan: catches up at start, then sends each post at its time through APScheduler."""

    def __init__(self, app: App, scheduler: AsyncIOScheduler | None = None) -> None:
        self.app = app
        self._scheduler = scheduler
        self._lock = asyncio.Lock()
        self._prepared = False

    # planning --------------------------------------------------------------------------------------
    async def fill_syllabus(self, circles: Sequence[CircleSettings] | None = None) -> list[Meeting]:
        """Add the meetings the syllabus calls for now (for the given circles, or all); returns them."""
        app, now = self.app, self.app.clock.now()
        added: list[Meeting] = []
        for circle in app.settings.circles if circles is None else circles:
            if not circle.syllabus:
                continue
            meetings = await app.store.meetings(circle.slug, ending_after=None, limit=10_000, any_status=True)
            parts_of = {}
            for slug in circle.syllabus:
                reading = app.readings.get(slug)
                if reading is not None and circle.split_long_readings:
                    parts_of[slug] = len(reading.parts(circle.part_minutes))
            for start, slug, part, parts in syllabus_fill(circle, app.zone(circle), meetings, now, parts_of):
                m = await app.store.add_meeting(circle.slug, start, start + circle.meets.duration, slug, None, now,
                                                part=part, parts=parts)
                log.info("syllabus: meeting #%d of %s on %s: %s", m.id, circle.slug, start, slug)
                added.append(m)
        return added

    async def current_plan(self, circle: CircleSettings | None = None) -> list[Job]:
        """The plan for every circle, or for one."""
        now = self.app.clock.now()
        since = now - LOOKBACK - SUMMARY_GRACE
        if circle is not None:
            return plan([circle], await self.app.store.meetings(circle.slug, ending_after=since, limit=100_000), now)
        return plan(self.app.settings.circles, await self.app.store.all_meetings(ending_after=since), now)

    # running ---------------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Before the adapters take commands: settle interrupted claims and fill the syllabus (database only)."""
        now = self.app.clock.now()
        for key, kind in await self.app.store.unfinished_posts():
            log.warning("post %s (%s) was interrupted while sending; not resent, recorded as missed", key, kind)
            await self.app.store.finish_post(key, "missed", now, detail="interrupted")
        async with self._lock:
            await self.fill_syllabus()
        self._prepared = True

    async def start(self) -> None:
        """Once the adapters can send: send or record what fell due while the bot was down, then load the
        in-memory jobs. (Runs `prepare` first if it has not run.)"""
        if not self._prepared:
            await self.prepare()
        await self.rebuild()

    async def rebuild(self, circle: CircleSettings | None = None) -> None:
        """Recompute from the database (for one circle after a change there, or for all): fill the syllabus,
        run what is due, and reload the scheduler's jobs."""
        async with self._lock:
            await self.fill_syllabus(None if circle is None else [circle])
            jobs = await self.current_plan(circle)
            await self._run_due(jobs)
            if self._scheduler is not None:
                await self._load_jobs(jobs, circle)

    async def tick(self) -> int:
        """Run every post that is due now and not yet done; returns how many were sent."""
        async with self._lock:
            return await self._run_due(await self.current_plan())

    async def _run_due(self, jobs: Sequence[Job]) -> int:
        now = self.app.clock.now()
        sent = 0
        for job in jobs:
            if job.due_at <= now:
                sent += await self.run(job)
        await self.app.close_due_polls()
        return sent

    async def run(self, job: Job) -> int:
        """Send one post exactly once (claim, send, mark); record it as missed when it is too late."""
        store, now = self.app.store, self.app.clock.now()
        if now >= job.expires_at:
            if await store.claim_post(job.key, job.circle, job.meeting_id, job.kind.value, job.due_at, now):
                await store.finish_post(job.key, "missed", now, detail="too late")
                log.warning("post %s was missed: the bot was not running between %s and %s", job.key,
                            job.due_at, job.expires_at)
            return 0
        if not await store.claim_post(job.key, job.circle, job.meeting_id, job.kind.value, job.due_at, now):
            return 0
        try:
            refs = await self._send(job)
        except Exception as e:
            log.exception("post %s failed", job.key)
            await store.finish_post(job.key, "failed", self.app.clock.now(), detail=type(e).__name__)
            return 0
        await store.finish_post(job.key, "sent" if refs else "failed", self.app.clock.now(), refs,
                                detail=None if refs else "no platform accepted it")
        return 1 if refs else 0

    async def _load_jobs(self, jobs: Sequence[Job], circle: CircleSettings | None) -> None:
        """Replace the scheduler's jobs for one circle (or all) with `jobs` due within the horizon."""
        from apscheduler.triggers.date import DateTrigger

        assert self._scheduler is not None
        now = self.app.clock.now()
        horizon = now + HORIZON
        if circle is None:
            self._scheduler.remove_all_jobs()
            self._scheduler.add_job(self.rebuild, DateTrigger(horizon), id="timeline/reload", replace_existing=True,
                                    misfire_grace_time=None)
        else:
            for old in self._scheduler.get_jobs():
                if old.id.startswith(f"{circle.slug}/"):
                    old.remove()
        for job in jobs:
            if now < job.due_at <= horizon:
                self._scheduler.add_job(
                    self._fire, DateTrigger(job.due_at), args=[job], id=job.key, replace_existing=True,
                    misfire_grace_time=max(1, int((job.expires_at - job.due_at).total_seconds())),
                )
        for poll in await self.app.store.open_polls_closing(before=horizon):
            assert poll.closes_at is not None
            self._scheduler.add_job(self._close_polls, DateTrigger(max(poll.closes_at, now)), id=f"poll/{poll.id}",
                                    replace_existing=True, misfire_grace_time=None)

    async def _fire(self, job: Job) -> None:
        # no lock: the claim in the database is what makes a post go out once, so jobs due together run together
        await self.run(job)

    async def _close_polls(self) -> None:
        async with self._lock:
            await self.app.close_due_polls()

    # composing -------------------------------------------------------------------------------------
    async def _send(self, job: Job) -> list[MessageRef]:
        app = self.app
        meeting = await app.store.meeting(job.meeting_id)
        circle = app.settings.circle(job.circle)
        if meeting is None or circle is None:
            return []
        post = await self.compose(job.kind, meeting, circle)
        refs: list[MessageRef] = []
        thread_roots: dict[tuple[str, str], MessageRef] = {}
        if job.kind is PostKind.START:
            assignment = job_key(meeting, PostKind.ASSIGNMENT)
            thread_roots = {(r.channel.platform, r.channel.id): r for r in await app.store.post_messages(assignment)}
        for loc in app.locations(circle):
            root = thread_roots.get((loc.platform, loc.id))
            try:
                refs.append(await app.adapters[loc.platform].send(loc, Post(
                    post.text, post.mentions, post.notify, post.meeting_id, post.controls, root),
                    key=delivery_key(job.key, loc)))
            except Exception:
                log.exception("could not send %s to %s %s", job.key, loc.platform, loc.id)
        return refs

    async def compose(self, kind: PostKind, m: Meeting, circle: CircleSettings) -> Post:
        """The text of one timeline post."""
        app = self.app
        reading = app.readings.get(m.reading)
        title = reading.title if reading else m.reading
        part = ""
        if m.part and m.parts and reading is not None:
            parts = reading.parts(circle.part_minutes)
            if len(parts) == m.parts:
                p = parts[m.part - 1]
                part = f" (part {m.part} of {m.parts}: {p.title}, about {p.minutes} min)"
            else:
                part = f" (part {m.part} of {m.parts})"
        starts = when(m.starts_at)
        lines: list[Text | str]
        if kind is PostKind.ASSIGNMENT:
            lines = [f"📖 **Reading for meeting #{m.id}**, " + starts + f": **{title}**{part}"]
            if reading is not None:
                lines.append(f"{reading.author}, {reading.publisher}, {reading.published:%-d %B %Y}. "
                             f"About {reading.minutes} min to read." + (f" Source: {reading.source}." if reading.source
                                                                         else ""))
                if reading.sections and not part:
                    lines.append("Sections: " + "; ".join(s.title for s in reading.sections) + ".")
                lines.append(f"> {reading.excerpt(300)}")
            lines.append("Coming? " + cmd(f"rsvp yes {m.id}") + " (or maybe / no).")
            return Post(Text.join("\n", lines), meeting_id=m.id, controls=(Control.RSVP,))
        if kind is PostKind.REMINDER:
            rsvps = await app.store.rsvps(m.id)
            coming = tuple(u for u, a in rsvps if a in (RsvpAnswer.YES, RsvpAnswer.MAYBE))
            counts = {a: sum(1 for _, x in rsvps if x is a) for a in RsvpAnswer}
            lines = [f"⏰ **Reminder: meeting #{m.id}** starts " + starts + f": **{title}**{part}",
                     f"RSVPs so far: {counts[RsvpAnswer.YES]} yes, {counts[RsvpAnswer.MAYBE]} maybe, "
                     f"{counts[RsvpAnswer.NO]} no."]
            if coming:
                lines.append("See you there: " + ", ".join(u.display for u in coming))
            return Post(Text.join("\n", lines), mentions=coming, notify=True, meeting_id=m.id,
                        controls=(Control.RSVP,))
        if kind is PostKind.START:
            from circlebot.features.questions import meeting_questions

            questions = await meeting_questions(app, m, circle)
            lines = [f"🟢 **Meeting #{m.id} has started**: **{title}**{part}. Check in with " + cmd("here")
                     + " until it ends.", "", "**Discussion questions**"]
            lines += [f"{i}. {q}" for i, q in enumerate(questions, 1)] or ["(none yet)"]
            return Post(Text.join("\n", lines), meeting_id=m.id, controls=(Control.CHECK_IN,))
        came = await app.store.checkins(m.id)
        lines = [f"🔴 **Meeting #{m.id} has ended.** Check-in is closed.",
                 f"{len(came)} came: {', '.join(u.display for u, _ in came) or 'nobody checked in'}."]
        upcoming = [x for x in await app.store.meetings(m.circle, ending_after=m.ends_at, limit=2) if x.id != m.id]
        if upcoming:
            nxt = upcoming[0]
            nxt_reading = app.readings.get(nxt.reading)
            lines.append(f"Next: meeting #{nxt.id}, " + when(nxt.starts_at)
                         + f": **{nxt_reading.title if nxt_reading else nxt.reading}**.")
        else:
            lines.append("No next meeting is scheduled yet.")
        return Post(Text.join("\n", lines), meeting_id=m.id)

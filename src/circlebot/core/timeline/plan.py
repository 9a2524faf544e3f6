"""The plan: which posts each meeting has and when each is due and still useful, and the meetings the
syllabus adds. Pure functions of (circles, stored meetings, now): no I/O, no clock."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from circlebot.config import CircleSettings
from circlebot.core.domain import ChannelRef
from circlebot.core.recurrence import free_slots, lead_before
from circlebot.readings import Collection
from circlebot.store import Meeting
from circlebot.store.queries import planned_uid

SUMMARY_GRACE = timedelta(hours=12)
LOOKBACK = timedelta(days=2)


class PostKind(enum.StrEnum):
    """The posts of a meeting, in order. The values are stored (post keys, the post log), so they stay as they
    are: the discussion questions, posted when the meeting starts, are "start"; the summary is "end"."""

    ASSIGNMENT = "assignment"
    REMINDER = "reminder"
    QUESTIONS = "start"
    SUMMARY = "end"
    DEADLINE = "deadline"  # the RSVP deadline's outcome (`[circles.turnout] deadline`): on, postponed, cancelled
    NUDGE = "nudge"  # the regulars who have not answered, and the maybes (`[circles.turnout] nudge`)
    FACILITATOR = "facilitator"  # the discussion questions, to the facilitator alone (`[circles.facilitators]`)


@dataclass(frozen=True, slots=True)
class Job:
    """One post of one meeting: when it is due and until when it is still worth sending."""

    key: str
    circle: str
    meeting_id: int
    kind: PostKind
    due_at: datetime
    expires_at: datetime


_KIND_NAME = {k: k.value for k in PostKind}  # plan() names 4 posts per meeting: skip the enum's descriptor
_KIND_ORDER = {k: i for i, k in enumerate(PostKind)}


def job_key(meeting: Meeting, kind: PostKind) -> str:
    """Stable id: a moved meeting gets fresh posts for its new time; the same plan gives the same keys."""
    return f"{meeting.circle}/{meeting.id}/{_KIND_NAME[kind]}/{int(meeting.starts_at.timestamp())}"


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
        local = m.starts_at.astimezone(zone) if t.assignment.days or t.reminder.days else None  # once, not twice
        for kind, due, expires in (
            (PostKind.ASSIGNMENT, lead_before(m.starts_at, t.assignment, zone, local), m.starts_at),
            (PostKind.REMINDER, lead_before(m.starts_at, t.reminder, zone, local), m.starts_at),
            (PostKind.QUESTIONS, m.starts_at, m.ends_at),
            (PostKind.SUMMARY, m.ends_at, m.ends_at + SUMMARY_GRACE),
        ):
            jobs.append(Job(job_key(m, kind), m.circle, m.id, kind, due, expires))
        if circle.turnout.deadline is not None:
            due = lead_before(m.starts_at, circle.turnout.deadline, zone)
            jobs.append(Job(job_key(m, PostKind.DEADLINE), m.circle, m.id, PostKind.DEADLINE, due, m.starts_at))
        if circle.turnout.nudge is not None:
            due = lead_before(m.starts_at, circle.turnout.nudge, zone)
            jobs.append(Job(job_key(m, PostKind.NUDGE), m.circle, m.id, PostKind.NUDGE, due, m.starts_at))
        if circle.facilitators.rota:
            due = lead_before(m.starts_at, circle.facilitators.questions_ahead, zone)
            jobs.append(Job(job_key(m, PostKind.FACILITATOR), m.circle, m.id, PostKind.FACILITATOR, due,
                            m.starts_at))
    jobs.sort(key=lambda j: (j.due_at, j.meeting_id, _KIND_ORDER[j.kind]))
    return jobs


def syllabus_fill(
    circle: CircleSettings, zone: Any, meetings: Sequence[Meeting], now: datetime, parts_of: dict[str, int],
    until: datetime | None = None,
) -> list[tuple[datetime, str, int | None, int | None]]:
    """Meetings the syllabus should add now: the circle's free meeting times up to its assignment lead time
    (plus a day), filled in syllabus order with readings (or parts of readings) no meeting has taken yet.
    Free as `recurrence.free_slots` says: a slot holding any meeting, even a cancelled one (that is how
    `skip` marks a date), is not free. With `until`, the meetings it will have added by then (what the
    calendar feeds show ahead), as the same rule fills them. Pure."""
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
    horizon = until or now + circle.timeline.assignment.approx + timedelta(days=1)
    out: list[tuple[datetime, str, int | None, int | None]] = []
    for start in free_slots(circle, zone, taken_slots, now):
        if start > horizon or not queue:
            break
        slug, part_no, part_count = queue.pop(0)
        out.append((start, slug, part_no, part_count))
    return out


def reading_parts(circle: CircleSettings, readings: Collection) -> dict[str, int]:
    """How many meetings each syllabus reading takes (its parts, when the circle splits long readings)."""
    out = {}
    for slug in circle.syllabus:
        reading = readings.get(slug)
        if reading is not None and circle.split_long_readings:
            out[slug] = len(reading.parts(circle.part_minutes))
    return out


def syllabus_additions(
    circle: CircleSettings, zone: Any, meetings: Sequence[Meeting], now: datetime, readings: Collection,
    until: datetime | None = None,
) -> list[tuple[datetime, str, int | None, int | None, str]]:
    """`syllabus_fill` with the readings' parts worked out, and each meeting's calendar UID (`planned_uid`, the
    next free one after the stored meetings'): (start, reading, part, parts, uid). The syllabus storing them
    and the calendar feed showing them ahead both take them from here, so a meeting keeps its UID. Pure."""
    taken = {m.uid for m in meetings}
    out = []
    for start, slug, part, parts in syllabus_fill(circle, zone, meetings, now, reading_parts(circle, readings),
                                                  until=until):
        uid = planned_uid(circle.slug, start, taken)
        taken.add(uid)
        out.append((start, slug, part, parts, uid))
    return out

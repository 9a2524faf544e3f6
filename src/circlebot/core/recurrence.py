"""When a circle meets: occurrences of its meeting rule, computed in its IANA zone and returned in UTC.

Every occurrence is built from the local date and wall-clock time, never by adding fixed intervals, so a
19:00 meeting stays at 19:00 local across daylight-saving changes. A local time that does not exist (the
clocks jump forward over it) resolves as PEP 495 defines for ``fold=0``: it is read with the offset in force
before the change, so it happens one hour later on the wall clock. A local time that happens twice (the
clocks go back) resolves to its first occurrence. Cron rules (see cron.py) select wall-clock times that are
resolved the same way, so a repeated hour is one meeting, not two. The host's zone is never used.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings, Lead
from circlebot.core import cron

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ANCHOR = date(2026, 1, 5)  # a Monday: fortnightly circles without `starting` count their weeks from here


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time on a day in `zone`, as UTC (see the module doc for gaps and folds)."""
    return datetime.combine(day, at, tzinfo=zone).replace(fold=0).astimezone(UTC)


def occurrences(circle: CircleSettings, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Meeting starts (UTC) strictly after `after`, in order, each once, without end."""
    meets = circle.meets
    if meets.cron is not None:
        yield from _cron_occurrences(cron.parse(meets.cron), zone, after)
        return
    assert meets.time is not None
    days = {_WEEKDAYS.index(d) for d in meets.weekdays}
    first = meets.starting
    anchor = ANCHOR if first is None else first - timedelta(days=first.weekday())  # the Monday of its week
    day = after.astimezone(zone).date() - timedelta(days=1)
    if first is not None and day < first:
        day = first
    while True:
        if day.weekday() in days and ((day - anchor).days // 7) % meets.every_weeks == 0:
            start = local_to_utc(day, meets.time, zone)
            if start > after:
                yield start
        day += timedelta(days=1)


def _cron_occurrences(rule: cron.CronRule, zone: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """A cron rule's wall-clock times, each resolved like a weekday rule's (see the module doc).

    Resolving can reorder or merge times around a change (01:30 in a spring gap is 02:30, the same instant
    as a 02:30 time), so each local day's times are resolved together, then sorted and kept once."""
    last = after
    day: date | None = None
    pending: list[datetime] = []
    start = datetime.combine(after.astimezone(zone).date() - timedelta(days=1), time(0))
    for wall in rule.wall_times(start):
        if wall.date() != day:
            for t in sorted(pending):
                if t > last:
                    yield t
                    last = t
            day, pending = wall.date(), []
        pending.append(local_to_utc(wall.date(), wall.time(), zone))


def lead_before(start: datetime, lead: Lead, zone: ZoneInfo, local: datetime | None = None) -> datetime:
    """When a post `lead` before a meeting at `start` is due: the lead's days on the calendar of `zone` (the
    same wall-clock time that many days earlier, resolved like a meeting time), then its exact part. `local`
    is `start` in `zone`, if the caller has it already."""
    if lead.days:
        local = local or start.astimezone(zone)
        start = local_to_utc(local.date() - timedelta(days=lead.days), local.time(), zone)
    return start - lead.exact


def free_slots(circle: CircleSettings, zone: ZoneInfo, held: Container[datetime], after: datetime
               ) -> Iterator[datetime]:
    """The circle's meeting times after `after` that no meeting holds, in order: the one notion of a free
    slot, for `schedule` (next), a split reading's later parts and the syllabus. `held` is the start of
    every meeting, scheduled or cancelled: a cancelled meeting, like `skip`'s placeholder, keeps its date
    from being filled again by itself (an organiser may still name the date)."""
    for start in occurrences(circle, zone, after):
        if start not in held:
            yield start


def next_occurrence(circle: CircleSettings, zone: ZoneInfo, after: datetime) -> datetime:
    return next(occurrences(circle, zone, after))


def occurrence_on(circle: CircleSettings, zone: ZoneInfo, day: date) -> datetime | None:
    """The circle's regular meeting time on a given local day, if it has one that day."""
    start = local_to_utc(day, time(0), zone) - timedelta(seconds=1)
    for occ in occurrences(circle, zone, start):
        local = occ.astimezone(zone).date()
        if local > day:
            return None
        if local == day:
            return occ
    return None


def rule_text(circle: CircleSettings, zone: ZoneInfo) -> str:
    """The meeting rule in words: "every Thursday at 19:00 (Europe/London), 90 minutes"."""
    meets = circle.meets
    minutes = int(meets.duration.total_seconds() // 60)
    length = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} minutes"
    if meets.cron is not None:
        return f"by the schedule `{meets.cron}` ({zone.key}), {length}"
    every = "every" if meets.every_weeks == 1 else f"every {meets.every_weeks} weeks on"
    days = " and ".join(d.capitalize() for d in meets.weekdays)
    assert meets.time is not None
    since = f", from {meets.starting:%a %-d %b %Y}" if meets.starting else ""
    return f"{every} {days} at {meets.time:%H:%M} ({zone.key}){since}, {length}"

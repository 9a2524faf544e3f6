"""`schedule`, `unschedule`, `skip`, `move` and `upcoming`: a circle's meetings and what each discusses.

Every change asks the timeline to re-plan, so the meeting's posts follow it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Container

from circlebot.core.commands import DATE, MEETING, READING, TIME, WHEN, Command, Param, UsageError
from circlebot.core.context import Context
from circlebot.core.recurrence import free_slots, local_to_utc, occurrence_on
from circlebot.core.text import Text
from circlebot.core.timeline import PostKind, plan
from circlebot.core.timeline.compose import turnout_summary
from circlebot.features.common import (
    check_date,
    meeting_or_error,
    meeting_title,
    reading_or_error,
    rsvp_summary,
    when,
)
from circlebot.store import Meeting
from circlebot.store.turnout import TurnoutStore

UPCOMING_LIMIT = 5
STATE_MARKS = {"sent": "sent", "missed": "⚠ missed", "failed": "⚠ failed", "claimed": "sending"}


async def _held(ctx: Context) -> dict[dt.datetime, Meeting]:
    """Every coming meeting time a meeting holds, scheduled or cancelled (`skip` leaves a cancelled one);
    where both are at one time, the scheduled one."""
    held: dict[dt.datetime, Meeting] = {}
    for m in await ctx.store.meetings(ctx.circle.slug, ending_after=ctx.now, limit=10_000, any_status=True):
        if m.starts_at not in held or m.status == "scheduled":
            held[m.starts_at] = m
    return held


async def _free_slots(ctx: Context, held: Container[dt.datetime], at: dt.time | None, count: int,
                      after: dt.datetime | None = None) -> list[dt.datetime]:
    """The circle's next `count` free meeting times (see `recurrence.free_slots`) after `after` (default:
    now), optionally at another local time on those days."""
    found: list[dt.datetime] = []
    for slot in itertools.islice(free_slots(ctx.circle, ctx.zone, held, after or ctx.now), 1000):
        candidate = local_to_utc(slot.astimezone(ctx.zone).date(), at, ctx.zone) if at else slot
        if candidate > ctx.now and candidate not in held:
            found.append(candidate)
            if len(found) == count:
                return found
    raise UsageError("I found no free meeting time in the circle's schedule; give a date.")


def _skipped_note(held: dict[dt.datetime, Meeting], start: dt.datetime) -> str:
    """Said when an organiser names a date the circle skips (or whose meeting was cancelled) to meet then."""
    before = held.get(start)
    if before is None or before.status == "scheduled":
        return ""
    if before.reading:
        return f" (Meeting #{before.id} at that time was cancelled; this one takes its place.)"
    return " (That date was skipped; this meeting brings it back.)"


async def _start_on(ctx: Context, day: dt.date, at: dt.time | None, example: str) -> dt.datetime:
    """A meeting start on a local date: at a given time, or at the circle's usual time that day."""
    check_date(ctx, day)
    if at is not None:
        start = local_to_utc(day, at, ctx.zone)
    else:
        found = occurrence_on(ctx.circle, ctx.zone, day)
        if found is None:
            raise UsageError(f"{ctx.circle.name} does not usually meet on {day:%A %-d %B %Y}; add a time, "
                             f"e.g. `{ctx.prefix}{example} {day.isoformat()} 19:00`.")
        start = found
    if start <= ctx.now:
        raise UsageError(f"{day.isoformat()}{f' {at:%H:%M}' if at else ''} has already passed; pick a later date.")
    clash = await ctx.store.meeting_starting(ctx.circle.slug, start)
    if clash is not None:
        raise UsageError(f"meeting #{clash.id} is already at that time; `{ctx.prefix}unschedule {clash.id}` "
                         "first to replace it.")
    return start


async def schedule(ctx: Context, slug: str, date: dt.date | str | None, time: dt.time | None) -> Text:
    reading = reading_or_error(ctx, slug)
    c = ctx.circle
    parts = reading.parts(c.part_minutes)
    split = len(parts) > 1 and c.split_long_readings
    held = await _held(ctx)
    if date is None or date == "next":
        starts = await _free_slots(ctx, held, time, len(parts) if split else 1)
    else:
        assert isinstance(date, dt.date)
        starts = [await _start_on(ctx, date, time, f"schedule {reading.slug}")]
        if split:  # the later parts at the next free meeting times after the first
            starts += await _free_slots(ctx, {*held, starts[0]}, None, len(parts) - 1, after=starts[0])
    created: list[Meeting] = []
    for i, start in enumerate(starts):
        part = parts[i] if split else None
        created.append(await ctx.store.add_meeting(
            c.slug, start, start + c.meets.duration, reading.slug, ctx.member_id, ctx.now,
            part=part.index if part else None, parts=part.count if part else None,
        ))
    await ctx.bot.changed(ctx.circle)
    lines: list[Text | str] = [f"Scheduled meeting #{m.id}: {meeting_title(ctx, m)} on " + when(m.starts_at) + "."
                               + _skipped_note(held, m.starts_at) for m in created]
    if len(parts) > 1 and not split:
        lines.append(f"This reading takes about {reading.minutes} min; split into {len(parts)} parts of about "
                     f"{c.part_minutes} min it would fit {len(parts)} meetings ({', '.join(p.title for p in parts)}). "
                     "An admin can set `split_long_readings = true` for the circle to schedule the parts.")
    first = created[0]
    lines.append(f"RSVP with `{ctx.prefix}rsvp yes {first.id}` (or maybe / no).")
    return Text.join("\n", lines)


async def unschedule(ctx: Context, meeting: int) -> Text:
    m = await meeting_or_error(ctx, meeting)
    await ctx.store.cancel_meeting(m.id, ctx.now)
    await ctx.bot.changed(ctx.circle)
    return f"Meeting #{m.id} ({meeting_title(ctx, m)}, " + when(m.starts_at) + ") is cancelled."


async def skip(ctx: Context, date: dt.date) -> Text:
    check_date(ctx, date)
    start = occurrence_on(ctx.circle, ctx.zone, date)
    if start is None:
        raise UsageError(f"{ctx.circle.name} does not meet on {date:%A %-d %B %Y}; nothing to skip.")
    if start <= ctx.now:
        raise UsageError(f"{date.isoformat()} has already passed.")
    existing = await ctx.store.meeting_starting(ctx.circle.slug, start)
    if existing is not None:
        await ctx.store.cancel_meeting(existing.id, ctx.now)
    else:
        await ctx.store.skip_slot(ctx.circle.slug, start, start + ctx.circle.meets.duration, ctx.now)
    await ctx.bot.changed(ctx.circle)
    note = f" Meeting #{existing.id} ({meeting_title(ctx, existing)}) is cancelled." if existing else ""
    return (f"{ctx.circle.name} will not meet on " + when(start)
            + f".{note} The syllabus carries on at the next meeting.")


async def move(ctx: Context, meeting: int, date: dt.date, time: dt.time | None) -> Text:
    m = await meeting_or_error(ctx, meeting)
    if m.starts_at <= ctx.now:
        raise UsageError(f"meeting #{m.id} has already started; schedule a new one instead.")
    at = time or m.starts_at.astimezone(ctx.zone).time()
    start = await _start_on(ctx, date, at, f"move {m.id}")
    note = _skipped_note(await _held(ctx), start)
    await ctx.store.move_meeting(m.id, start, start + (m.ends_at - m.starts_at), ctx.now)
    await ctx.bot.changed(ctx.circle)
    return (f"Meeting #{m.id} ({meeting_title(ctx, m)}) moved from " + when(m.starts_at) + " to " + when(start)
            + f".{note} RSVPs are kept; please check yours.")


async def upcoming(ctx: Context) -> Text | str:
    meetings = await ctx.store.meetings(ctx.circle.slug, ending_after=ctx.now, limit=UPCOMING_LIMIT)
    if not meetings:
        hint = f" An organiser can add one with `{ctx.prefix}schedule <reading>`." if not ctx.organiser else (
            f" Add one with `{ctx.prefix}schedule <reading>`.")
        return f"{ctx.circle.name} has no meeting scheduled.{hint}"
    counts = await ctx.store.rsvp_counts(m.id for m in meetings)
    capacity = ctx.circle.turnout.capacity
    turnouts = await TurnoutStore(ctx.store.db).turnouts(m.id for m in meetings) if capacity is not None else {}
    lines: list[Text | str] = [f"**Upcoming meetings of {ctx.circle.name}**"]
    for m in meetings:
        reading = ctx.readings.get(m.reading)
        minutes = f", {reading.minutes} min read" if reading else ""
        now_open = " (on now: check in with `here`)" if m.is_open(ctx.now) else ""
        lines.append(f"#{m.id} " + when(m.starts_at) + f": {meeting_title(ctx, m)}{minutes}{now_open}. "
                     "RSVPs: " + (turnout_summary(turnouts[m.id], capacity) if m.id in turnouts
                                  else rsvp_summary(counts[m.id])))
        lines.append("    posts: " + await _timeline_state(ctx, m))
    return Text.join("\n", lines)


async def _timeline_state(ctx: Context, m: Meeting) -> Text:
    """Each timeline post of a meeting: sent, due (when), or missed (organisers are told to act)."""
    jobs = plan([ctx.circle], [m], ctx.now)
    states = await ctx.store.post_states_of(j.key for j in jobs)  # keyed by start time: a moved meeting's own
    out: list[Text | str] = []
    next_shown = False
    for job in jobs:
        state = states.get(job.key)
        label = {PostKind.ASSIGNMENT: "reading", PostKind.REMINDER: "reminder", PostKind.QUESTIONS: "questions",
                 PostKind.SUMMARY: "summary", PostKind.DEADLINE: "RSVP deadline",
                 PostKind.NUDGE: "nudge", PostKind.FACILITATOR: "facilitator's questions"}[job.kind]
        if state is not None:
            text = STATE_MARKS.get(state, state)
            if state in ("missed", "failed") and ctx.organiser:
                text += " (the bot was down or a platform failed; post it by hand if still useful)"
            out.append(f"{label} {text}")
        elif job.due_at <= ctx.now:
            out.append(f"{label} due now")
        elif not next_shown:
            out.append(f"{label} due " + when(job.due_at))
            next_shown = True
        else:
            out.append(f"{label} to come")
    return Text.join("; ", out)


COMMANDS = [
    Command(("schedule",), "Plan a meeting on a reading: the next free meeting time, or a date (and time).",
            schedule,
            (Param("slug", READING, "the reading's short name"),
             Param("date", WHEN, "`next` (the default) or a date like 2026-12-03", required=False),
             Param("time", TIME, "a local time like 19:00 (default: the circle's usual time)", required=False)),
            organiser=True,
            examples=(
                "schedule bolivia-2003-first-balance-sheet",
                "schedule bolivia-2003-first-balance-sheet 2026-12-03 18:30",
            ),
            ),
    Command(("unschedule",), "Cancel a meeting.", unschedule,
            (Param("meeting", MEETING, "the meeting's number (see `upcoming`)"),), organiser=True),
    Command(("skip",), "Skip the circle's regular meeting on a date (the syllabus moves on to the next).", skip,
            (Param("date", DATE, "the date to skip, like 2026-12-24"),), organiser=True,
            examples=("skip 2026-12-24",)),
    Command(("move",), "Move a meeting to another date (and time).", move,
            (Param("meeting", MEETING, "the meeting's number"),
             Param("date", DATE, "the new date, like 2026-12-03"),
             Param("time", TIME, "the new local time (default: the same time of day)", required=False)),
            organiser=True, examples=("move 3 2026-12-04", "move 3 2026-12-04 18:00")),
    Command(("upcoming",), "The next meetings, their readings, RSVPs and the state of their posts.", upcoming),
]

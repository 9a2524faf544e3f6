"""`schedule`, `unschedule`, `upcoming` and `questions`: a circle's meetings and what each discusses."""

from __future__ import annotations

import datetime as dt

from circlebot.app import Context
from circlebot.commands import MEETING, READING, TIME, WHEN, Command, Param, UsageError
from circlebot.features.common import meeting_or_error, meeting_title, reading_or_error, rsvp_summary, when
from circlebot.recurrence import local_to_utc, occurrence_on, occurrences

UPCOMING_LIMIT = 5


async def schedule(ctx: Context, slug: str, date: dt.date | str | None, time: dt.time | None) -> str:
    day, at = date, time
    reading = reading_or_error(ctx, slug)
    c = ctx.circle
    if day is None or day == "next":
        start = None
        for n, occ in enumerate(occurrences(c, ctx.zone, ctx.now)):
            if n > 100:
                break
            candidate = local_to_utc(occ.astimezone(ctx.zone).date(), at, ctx.zone) if at else occ
            if candidate > ctx.now and await ctx.store.meeting_starting(c.slug, candidate) is None:
                start = candidate
                break
        if start is None:
            raise UsageError("I found no free meeting time in the circle's schedule; give a date.")
    else:
        assert isinstance(day, dt.date)
        if at is not None:
            start = local_to_utc(day, at, ctx.zone)
        else:
            found = occurrence_on(c, ctx.zone, day)
            if found is None:
                raise UsageError(f"{c.name} does not usually meet on {day:%A %-d %B %Y}; add a time, "
                                 f"e.g. `{ctx.prefix}schedule {reading.slug} {day.isoformat()} 19:00`.")
            start = found
        if start <= ctx.now:
            raise UsageError(f"{day.isoformat()}{f' {at:%H:%M}' if at else ''} has already passed; pick a later date.")
        clash = await ctx.store.meeting_starting(c.slug, start)
        if clash is not None:
            raise UsageError(f"meeting #{clash.id} is already at that time; `{ctx.prefix}unschedule {clash.id}` "
                             "first to replace it.")
    meeting = await ctx.store.add_meeting(
        c.slug, start, start + c.meets.duration, reading.slug, ctx.member_id, ctx.now
    )
    return (f"Scheduled meeting #{meeting.id}: {meeting_title(ctx, meeting)} on {when(meeting.starts_at)}.\n"
            f"RSVP with `{ctx.prefix}rsvp yes {meeting.id}` (or maybe / no).")


async def unschedule(ctx: Context, meeting: int) -> str:
    m = await meeting_or_error(ctx, meeting)
    await ctx.store.cancel_meeting(m.id)
    return f"Meeting #{m.id} ({meeting_title(ctx, m)}, {when(m.starts_at)}) is cancelled."


async def upcoming(ctx: Context) -> str:
    meetings = await ctx.store.meetings(ctx.circle.slug, ending_after=ctx.now, limit=UPCOMING_LIMIT)
    if not meetings:
        hint = f" An organiser can add one with `{ctx.prefix}schedule <reading>`." if not ctx.organiser else (
            f" Add one with `{ctx.prefix}schedule <reading>`.")
        return f"{ctx.circle.name} has no meeting scheduled.{hint}"
    counts = await ctx.store.rsvp_counts(m.id for m in meetings)
    lines = [f"**Upcoming meetings of {ctx.circle.name}**"]
    for m in meetings:
        reading = ctx.readings.get(m.reading)
        minutes = f", {reading.minutes} min read" if reading else ""
        now_open = " (open now: check in with `here`)" if m.is_open(ctx.now) else ""
        lines.append(f"#{m.id} {when(m.starts_at)}: {meeting_title(ctx, m)}{minutes}{now_open}. "
                     f"RSVPs: {rsvp_summary(counts[m.id])}")
    return "\n".join(lines)


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
    Command(("upcoming",), "The next meetings, their readings and RSVPs.", upcoming),
]

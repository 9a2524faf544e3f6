"""Formatting and look-ups several features share."""

from __future__ import annotations

import datetime as dt

from circlebot.core.commands import UsageError
from circlebot.core.context import Bot, Context
from circlebot.core.domain import RsvpAnswer
from circlebot.core.text import when
from circlebot.readings import Reading
from circlebot.store import Meeting

__all__ = ["check_date", "meeting_or_error", "meeting_title", "reading_or_error", "rsvp_summary", "when"]

YEARS_AHEAD = 3


def check_date(ctx: Context, day: dt.date) -> None:
    """Refuse a meeting date in the past or more than YEARS_AHEAD years ahead (in the circle's zone): beyond
    that nobody plans a meeting, and at the ends of the calendar a time cannot even be computed."""
    today = ctx.now.astimezone(ctx.zone).date()
    try:
        limit = today.replace(year=today.year + YEARS_AHEAD)
    except ValueError:  # 29 February
        limit = today.replace(year=today.year + YEARS_AHEAD, day=28)
    if day < today:
        raise UsageError(f"{day.isoformat()} has already passed; pick a date from today "
                         f"({today.isoformat()}) on.")
    if day > limit:
        raise UsageError(f"{day.isoformat()} is more than {YEARS_AHEAD} years ahead; pick a date up to "
                         f"{limit.isoformat()}.")


def reading_or_error(ctx: Context, slug: str) -> Reading:
    reading = ctx.readings.get(slug)
    if reading is None:
        near = ctx.readings.search(slug.replace("-", " "))[:3]
        hint = f" Did you mean {', '.join(f'`{r.slug}`' for r in near)}?" if near else ""
        raise UsageError(f"there is no reading {slug[:60]!r}.{hint} `{ctx.prefix}readings` lists them.")
    return reading


async def meeting_or_error(ctx: Context, meeting_id: int | None, *, default: str = "next") -> Meeting:
    """The meeting a user named, in this circle; without a number, the open one or the next one."""
    if meeting_id is not None:
        m = await ctx.store.meeting(meeting_id)
        if m is None or m.circle != ctx.circle.slug or m.status != "scheduled":
            raise UsageError(
                f"there is no meeting #{meeting_id} in {ctx.circle.name}; `{ctx.prefix}upcoming` lists them."
            )
        return m
    upcoming = await ctx.store.meetings(ctx.circle.slug, ending_after=ctx.now, limit=1)
    if not upcoming:
        raise UsageError(f"{ctx.circle.name} has no meeting scheduled; an organiser can add one with "
                         f"`{ctx.prefix}schedule <reading>`.")
    return upcoming[0]


def meeting_title(ctx: Context | Bot, m: Meeting) -> str:
    reading = ctx.readings.get(m.reading)
    title = reading.title if reading else m.reading
    part = f" (part {m.part} of {m.parts})" if m.part and m.parts else ""
    return f"*{title}*{part}"


def rsvp_summary(counts: dict[RsvpAnswer, int]) -> str:
    return f"{counts[RsvpAnswer.YES]} yes, {counts[RsvpAnswer.MAYBE]} maybe, {counts[RsvpAnswer.NO]} no"

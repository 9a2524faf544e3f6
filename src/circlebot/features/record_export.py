"""The circle's record as a CSV file a spreadsheet opens: one row per meeting and member (everyone with an
RSVP, a check-in, a reading progress or a turn as facilitator), written with Python's `csv` module.

For `circlebot export csv` and an organiser's `attendance export` in chat (the file handed over the
platform's way). Spreadsheet-safe: UTF-8 with a byte-order mark (so Excel reads it as UTF-8), ISO 8601 dates
and times in the circle's zone, the zone named in its own column, and every cell that starts like a formula
(`=`, `+`, `-`, `@`, a tab or a carriage return) prefixed with an apostrophe, so it is shown, never run
(OWASP, CSV injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings
from circlebot.core.commands import DATE, Command, Param, Reply, UsageError
from circlebot.core.context import Context
from circlebot.core.domain import FileUpload, RsvpAnswer
from circlebot.core.text import count
from circlebot.readings import Collection
from circlebot.store import Store
from circlebot.store.record import RecordQueries, RecordRow

HEADER = ("circle", "meeting", "date", "start", "zone", "reading", "part", "member", "platform", "platform id",
          "RSVP", "read", "came", "walk-in", "no-show", "facilitated")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv"


def neutral(cell: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _row(circle: CircleSettings, zone: ZoneInfo, readings: Collection, r: RecordRow, now: datetime) -> list[str]:
    m = r.meeting
    local = m.starts_at.astimezone(zone)
    reading = readings.get(m.reading)
    over = m.ends_at <= now
    no_show = r.rsvp is RsvpAnswer.YES and not r.waitlisted and not r.came
    cells = [
        circle.slug, str(m.id), local.date().isoformat(), local.isoformat(timespec="minutes"), zone.key,
        reading.title if reading else m.reading, f"{m.part} of {m.parts}" if m.part and m.parts else "",
        r.member.display, r.member.platform, r.member.id,
        (r.rsvp.value + (" (waitlist)" if r.waitlisted else "")) if r.rsvp else "",
        r.read.value if r.read else "",
        _yes(r.came) if over or r.came else "",
        _yes(r.came and r.rsvp is None) if over or r.came else "",
        _yes(no_show) if over else "",
        _yes(r.facilitated),
    ]
    return [neutral(c) for c in cells]


def local_range(zone: ZoneInfo, start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """[start, end] as local days in `zone`: from the first's midnight to the midnight after the last."""
    first = datetime.combine(start, time(0), zone) if start else None
    after = datetime.combine(end + timedelta(days=1), time(0), zone) if end else None
    return first, after


async def record_csv(store: Store, readings: Collection, circles: Iterable[tuple[CircleSettings, ZoneInfo]],
                     start: date | None, end: date | None, now: datetime) -> tuple[bytes, int]:
    """The record of `circles` (with each one's zone) for meetings starting on the local days [start, end],
    as CSV bytes (UTF-8 with BOM, CRLF line ends as RFC 4180 and the csv module's excel dialect write them),
    and how many rows (besides the header) it has.
    came / walk-in are blank for a meeting not over whoever has not checked in, no-show until it is over."""
    if start and end and end < start:
        raise ValueError(f"the range ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    queries = RecordQueries(store)
    rows = 0
    for circle, zone in circles:
        first, after = local_range(zone, start, end)
        for r in await queries.rows([circle.slug], first, after):
            writer.writerow(_row(circle, zone, readings, r, now))
            rows += 1
    return buf.getvalue().encode("utf-8-sig"), rows


def file_name(slug: str, start: date | None, end: date | None, today: date) -> str:
    span = f"{start.isoformat() if start else 'start'}-to-{(end or today).isoformat()}"
    return f"{slug}-record-{span}.csv"


async def attendance_export(ctx: Context, **dates: date | None) -> Reply:
    """The circle's record as a CSV file, handed to the organiser who asked (privately)."""
    start, end = dates.get("from"), dates.get("to")
    try:
        data, rows = await record_csv(ctx.store, ctx.readings, [(ctx.circle, ctx.zone)], start, end, ctx.now)
    except ValueError as e:
        raise UsageError(f"{e}; give --from before --to.") from None
    name = file_name(ctx.circle.slug, start, end, ctx.now.astimezone(ctx.zone).date())
    text = (f"The record of {ctx.circle.name}: {count(rows, 'row')}, one per meeting and member (UTF-8 CSV, times in "
            f"{ctx.zone.key}).")
    return Reply(text, private=True, file=FileUpload(name, data, MEDIA_TYPE))


COMMANDS = [
    Command(("attendance", "export"), "The circle's record as a CSV file (one row per meeting and member), sent "
            "to you.", attendance_export,
            (Param("from", DATE, "the first day (YYYY-MM-DD)", required=False, option=True),
             Param("to", DATE, "the last day (YYYY-MM-DD)", required=False, option=True)),
            organiser=True, examples=("attendance export", "attendance export --from 2026-09-01")),
]

"""`circlebot export ics`: a circle's meetings as an iCalendar file, built with the `icalendar` library.

UIDs are stable (`meeting-<id>-<circle>@circlebot`), so a calendar app that imports or subscribes to the file
again updates the events instead of duplicating them; a cancelled meeting stays in the file as CANCELLED so
calendars remove it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from icalendar import Calendar, Event

from circlebot.config import CircleSettings
from circlebot.readings import Collection
from circlebot.store import Meeting


def meeting_uid(m: Meeting) -> str:
    return f"meeting-{m.id}-{m.circle}@circlebot"


def to_ics(circle: CircleSettings, meetings: Iterable[Meeting], readings: Collection, now: datetime) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//circlebot//study circles//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", circle.name)
    if circle.timezone:
        cal.add("x-wr-timezone", circle.timezone)
    for m in meetings:
        if not m.reading:  # a skipped date, not a meeting
            continue
        reading = readings.get(m.reading)
        title = reading.title if reading else m.reading
        part = f" (part {m.part} of {m.parts})" if m.part and m.parts else ""
        event = Event()
        event.add("uid", meeting_uid(m))
        event.add("dtstamp", now)
        event.add("dtstart", m.starts_at)
        event.add("dtend", m.ends_at)
        event.add("summary", f"{circle.name}: {title}{part}")
        description = [f"Meeting #{m.id} of {circle.name}.", f"Reading: {title}{part}."]
        if reading is not None:
            description.append(f"{reading.author}, {reading.publisher}, {reading.published:%-d %B %Y}; "
                               f"about {reading.minutes} min to read.")
            description.append(reading.summary)
        event.add("description", "\n".join(description))
        event.add("status", "CANCELLED" if m.status == "cancelled" else "CONFIRMED")
        cal.add_component(event)
    data: bytes = cal.to_ical()
    return data

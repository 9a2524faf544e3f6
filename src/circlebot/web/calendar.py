"""Calendars, built with the `icalendar` library: a circle's feed (every meeting past and planned) and a
member's own feed (their RSVP in each title, an alarm at the lead they chose). `circlebot export ics` writes
the circle's feed to a file.

Times are in the circle's zone (with its VTIMEZONE), so calendars show them as the circle meets them across
daylight-saving changes. A meeting keeps one UID for its life (`Meeting.uid`): a meeting the syllabus has not
stored yet is TENTATIVE, with a UID of its circle and time, which it keeps once stored (and after a move); one
scheduled by command is `meeting-<id>-<circle>@circlebot`. Its SEQUENCE is its revision and its LAST-MODIFIED
the time of its last move or cancellation, so calendars take an update (they ignore one whose SEQUENCE did not
grow). A cancelled meeting stays, as STATUS:CANCELLED, so calendars remove it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from icalendar import Alarm, Calendar, Event

from circlebot.config import CircleSettings
from circlebot.core.domain import RsvpAnswer
from circlebot.web.entries import Entry

_STATUS = {"scheduled": "CONFIRMED", "cancelled": "CANCELLED", "planned": "TENTATIVE"}
_RSVP = {RsvpAnswer.YES: "going", RsvpAnswer.MAYBE: "maybe", RsvpAnswer.NO: "not going"}
REFRESH = timedelta(hours=1)  # what feeds ask subscribers to poll at (Google and Apple decide for themselves)


@dataclass(frozen=True, slots=True)
class Personal:
    """What makes a feed a member's own: their answers by meeting id, and their alarm lead (None: no alarm)."""

    rsvps: Mapping[int, RsvpAnswer]
    alarm: timedelta | None


def describe(circle: CircleSettings, e: Entry, page_url: str | None) -> str:
    """An event's description: the reading, its author and reading time, the part to read, the meeting's link."""
    lines = [f"{circle.name}: meeting" + (f" #{e.meeting_id}" if e.meeting_id else " (planned by the syllabus)")]
    r = e.reading
    lines.append(f"Reading: {e.title}")
    if r is not None:
        lines.append(f"By {r.author} ({r.publisher}, {r.published:%-d %B %Y})")
        if e.minutes:
            lines.append(f"Reading time: about {e.minutes} min")
        if e.part is not None:
            lines.append(f"Read: {e.part.title}")
        elif r.sections:
            lines.append("Sections: " + "; ".join(s.title for s in r.sections))
        if r.source:
            lines.append(f"Source: {r.source}")
    if page_url:
        lines.append(f"Meeting: {page_url}#{e.anchor}")
    if e.status == "cancelled":
        lines.append("This meeting is cancelled.")
    return "\n".join(lines)


def build_calendar(circle: CircleSettings, entries: Sequence[Entry], now: datetime, *, page_url: str | None = None,
                   personal: Personal | None = None) -> bytes:
    """The iCalendar text of a circle's meetings (or, with `personal`, a member's own view of them)."""
    zone = circle.zone
    cal = Calendar()
    cal.add("prodid", "-//circlebot//study circles//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", circle.name if personal is None else f"{circle.name}: my meetings")
    cal.add("x-wr-timezone", zone.key)
    if circle.description:
        cal.add("x-wr-caldesc", circle.description)
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", REFRESH)
    for e in entries:
        event = Event()
        event.add("uid", e.uid)
        event.add("dtstamp", e.modified_at or now)
        if e.modified_at is not None:
            event.add("last-modified", e.modified_at)
        event.add("sequence", e.sequence)
        event.add("dtstart", e.starts_at.astimezone(zone))
        event.add("dtend", e.ends_at.astimezone(zone))
        summary = f"{circle.name}: {e.title}"
        answer = personal.rsvps.get(e.meeting_id) if personal and e.meeting_id is not None else None
        if personal is not None:
            summary = f"[{_RSVP[answer] if answer else 'no answer yet'}] {summary}"
        event.add("summary", summary)
        event.add("description", describe(circle, e, page_url))
        if page_url:
            event.add("url", f"{page_url}#{e.anchor}")
        event.add("status", _STATUS[e.status])
        event.add("transp", "OPAQUE" if e.status != "cancelled" else "TRANSPARENT")
        if personal is not None and personal.alarm is not None and e.status != "cancelled" \
                and answer is not RsvpAnswer.NO:
            alarm = Alarm()
            alarm.add("action", "DISPLAY")
            alarm.add("description", summary)
            alarm.add("trigger", -personal.alarm)
            event.add_component(alarm)
        cal.add_component(event)
    cal.add_missing_timezones()
    data: bytes = cal.to_ical()
    return data

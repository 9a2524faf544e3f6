"""A circle's meetings as the web shows them: every stored one (past, coming, cancelled) and, ahead of them,
the meetings its rule and syllabus will add in the coming weeks (`plan.syllabus_additions`, the timeline's own
rule, run to a later horizon), each with its reading and the part of it to read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings
from circlebot.core.domain import RsvpAnswer
from circlebot.core.timeline import syllabus_additions
from circlebot.readings import Collection, Part, Reading
from circlebot.store import Meeting, Store


@dataclass(frozen=True, slots=True)
class Entry:
    """One meeting: stored (`meeting_id`), or planned by the syllabus and not stored yet (`meeting_id` None).
    `status` is "scheduled", "cancelled" or "planned"; `sequence` and `modified_at` change when it moves."""

    uid: str
    meeting_id: int | None
    circle: str
    starts_at: datetime
    ends_at: datetime
    slug: str
    reading: Reading | None
    part: Part | None
    part_no: int | None
    parts: int | None
    status: str
    sequence: int
    modified_at: datetime | None

    @property
    def title(self) -> str:
        """The reading's title, and which part of it."""
        title = self.reading.title if self.reading else self.slug
        if self.part_no and self.parts:
            title += f" (part {self.part_no} of {self.parts})"
        return title

    @property
    def minutes(self) -> int | None:
        """The reading time of what this meeting reads."""
        if self.part is not None:
            return self.part.minutes
        return self.reading.minutes if self.reading else None

    @property
    def anchor(self) -> str:
        """The meeting's id on the circle's page."""
        if self.meeting_id is not None:
            return f"meeting-{self.meeting_id}"
        return f"planned-{self.starts_at:%Y%m%dT%H%M}"


def _part(reading: Reading | None, part_no: int | None, parts: int | None, minutes: int) -> Part | None:
    if reading is None or not part_no or not parts or parts < 2:
        return None
    split = reading.parts(minutes)
    return split[part_no - 1] if len(split) == parts and 1 <= part_no <= len(split) else None


def _entry(circle: CircleSettings, readings: Collection, m: Meeting) -> Entry:
    reading = readings.get(m.reading)
    return Entry(m.uid, m.id, m.circle, m.starts_at, m.ends_at, m.reading, reading,
                 _part(reading, m.part, m.parts, circle.part_minutes), m.part, m.parts, m.status, m.revision,
                 m.modified_at)


async def circle_entries(store: Store, readings: Collection, circle: CircleSettings, zone: ZoneInfo,
                         now: datetime, weeks: int) -> list[Entry]:
    """Every meeting of the circle, past and coming, and those its syllabus will add within `weeks`, by time.
    Skipped dates (a cancelled placeholder with no reading) are not meetings."""
    stored = await store.meetings(circle.slug, limit=1_000_000, any_status=True)
    out = [_entry(circle, readings, m) for m in stored if m.reading]
    for start, slug, part_no, parts, uid in syllabus_additions(circle, zone, stored, now, readings,
                                                               until=now + timedelta(weeks=weeks)):
        reading = readings.get(slug)
        out.append(Entry(uid, None, circle.slug, start, start + circle.meets.duration,
                         slug, reading, _part(reading, part_no, parts, circle.part_minutes), part_no, parts,
                         "planned", 0, None))
    out.sort(key=lambda e: (e.starts_at, e.meeting_id or 0))
    return out


async def member_answers(store: Store, circle: str, member_id: int) -> dict[int, RsvpAnswer]:
    """A member's RSVP to each meeting of a circle they answered, by meeting id."""
    rows = await store.db.fetchall(
        "SELECT r.meeting_id, r.answer FROM rsvps r JOIN meetings m ON m.id = r.meeting_id "
        "WHERE r.member_id = ? AND m.circle = ?", (member_id, circle))
    return {int(r[0]): RsvpAnswer(r[1]) for r in rows}

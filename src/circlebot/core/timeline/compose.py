"""The text of each timeline post: the reading, the reminder, the discussion questions, the summary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from circlebot.config import CircleSettings
from circlebot.core.clock import Clock
from circlebot.core.domain import Control, Post, RsvpAnswer, UserRef
from circlebot.core.text import Text, cmd, when
from circlebot.core.timeline.plan import PostKind
from circlebot.readings import Collection
from circlebot.store import Meeting, Store
from circlebot.store.turnout import Turnout, TurnoutStore


class PostSources(Protocol):
    """Where a post's text comes from: the readings, the store (RSVPs, check-ins, the next meeting) and the
    questions of a meeting."""

    store: Store
    readings: Collection
    clock: Clock

    async def meeting_questions(self, meeting: Meeting, circle: CircleSettings) -> list[str]:
        """The discussion questions posted when a meeting starts."""

    async def post_lines(self, kind: PostKind, meeting: Meeting, circle: CircleSettings) -> list[Text | str]:
        """The lines features add to a meeting's post of `kind` (`PostLines`), in the order they were given."""


@dataclass(frozen=True, slots=True)
class DirectPost:
    """A feature's timeline post for one member alone (the facilitator's questions): `make(host, meeting,
    circle)` gives who it is for and the post, or None while there is nobody to send it to (then it is tried
    again at each tick until it is no longer useful)."""

    kind: PostKind
    make: Callable[[PostSources, Meeting, CircleSettings], Awaitable[tuple[UserRef, Post] | None]]


@dataclass(frozen=True, slots=True)
class PostLines:
    """A feature's lines at the end of one kind of timeline post (the reading's post names the facilitator;
    the start post says how much of the reading those who came read). `lines(host, meeting, circle)`."""

    kind: PostKind
    lines: Callable[[PostSources, Meeting, CircleSettings], Awaitable[list[Text | str]]]


def turnout_summary(t: Turnout, capacity: int | None) -> str:
    """The RSVP counts of a meeting, with its places and waitlist where the circle has a capacity."""
    counts = f"{len(t.coming) + len(t.waiting)} yes" if capacity is None else f"{len(t.coming)} yes"
    counts += f", {len(t.maybe)} maybe, {len(t.no)} no"
    if capacity is None:
        return counts
    places = f"full ({capacity} places)" if len(t.coming) >= capacity else f"{len(t.coming)} of {capacity} places taken"
    return counts + f"; {places}" + (f", {len(t.waiting)} on the waitlist" if t.waiting else "")


async def compose(host: PostSources, kind: PostKind, m: Meeting, circle: CircleSettings,
                  rsvps_of: Mapping[int, list[tuple[UserRef, RsvpAnswer]]] | None = None) -> Post:
    """The text of one timeline post (`rsvps_of`: RSVPs read for a whole batch of reminders at once)."""
    if kind in (PostKind.DEADLINE, PostKind.NUDGE, PostKind.FACILITATOR):
        raise ValueError(f"the {kind.value} post is decided as it is claimed (timeline.turnout)")
    reading = host.readings.get(m.reading)
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
        lines.append("Coming? " + cmd("rsvp", answer="yes", meeting=m.id) + " (or maybe / no).")
        lines += await host.post_lines(kind, m, circle)
        return Post(Text.join("\n", lines), meeting_id=m.id, controls=(Control.RSVP, Control.READ))
    if kind is PostKind.REMINDER:
        waiting: list[UserRef] = []
        if circle.turnout.capacity is not None:  # who has a place and who waits for one
            t = await TurnoutStore(host.store.db).turnout(m.id)
            coming = (*t.coming, *t.maybe)
            waiting = t.waiting
            summary = turnout_summary(t, circle.turnout.capacity)
        else:
            rsvps = rsvps_of[m.id] if rsvps_of is not None and m.id in rsvps_of else await host.store.rsvps(m.id)
            coming = tuple(u for u, a in rsvps if a in (RsvpAnswer.YES, RsvpAnswer.MAYBE))
            counts = {a: sum(1 for _, x in rsvps if x is a) for a in RsvpAnswer}
            summary = f"{counts[RsvpAnswer.YES]} yes, {counts[RsvpAnswer.MAYBE]} maybe, {counts[RsvpAnswer.NO]} no"
        lines = [f"⏰ **Reminder: meeting #{m.id}** starts " + starts + f": **{title}**{part}",
                 f"RSVPs so far: {summary}."]
        if coming:
            lines.append("See you there: " + ", ".join(u.display for u in coming))
        if waiting:  # named, not mentioned: the waitlist is not pinged
            lines.append("Waiting for a place: " + ", ".join(u.display for u in waiting))
        return Post(Text.join("\n", lines), mentions=coming, notify=True, meeting_id=m.id,
                    controls=(Control.RSVP,))
    if kind is PostKind.QUESTIONS:
        questions = await host.meeting_questions(m, circle)
        lines = [f"🟢 **Meeting #{m.id} has started**: **{title}**{part}. Check in with " + cmd("here")
                 + " until it ends.", "", "**Discussion questions**"]
        lines += [f"{i}. {q}" for i, q in enumerate(questions, 1)] or ["(none yet)"]
        lines += await host.post_lines(kind, m, circle)
        return Post(Text.join("\n", lines), meeting_id=m.id, controls=(Control.CHECK_IN,))
    came = await host.store.checkins(m.id)
    lines = [f"🔴 **Meeting #{m.id} has ended.** Check-in is closed.",
             f"{len(came)} came: {', '.join(u.display for u, _ in came) or 'nobody checked in'}."]
    upcoming = [x for x in await host.store.meetings(m.circle, ending_after=m.ends_at, limit=2) if x.id != m.id]
    if upcoming:
        nxt = upcoming[0]
        nxt_reading = host.readings.get(nxt.reading)
        lines.append(f"Next: meeting #{nxt.id}, " + when(nxt.starts_at)
                     + f": **{nxt_reading.title if nxt_reading else nxt.reading}**.")
    else:
        lines.append("No next meeting is scheduled yet.")
    return Post(Text.join("\n", lines), meeting_id=m.id)

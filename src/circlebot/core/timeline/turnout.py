"""The RSVP deadline of a meeting (`[circles.turnout] deadline`): decided once, when its post is claimed.

At the deadline the bot counts the yes answers with a place (one count for every platform of the circle).
With enough (or no quorum set) it posts that the meeting is on and who is coming. Short of the quorum it does
what the circle chose: `notify` (the meeting stays; the organisers are told), `postpone` (the meeting moves, with
its reading and RSVPs, to the circle's next free meeting time, and its posts run again for the new time) or
`cancel`. The post says what was done. The deliverer stores the decision (first wins, across every process on
the database) in the transaction that moves or cancels the meeting, and sends that same post to every location
and on retries, since the meeting it reports on may have moved or been cancelled by it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

from circlebot.config import CircleSettings
from circlebot.core.adapter import MeetingEvent
from circlebot.core.domain import Control, Post, UserRef
from circlebot.core.recurrence import free_slots
from circlebot.core.text import Text, cmd, when
from circlebot.core.timeline.compose import PostSources, turnout_summary
from circlebot.core.timeline.organisers import organisers_to_tell
from circlebot.core.timeline.plan import PostKind, job_key
from circlebot.store import Meeting
from circlebot.store.decisions import MeetingChange
from circlebot.store.turnout import TurnoutStore


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the deadline decided: the post that says so, and what to do to the meeting (move or cancel it;
    done with the decision, once, so its timeline is planned again)."""

    post: Post
    change: MeetingChange | None = None
    tell: tuple[UserRef, ...] = ()  # to tell privately (by direct message where the platform has them)


def organisers_named(circle: CircleSettings) -> tuple[UserRef, ...]:
    """The organisers the config names one by one (roles and power levels name nobody in particular)."""
    o = circle.organisers
    return (*(UserRef("console", n, n) for n in o.console), *(UserRef("discord", i) for i in o.discord_users),
            *(UserRef("matrix", i) for i in o.matrix_users))


async def at_deadline(host: PostSources, m: Meeting, circle: CircleSettings, now: datetime, key: str) -> Outcome:
    """Count and decide (the caller has just claimed the deadline's post, `key`; it stores the decision and does
    the change it holds, once). A meeting is postponed once at most: at its new time's deadline, short again,
    the organisers are told instead. Writes nothing."""
    turnouts = TurnoutStore(host.store.db)
    t = await turnouts.turnout(m.id)
    capacity, quorum = circle.turnout.capacity, circle.turnout.quorum
    yes = len(t.coming) + (len(t.waiting) if capacity is None else 0)
    reading = host.readings.get(m.reading)
    title = f"**{reading.title if reading else m.reading}**"
    counts = f"RSVPs: {turnout_summary(t, capacity)}."
    answered = (*t.coming, *t.waiting, *t.maybe)  # everyone the outcome concerns; never those who said no
    if quorum is None or yes >= quorum:
        coming = t.coming if capacity is not None else [*t.coming, *t.waiting]
        lines: list[Text | str] = [f"✅ **Meeting #{m.id} is on**, " + when(m.starts_at) + f": {title}. " + counts,
                                   f"Coming ({len(coming)}): {', '.join(u.display for u in coming) or 'nobody yet'}."]
        if t.waiting:
            lines.append("Waiting for a place: " + ", ".join(f"{i}. {u.display}" for i, u in enumerate(t.waiting, 1))
                         + ". A place that frees up still goes to the first waiting.")
        lines.append("Cannot come after all? " + cmd("rsvp", answer="no", meeting=m.id) + " frees your place.")
        return Outcome(Post(Text.join("\n", lines), meeting_id=m.id, controls=(Control.RSVP,)))
    short = f"only {yes} said yes by the RSVP deadline, and it needs {quorum}"
    action = circle.turnout.on_low_turnout
    again = ""
    if action == "postpone" and await turnouts.earlier_post(m.id, PostKind.DEADLINE.value, key):
        action, again = "notify", " It was postponed once already."
    if action == "postpone":
        held = {x.starts_at for x in await host.store.meetings(circle.slug, ending_after=now, limit=10_000,
                                                                 any_status=True)}
        new = next(itertools.islice((s for s in free_slots(circle, circle.zone, held, m.starts_at) if s > now), 1),
                   None)
        if new is not None:
            text = (f"⏩ **Meeting #{m.id} is postponed** from " + when(m.starts_at) + " to " + when(new)
                    + f": {title}; {short}. RSVPs are kept (please check yours); the reading goes out again for "
                    "the new date.")
            return Outcome(Post(text, mentions=answered, notify=True, meeting_id=m.id, controls=(Control.RSVP,)),
                           MeetingChange(new, new + (m.ends_at - m.starts_at)))
        action = "notify"  # no free meeting time to move it to
    if action == "cancel":
        text = (f"❌ **Meeting #{m.id} is cancelled** (" + when(m.starts_at) + f", {title}): {short}. " + counts)
        return Outcome(Post(text, mentions=answered, notify=True, meeting_id=m.id), MeetingChange(cancel=True))
    organisers = await organisers_to_tell(host, circle, organisers_named(circle))  # and those by power level
    text = (f"⚠ **Low turnout for meeting #{m.id}** (" + when(m.starts_at) + f", {title}): {short}. " + counts + again
            + " It is still on; the organisers are told and may move or cancel it. Coming after all? "
            + cmd("rsvp", answer="yes", meeting=m.id) + ".")
    return Outcome(Post(text, meeting_id=m.id, controls=(Control.RSVP,)), None, organisers)


REGULAR_MEETINGS = 4  # "regulars": who answered or came in any of a circle's last this many meetings


async def nudge(host: PostSources, m: Meeting, circle: CircleSettings) -> Post | None:
    """The nudge before the deadline: mentions the circle's regulars who have not answered yet, and those who
    said maybe; never who said no (or yes, or waits). None when there is nobody to nudge, or when the meeting
    had its nudge already (for an earlier time: a nudge is never repeated)."""
    turnouts = TurnoutStore(host.store.db)
    if await turnouts.earlier_post(m.id, PostKind.NUDGE.value, job_key(m, PostKind.NUDGE)):
        return None
    past = await host.store.meetings(m.circle, before=m.starts_at, limit=REGULAR_MEETINGS + 1, newest_first=True)
    regulars = await turnouts.regulars([x.id for x in past if x.id != m.id][:REGULAR_MEETINGS])
    t = await turnouts.turnout(m.id)
    answered = {(u.platform, u.id) for u in (*t.coming, *t.waiting, *t.maybe, *t.no)}
    silent = [u for u in regulars if (u.platform, u.id) not in answered]
    if not silent and not t.maybe:
        return None
    reading = host.readings.get(m.reading)
    title = reading.title if reading else m.reading
    part = f" (part {m.part} of {m.parts})" if m.part and m.parts else ""
    lines: list[Text | str] = [f"👋 **Meeting #{m.id}**, " + when(m.starts_at) + f": **{title}**{part}. "
                               "Are you coming?"]
    if silent:
        lines.append("Not heard from you yet: " + ", ".join(u.display for u in silent) + ".")
    if t.maybe:
        lines.append("Still a maybe: " + ", ".join(u.display for u in t.maybe) + ".")
    lines.append("Answer with " + cmd("rsvp", answer="yes", meeting=m.id) + " (or maybe / no).")
    return Post(Text.join("\n", lines), mentions=(*silent, *t.maybe), notify=True, meeting_id=m.id,
                controls=(Control.RSVP,))


EVENT_NAME = 100  # Discord's limits on a scheduled event's name and description
EVENT_DESCRIPTION = 1000


def meeting_event(host: PostSources, circle: CircleSettings, m: Meeting) -> MeetingEvent:
    """A meeting as a platform's own event: the reading as its description, and how to RSVP (a platform's
    "interested" is not an RSVP)."""
    reading = host.readings.get(m.reading)
    title = reading.title if reading else m.reading
    part = f" (part {m.part} of {m.parts})" if m.part and m.parts else ""
    about = f"{reading.author}, about {reading.minutes} min to read. " if reading else ""
    description = (f"Meeting #{m.id} of {circle.name}: {title}{part}. {about}"
                   "RSVP in the circle's channel, with the buttons on the reading's post or the rsvp command: "
                   "\u201cInterested\u201d here is not an RSVP.")
    return MeetingEvent(m.id, f"{circle.name}: {title}"[:EVENT_NAME], description[:EVENT_DESCRIPTION], m.starts_at,
                        m.ends_at)

"""`rsvp`, `here` and `attendance`, and RSVPs / check-ins that arrive as buttons or reactions."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from circlebot.config import CircleSettings, parse_duration
from circlebot.core.adapter import DirectMessages
from circlebot.core.commands import (
    MAX_NUMBER,
    MEETING,
    TEXT,
    Command,
    Param,
    Refused,
    Reply,
    UsageError,
    choice,
    looks_like_number,
    positive_int,
)
from circlebot.core.context import Bot, Context, EventHandler
from circlebot.core.domain import CheckInCast, MessageRef, Post, RsvpAnswer, RsvpCast, UserRef
from circlebot.core.text import Text, cmd
from circlebot.features import record
from circlebot.features.common import meeting_or_error, meeting_title, when
from circlebot.store import Meeting
from circlebot.store.turnout import DirectChoice, DirectReminders, TurnoutStore

log = logging.getLogger(__name__)
RSVP = choice("answer", "yes", "maybe", "no")


async def rsvp(ctx: Context, answer: str, meeting: int | None) -> Text:
    m = await meeting_or_error(ctx, meeting)
    if m.ends_at <= ctx.now:
        raise UsageError(f"meeting #{m.id} is over; RSVP to a coming one (`{ctx.prefix}upcoming`).")
    note = await _answer(ctx.bot, ctx.circle, m, ctx.member_id, RsvpAnswer(answer), ctx.now)
    return (f"{ctx.user.display}: {answer} for meeting #{m.id}, {meeting_title(ctx, m)} on " + when(m.starts_at)
            + "." + note)


async def _answer(bot: Bot, circle: CircleSettings, m: Meeting, member_id: int, answer: RsvpAnswer | None,
                  at: datetime) -> str:
    """Store an RSVP; under a capacity, through the waitlist: returns what to add to the member's answer (their
    turn in the queue), and tells whoever a freed place went to, in every location of the circle."""
    capacity = circle.turnout.capacity
    if capacity is None:
        await bot.store.set_rsvp(m.id, member_id, answer, at)
        return ""
    done = await TurnoutStore(bot.store.db).answer(m.id, member_id, answer, at, capacity)
    if done.promoted:
        await tell_promoted(bot, circle, m, done.promoted)
    if done.waiting is not None:
        return (f" The meeting is full ({capacity} places): you are number {done.waiting} on the waitlist. "
                "I will say so here when a place frees up for you.")
    if answer is RsvpAnswer.YES:
        return " You have a place."
    return ""


async def tell_promoted(bot: Bot, circle: CircleSettings, m: Meeting, promoted: tuple[UserRef, ...]) -> None:
    """Say in every location of the circle who a freed place at meeting `m` went to (mentioning them)."""
    reading = bot.readings.get(m.reading)
    title = reading.title if reading else m.reading
    names = ", ".join(u.display for u in promoted)
    text = (f"🎟 A place has freed up at meeting #{m.id} (*{title}*, " + when(m.starts_at) + f"): {names}, "
            + ("you are in" if len(promoted) == 1 else "you are all in") + " (from the waitlist). Cannot come "
            "after all? " + cmd("rsvp", answer="no", meeting=m.id) + " frees it for the next.")
    await bot.post_to_circle(circle, Post(text, mentions=promoted, notify=True, meeting_id=m.id))


async def here(ctx: Context) -> str:
    meetings = await ctx.store.meetings(ctx.circle.slug, ending_after=ctx.now, limit=1)
    m = meetings[0] if meetings else None
    if m is None or not m.is_open(ctx.now):
        nxt = " The next one starts " + when(m.starts_at) + "." if m else ""
        raise UsageError("check-in is closed: it opens when a meeting starts and closes when it ends." + nxt)
    new = await ctx.store.check_in(m.id, ctx.member_id, ctx.now)
    return f"Welcome, {ctx.user.display}: you are checked in to meeting #{m.id}." if new else (
        f"{ctx.user.display}, you were already checked in to meeting #{m.id}.")


async def attendance(ctx: Context, who: str | None) -> Reply:
    if who is None and not ctx.organiser:
        return Reply(await _member_record(ctx, ctx.member_id, ctx.user.display), private=True)
    if who is None:
        return Reply(await _circle_record(ctx))
    platform_id = who.isascii() and who.isdigit() and len(who) > len(str(MAX_NUMBER))  # a Discord id, say
    if looks_like_number(who) and not platform_id:
        if not ctx.organiser:
            raise Refused("members see their own attendance; organisers see who came to a meeting.")
        try:
            number = positive_int(who, "a meeting number")
        except ValueError as e:
            raise UsageError(f"<who> {e}, or a member's name.") from None
        return Reply(await _meeting_record(ctx, number))
    user = await _find_member(ctx, who)
    if user is None and platform_id:
        raise UsageError(f"I know no member with the id {who[:40]} here (and meeting numbers go from 1 to "
                         f"{MAX_NUMBER}).")
    if user is None:
        raise UsageError(f"I know no member {who[:40]!r} here.")
    if user.id != ctx.user.id and not ctx.organiser:
        raise Refused("members see only their own attendance.")
    member_id = await ctx.store.ensure_member(user)
    return Reply(await _member_record(ctx, member_id, user.display), private=not ctx.organiser)


_MENTION = re.compile(r"<@!?([0-9]+)>")  # a Discord user mention


async def _find_member(ctx: Context, who: str) -> UserRef | None:
    """A member named in a command: by their platform id (a Matrix id like @alice:example.org, a Discord id
    or mention) or by the name shown (a leading @ is fine)."""
    platform = ctx.user.platform
    mention = _MENTION.fullmatch(who)
    if mention:
        return await ctx.store.find_member(platform, mention[1])
    found = await ctx.store.find_member(platform, who)
    if found is None and who.startswith("@"):
        found = await ctx.store.find_member(platform, who[1:])
    return found


async def _member_record(ctx: Context, member_id: int, name: str) -> Text | str:
    return await record.member_record(ctx, member_id, name)  # came, walk-in, no-show, excused (issue 15)


async def _meeting_record(ctx: Context, meeting_id: int) -> Text:
    m = await meeting_or_error(ctx, meeting_id)
    came = await ctx.store.checkins(m.id)
    rsvps = await ctx.store.rsvps(m.id)
    came_ids = {u.id for u, _ in came}
    lines: list[Text | str] = [f"**Meeting #{m.id}**, " + when(m.starts_at) + f": {meeting_title(ctx, m)}",
             f"Checked in ({len(came)}): {', '.join(u.display for u, _ in came) or 'nobody yet'}"]
    capacity = ctx.circle.turnout.capacity
    if capacity is not None:  # who has a place, and the waitlist in its order
        t = await TurnoutStore(ctx.store.db).turnout(m.id)
        waiting = {(u.platform, u.id) for u in t.waiting}
        rsvps = [(u, a) for u, a in rsvps if (u.platform, u.id) not in waiting]
    missing = [u.display for u, a in rsvps if a is RsvpAnswer.YES and u.id not in came_ids]
    if missing and m.starts_at <= ctx.now:
        lines.append(f"Said yes but not checked in: {', '.join(missing)}")
    for answer in RsvpAnswer:
        names = [u.display for u, a in rsvps if a is answer]
        lines.append(f"RSVP {answer.value} ({len(names)}): {', '.join(names) or '-'}")
        if answer is RsvpAnswer.YES and capacity is not None:
            lines.append(f"Waitlist ({len(t.waiting)}, {capacity} places): "
                         + (", ".join(f"{i}. {u.display}" for i, u in enumerate(t.waiting, 1)) or "-"))
    return Text.join("\n", lines)


async def _circle_record(ctx: Context) -> Text | str:
    past = await ctx.store.meetings(ctx.circle.slug, before=ctx.now, limit=10, newest_first=True)
    if not past:
        return f"{ctx.circle.name} has had no meetings yet."
    counts = await ctx.store.checkin_counts(m.id for m in past)
    rsvps = await ctx.store.rsvp_counts(m.id for m in past)
    lines: list[Text | str] = [f"**Attendance in {ctx.circle.name}** (latest first)"]
    lines += [f"#{m.id} " + when(m.starts_at) + f": {counts[m.id]} came, {rsvps[m.id][RsvpAnswer.YES]} had said yes"
              for m in past]
    drift = await record.drifting(ctx)
    if drift:
        lines.append(drift)
    lines.append(f"`{ctx.prefix}attendance <meeting>` for names, `{ctx.prefix}attendance <member>` for a person.")
    return Text.join("\n", lines)


async def _meeting_of(app: Bot, meeting_id: int | None, message: MessageRef | None) -> Meeting | None:
    """The meeting a button or reaction belongs to: named by the button, or found from the post it is on."""
    if meeting_id is None and message is not None:
        found = await app.store.post_for_message(message)
        meeting_id = found[0] if found else None
    return await app.store.meeting(meeting_id) if meeting_id is not None else None


async def rsvp_from_event(app: Bot, event: RsvpCast) -> Text | str:
    """An RSVP from a button or reaction; returns what to tell the member (buttons can answer)."""
    meeting = await _meeting_of(app, event.meeting_id, event.message)
    if meeting is None or meeting.status != "scheduled":
        log.info("ignoring an RSVP for a meeting that is not scheduled (%s)", event.meeting_id)
        return "That meeting is no longer scheduled."
    if meeting.ends_at <= event.at:
        return f"Meeting #{meeting.id} is over; RSVP to a coming one."
    member_id = await app.store.ensure_member(event.user)
    circle = app.settings.circle(meeting.circle)
    if circle is None:
        return "That meeting is no longer scheduled."
    note = await _answer(app, circle, meeting, member_id, event.answer, event.at)
    if event.answer is None:
        return f"Your RSVP for meeting #{meeting.id} is withdrawn."
    return f"Noted: {event.answer.value} for meeting #{meeting.id} on " + when(meeting.starts_at) + "." + note


async def checkin_from_event(app: Bot, event: CheckInCast) -> Text | str:
    """A check-in from a button or reaction; returns what to tell the member."""
    meeting = await _meeting_of(app, event.meeting_id, event.message)
    if meeting is None or not meeting.is_open(event.at):
        log.info("ignoring a check-in outside a meeting's time (%s)", event.meeting_id)
        if meeting is not None and meeting.starts_at > event.at:
            return f"Check-in opens when meeting #{meeting.id} starts, " + when(meeting.starts_at) + "."
        return "Check-in is closed: that meeting is not on now."
    new = await app.store.check_in(meeting.id, await app.store.ensure_member(event.user), event.at)
    return (f"Welcome, {event.user.display}: you are checked in to meeting #{meeting.id}." if new
            else f"You were already checked in to meeting #{meeting.id}.")


MAX_DM_LEAD = timedelta(days=7)


def _lead_text(minutes: int) -> str:
    if minutes % 60 == 0 and minutes <= 48 * 60:
        return f"{minutes // 60} h"
    if minutes % 1440 == 0:
        return f"{minutes // 1440} days"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


async def remind_me(ctx: Context, what: str, switch: str | None) -> Reply:
    """Reminders by direct message for this member: on, off, or how long before a meeting."""
    c = ctx.circle
    if not c.turnout.dm_reminders:
        raise Refused(f"{c.name} does not send reminders by direct message; the reminder in the channel still "
                      "goes out.")
    if not isinstance(ctx.bot.adapters.get(ctx.user.platform), DirectMessages):
        raise UsageError(f"I cannot send direct messages on {ctx.user.platform}; the reminder in the channel "
                         "still goes out.")
    reminders = DirectReminders(ctx.store.db)
    w = what.strip().lower()
    lead: int | None = None
    if w == "off" and switch is None:
        w, switch = "dm", "off"
    if w != "dm":
        if switch is not None:
            raise UsageError("give `dm on`, `dm off` or how long before, like `2h`.")
        try:
            minutes = int(parse_duration(w).total_seconds() // 60)
        except ValueError:
            raise UsageError(f"{what[:20]!r} is neither `dm` nor how long before a meeting, like `2h` or "
                             "`1d`.") from None
        if not 1 <= minutes <= MAX_DM_LEAD.total_seconds() // 60:
            raise UsageError("remind you between 1 minute and 7 days before a meeting.")
        lead, switch = minutes, "on"
    if switch is None:
        now = await reminders.choice(c.slug, ctx.member_id)
        if now is None or not now.enabled:
            why = " (turned off: a direct message to you was refused)" if now and now.refused_at else ""
            return Reply(f"Your reminders by direct message are off{why}. `{ctx.prefix}remind me dm on` turns "
                         "them on.", private=True)
        switch = "on"
        lead = now.lead_minutes
    if switch == "off":
        await reminders.choose(c.slug, ctx.member_id, False, None, ctx.now)
        return Reply(f"No more reminders by direct message from {c.name}.", private=True)
    await reminders.choose(c.slug, ctx.member_id, True, lead, ctx.now)
    chosen = lead if lead is not None else (await reminders.choice(c.slug, ctx.member_id) or
                                            DirectChoice(True, None, None)).lead_minutes
    when_text = _lead_text(chosen) if chosen else f"{_lead_text(int(c.timeline.reminder.approx.total_seconds() // 60))}"
    return Reply(f"I will remind you by direct message {when_text} before each meeting of {c.name} you said yes "
                 f"or maybe to. `{ctx.prefix}remind me 2h` changes when; `{ctx.prefix}remind me dm off` stops them.",
                 private=True)


COMMANDS = [
    Command(("rsvp",), "Say whether you are coming to a meeting (default: the next one).", rsvp,
            (Param("answer", RSVP, "yes, maybe or no"),
             Param("meeting", MEETING, "the meeting's number", required=False)),
            examples=("rsvp yes", "rsvp maybe 4")),
    Command(("here",), "Check in to the meeting that is on now.", here),
    Command(("remind", "me"), "Reminders by direct message: `dm on`, `dm off`, or how long before (like 2h).",
            remind_me,
            (Param("what", TEXT, "`dm` (then on or off), or how long before a meeting, like 2h"),
             Param("switch", choice("switch", "on", "off"), "on or off", required=False)),
            examples=("remind me dm on", "remind me 2h", "remind me dm off")),
    Command(("attendance",), "Who came: organisers see everyone; members see their own record.", attendance,
            (Param("who", TEXT, "a meeting number or a member's name", required=False),),
            examples=("attendance", "attendance 3", "attendance alice")),
]

EVENT_HANDLERS = [EventHandler(RsvpCast, rsvp_from_event), EventHandler(CheckInCast, checkin_from_event)]

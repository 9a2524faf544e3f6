"""The circle's record, beside RSVPs and check-ins: how much of each meeting's reading members read (`read`),
each member's attendance history (`attendance me`, and `attendance <member>` through features.attendance),
streaks for those who turn them on (`streaks on`), and who keeps missing meetings they said yes to.

Private by default: a member's reading and streaks are shown only to them; others see counts."""

from __future__ import annotations

import enum
from datetime import datetime

from circlebot.config import CircleSettings
from circlebot.core.commands import (
    MEETING,
    Command,
    Param,
    ParamType,
    Reply,
    UsageError,
    choice,
    looks_like_number,
    positive_int,
)
from circlebot.core.context import Bot, Context, EventHandler
from circlebot.core.domain import ProgressCast, RsvpAnswer
from circlebot.core.text import Text, cmd, count, when
from circlebot.core.timeline import PostKind, PostLines
from circlebot.core.timeline.compose import PostSources
from circlebot.features.common import meeting_or_error, meeting_title
from circlebot.store import Meeting
from circlebot.store.record import Presence, Progress, RecordQueries

_CHOICE = choice("answer", *(p.value for p in Progress))


def _answer_or_meeting(text: str) -> str:
    """all, part or not; or a meeting's number in its place (`read 4`: what you said for meeting #4)."""
    return text.strip().lstrip("#") if looks_like_number(text) else str(_CHOICE.convert(text))


READ = ParamType("answer", _answer_or_meeting, "str", choices=_CHOICE.choices)

_SAID = {Progress.ALL: "you read all of it", Progress.PART: "you read part of it", Progress.NOT: "you have not read it"}


def progress_summary(coming: dict[Progress | None, int], everyone: dict[Progress | None, int]) -> str | None:
    """The aggregate organisers and the start post see: "6 of 9 who are coming read it all, 2 part, 1 not
    yet (2 did not say)", plus those who read without saying they would come. None: nothing to say."""
    total = sum(coming.values())
    said = sum(everyone[p] for p in Progress)
    if not total and not said:
        return None
    parts: list[str] = []
    if total:
        parts.append(f"{coming[Progress.ALL]} of {total} who are coming read it all, {coming[Progress.PART]} "
                     f"part, {coming[Progress.NOT]} not yet" + (f" ({coming[None]} did not say)" if coming[None]
                                                                 else ""))
    others = {p: everyone[p] - coming[p] for p in Progress}
    if any(others.values()):
        parts.append(f"others: {others[Progress.ALL]} all, {others[Progress.PART]} part, {others[Progress.NOT]} not")
    return "; ".join(parts)


async def read(ctx: Context, answer: str | None, meeting: int | None) -> Reply:
    """Say (or change) how much of a meeting's reading you read, or see what you said; organisers also see
    the counts. Always answered privately."""
    if answer is not None and answer not in {p.value for p in Progress}:  # a meeting's number
        if meeting is not None:
            raise UsageError("give how much you read (all, part or not) before the meeting's number.")
        try:
            meeting, answer = positive_int(answer, "a meeting number"), None
        except ValueError as e:
            raise UsageError(f"<meeting> {e}.") from None
    m = await meeting_or_error(ctx, meeting)
    queries = RecordQueries(ctx.store)
    title = meeting_title(ctx, m)
    if answer is not None:
        progress = Progress(answer)
        await queries.set_progress(m.id, ctx.member_id, progress, ctx.now)
        lines: list[Text | str] = [_noted(m, title, progress)]
    else:
        mine = await queries.progress_of(m.id, ctx.member_id)
        said = f"{_SAID[mine]}" if mine else "you have not said"
        lines = [f"Your reading for meeting #{m.id}, {title}: {said}. Change it with "
                 + cmd("read", answer="all", meeting=m.id) + " (or part / not)."]
    if ctx.organiser:
        summary = progress_summary(*await queries.progress_counts(m.id))
        lines.append(f"Read so far: {summary or 'nobody has said yet'}.")
    return Reply(Text.join("\n", lines), private=True)


async def progress_from_event(bot: Bot, event: ProgressCast) -> Text | str:
    """How much of the reading a member read, from a button on the reading's post; told to them alone."""
    if event.answer not in {p.value for p in Progress}:
        return "That button is not one the bot knows; say " + cmd("read", answer="all", meeting=event.meeting_id) + \
            " (or part / not) instead."
    m = await bot.store.meeting(event.meeting_id)
    if m is None or m.status == "cancelled":
        return f"Meeting #{event.meeting_id} is not on the calendar any more."
    member_id = await bot.store.ensure_member(event.user)
    progress = Progress(event.answer)
    await RecordQueries(bot.store).set_progress(m.id, member_id, progress, event.at)
    return (_noted(m, meeting_title(bot, m), progress) + " Change it with another button, or "
            + cmd("read", answer="part", meeting=m.id) + ".")


def _noted(m: Meeting, title: str, progress: Progress) -> str:
    """What a member is told when they said how much of the reading they read."""
    return f"Noted for meeting #{m.id}, {title}: {_SAID[progress]}. Only you see this; others see counts."


EVENT_HANDLERS = [EventHandler(ProgressCast, progress_from_event)]


async def _assignment_lines(host: PostSources, m: Meeting, circle: CircleSettings) -> list[Text | str]:
    return ["Read it? " + cmd("read", answer="all", meeting=m.id) + " (or part / not): only you see your answer."]


async def _start_lines(host: PostSources, m: Meeting, circle: CircleSettings) -> list[Text | str]:
    summary = progress_summary(*await RecordQueries(host.store).progress_counts(m.id))
    return [f"📚 Read: {summary}."] if summary else []


COMMANDS = [
    Command(("read",), "Say how much of a meeting's reading you read (all, part, not), or see what you said; "
            "only you see your answer (organisers see counts).", read,
            (Param("answer", READ, "all, part or not", required=False),
             Param("meeting", MEETING, "the meeting's number (default: the open or next one)", required=False)),
            examples=("read all", "read part 4", "read")),
]

POST_LINES = [PostLines(PostKind.ASSIGNMENT, _assignment_lines), PostLines(PostKind.QUESTIONS, _start_lines)]


# attendance history ------------------------------------------------------------------------------------

HISTORY = 10  # the meetings a record shows and its rate counts: the last ten
DRIFT = 3  # organisers see who missed the last three meetings they said yes to
STREAKS = "streaks"  # the record setting: "on" shows a member their own streaks


class Mark(enum.StrEnum):
    """What a member's presence at one meeting was."""

    CAME = "came"
    WALK_IN = "walk-in"  # checked in without an RSVP
    NO_SHOW = "no-show"  # said yes, did not check in
    EXCUSED = "excused"  # said no
    ABSENT = "absent"  # said maybe, or nothing (or waited on the waitlist), and did not come
    ON_NOW = "on now"  # the meeting is on and they have not checked in (yet)


def mark(p: Presence, now: datetime) -> Mark:
    if p.came:
        return Mark.WALK_IN if p.rsvp is None else Mark.CAME
    if p.meeting.ends_at > now:
        return Mark.ON_NOW
    if p.rsvp is RsvpAnswer.YES and not p.waitlisted:
        return Mark.NO_SHOW
    return Mark.EXCUSED if p.rsvp is RsvpAnswer.NO else Mark.ABSENT


def streaks(marks: list[Mark]) -> tuple[int, int]:
    """(current, longest) runs of meetings come to, oldest first in `marks`: an excused meeting (said no)
    neither breaks a run nor adds to it, and a meeting still on counts only once checked in. Computed from the
    record each time, never kept as a counter."""
    current = longest = 0
    for m in marks:
        if m in (Mark.CAME, Mark.WALK_IN):
            current += 1
            longest = max(longest, current)
        elif m not in (Mark.EXCUSED, Mark.ON_NOW):
            current = 0
    return current, longest


_SIGN = {Mark.CAME: "✔", Mark.WALK_IN: "✔", Mark.NO_SHOW: "✘", Mark.EXCUSED: "–", Mark.ABSENT: "✘", Mark.ON_NOW: "…"}
_RSVP_SAID = {None: "no RSVP", RsvpAnswer.YES: "said yes", RsvpAnswer.MAYBE: "said maybe", RsvpAnswer.NO: "said no"}


def _said(p: Presence) -> str:
    return "on the waitlist" if p.waitlisted else _RSVP_SAID[p.rsvp]


async def member_record(ctx: Context, member_id: int, name: str) -> Text | str:
    """A member's attendance over the circle's last meetings (from the first they had anything to do with):
    came, walk-in, no-show, excused, the rate; for the member themselves also what they read and, if they
    turned them on, their streaks."""
    queries = RecordQueries(ctx.store)
    own = member_id == ctx.member_id
    everything = await queries.history_of(member_id, ctx.circle.slug, ctx.now, limit=500)
    if not everything:
        return (f"**Attendance of {name}**: nothing on record in {ctx.circle.name} yet (a record starts at the "
                "first meeting one RSVPs to or checks in at).")
    marks = [mark(p, ctx.now) for p in everything]
    last, last_marks = everything[-HISTORY:], marks[-HISTORY:]
    counted = [m for m in last_marks if m is not Mark.ON_NOW]
    n = {k: sum(1 for m in counted if m is k) for k in Mark}
    came = n[Mark.CAME] + n[Mark.WALK_IN]
    expected = len(counted) - n[Mark.EXCUSED]  # the rate leaves out the meetings they said no to
    rate = f"attendance rate {round(100 * came / expected)}%" if expected else "no attendance rate yet"
    lines: list[Text | str] = [
        f"**Attendance of {name}**, last {count(len(last), 'meeting')}: came to {came} of "
        f"{count(len(counted), 'meeting')} "
        f"({n[Mark.WALK_IN]} walk-in); {n[Mark.NO_SHOW]} no-show, {n[Mark.EXCUSED]} excused; {rate}"
        + (" (excused meetings left out)." if n[Mark.EXCUSED] and expected else ".")]
    for p, m in zip(last, last_marks, strict=True):
        detail = m.value if m is not Mark.CAME else f"came ({_RSVP_SAID[p.rsvp]})"
        if m in (Mark.ABSENT, Mark.ON_NOW):
            detail += f" ({_said(p)})"
        if p.led and p.came:
            detail += "; facilitated"
        if own and p.read is not None:
            detail += f"; read {p.read.value}"
        lines.append(f"{_SIGN[m]} #{p.meeting.id} " + when(p.meeting.starts_at)
                     + f": {meeting_title(ctx, p.meeting)}: {detail}")
    if own and await queries.setting(ctx.circle.slug, member_id, STREAKS) == "on":
        current, longest = streaks(marks)
        lines.append(f"Streak: {count(current, 'meeting')} in a row (longest: {longest}). "
                     + cmd("streaks", state="off") + " hides it.")
    return Text.join("\n", lines)


async def drifting(ctx: Context) -> str | None:
    """For organisers: who missed each of the last DRIFT meetings they said yes to."""
    history = await RecordQueries(ctx.store).yes_history(ctx.circle.slug, ctx.now, DRIFT)
    names = sorted((u.display for u, came in history.items() if len(came) == DRIFT and not any(came)),
                   key=str.casefold)
    return f"Missed the last {DRIFT} meetings they said yes to: {', '.join(names)}." if names else None


async def attendance_me(ctx: Context) -> Reply:
    """Your own attendance record, whoever you are (organisers' `attendance` shows the circle's)."""
    return Reply(await member_record(ctx, ctx.member_id, ctx.user.display), private=True)


async def streaks_setting(ctx: Context, state: str | None) -> Reply:
    """Turn your own streaks on or off (off by default), or see which it is."""
    queries = RecordQueries(ctx.store)
    if state is None:
        now_on = await queries.setting(ctx.circle.slug, ctx.member_id, STREAKS) == "on"
        return Reply(Text.join("", [f"Your streaks are {'on' if now_on else 'off'} in {ctx.circle.name}. ",
                                    cmd("streaks", state="off" if now_on else "on"), " turns them "
                                    + ("off." if now_on else "on.")]), private=True)
    await queries.set_setting(ctx.circle.slug, ctx.member_id, STREAKS, state, ctx.now)
    if state == "off":
        return Reply("Streaks off: your record shows no streak. Nothing was counted; turning them on again "
                     "computes them from your record.", private=True)
    return Reply(Text.join("", ["Streaks on: only you see yours, in ", cmd("attendance me"), ", computed from your "
                                "record (an excused meeting does not break one)."]), private=True)


COMMANDS += [
    Command(("attendance", "me"), "Your own attendance record: came, walk-in, no-show, excused, the rate; your "
            "streaks if you turned them on.", attendance_me, private=True),
    Command(("streaks",), "Show your own attendance streaks in your record, or hide them (off by default; only "
            "you see them).", streaks_setting,
            (Param("state", choice("state", "on", "off"), "on or off", required=False),),
            examples=("streaks on", "streaks off")),
]

"""The facilitator rota (`[circles.facilitators] rota = true`): every scheduled meeting has a proposed
facilitator (the regular who facilitated least recently; never someone before their second meeting, never
someone who said no), named in the reading's post; members take it (`facilitate`) or hand it on (`facilitate
pass`), organisers set it (`facilitate swap <member>`). Who facilitated is part of the record and the CSV."""

from __future__ import annotations

from datetime import datetime

from circlebot.config import CircleSettings
from circlebot.core.commands import MEETING, TEXT, Command, Param, Refused, UsageError
from circlebot.core.context import Context
from circlebot.core.domain import Post, UserRef
from circlebot.core.text import Text, cmd, when
from circlebot.core.timeline import DirectPost, PostKind, PostLines
from circlebot.core.timeline.compose import PostSources
from circlebot.features.attendance import _find_member
from circlebot.features.common import meeting_or_error, meeting_title
from circlebot.store import Meeting, Store
from circlebot.store.record import Facilitator, FacilitatorQueries

_HOW = {"proposed": "proposed by the rota", "taken": "volunteered", "assigned": "chosen by an organiser"}


async def facilitator_of(store: Store, m: Meeting, now: datetime) -> Facilitator | None:
    """The meeting's facilitator: the one who took it or was assigned, or the rota's proposal (kept once made,
    so it does not move about; made again when the one it named said no or handed it on)."""
    queries = FacilitatorQueries(store)
    current = await queries.of(m.id)
    if current is not None and not await queries.said_no_or_passed(m.id, current.member_id):
        return current
    proposal = await queries.proposal(m)
    if proposal is None:
        if current is not None:
            await queries.clear(m.id)
        return None
    await queries.set(m.id, proposal.member_id, "proposed", now)
    return proposal


def _rota_on(ctx: Context) -> None:
    if not ctx.circle.facilitators.rota:
        raise UsageError(f"{ctx.circle.name} has no facilitator rota; an admin can turn it on with "
                         "`[circles.facilitators] rota = true` in the config.")


def _open(ctx: Context, m: Meeting) -> None:
    if m.starts_at <= ctx.now:
        raise UsageError(f"meeting #{m.id} has started; the facilitator is set before a meeting starts "
                         f"(`{ctx.prefix}upcoming` lists the coming ones).")


async def facilitate(ctx: Context, meeting: int | None) -> Text | str:
    """Take the facilitation of a meeting (default: the next one)."""
    _rota_on(ctx)
    m = await meeting_or_error(ctx, meeting)
    _open(ctx, m)
    current = await facilitator_of(ctx.store, m, ctx.now)
    if current is not None and current.member_id == ctx.member_id and current.how != "proposed":
        return f"{ctx.user.display}, you already facilitate meeting #{m.id}."
    if current is not None and current.member_id != ctx.member_id and current.how != "proposed":
        raise Refused(f"{current.user.display} facilitates meeting #{m.id} ({_HOW[current.how]}); they can hand it "
                      f"on with `{ctx.prefix}facilitate pass`, or an organiser can swap.")
    await FacilitatorQueries(ctx.store).set(m.id, ctx.member_id, "taken", ctx.now)
    await ctx.bot.changed(ctx.circle)  # questions already due go to them now
    return Text.join("", [f"{ctx.user.display} facilitates meeting #{m.id}, {meeting_title(ctx, m)} on ",
                          when(m.starts_at), ". The discussion questions come to you privately before the "
                          "meeting."])


async def facilitate_pass(ctx: Context, meeting: int | None) -> Text | str:
    """Hand the facilitation of a meeting on to the next on the rota."""
    _rota_on(ctx)
    m = await meeting_or_error(ctx, meeting)
    _open(ctx, m)
    current = await facilitator_of(ctx.store, m, ctx.now)
    if current is None or current.member_id != ctx.member_id:
        who = f"{current.user.display} is" if current else "nobody is yet"
        raise UsageError(f"you are not the facilitator of meeting #{m.id} ({who}).")
    await FacilitatorQueries(ctx.store).hand_on(m.id, ctx.member_id, ctx.now)
    following = await facilitator_of(ctx.store, m, ctx.now)
    await ctx.bot.changed(ctx.circle)
    nxt = (f"the rota proposes {following.user.display} now" if following else
           f"nobody else is free: someone can take it with `{ctx.prefix}facilitate {m.id}`")
    return f"{ctx.user.display} handed meeting #{m.id} on; {nxt}."


async def facilitate_swap(ctx: Context, member: str, meeting: int | None) -> Text | str:
    """Organisers: make a member the facilitator of a meeting."""
    _rota_on(ctx)
    m = await meeting_or_error(ctx, meeting)
    _open(ctx, m)
    user = await _find_member(ctx, member)
    if user is None:
        raise UsageError(f"I know no member {member[:40]!r} here.")
    member_id = await ctx.store.ensure_member(user)
    await FacilitatorQueries(ctx.store).set(m.id, member_id, "assigned", ctx.now)
    await ctx.bot.changed(ctx.circle)
    return Text.join("", [f"{user.display} facilitates meeting #{m.id}, {meeting_title(ctx, m)} on ",
                          when(m.starts_at), "."])


async def _reading_lines(host: PostSources, m: Meeting, circle: CircleSettings) -> list[Text | str]:
    if not circle.facilitators.rota:
        return []
    found = await facilitator_of(host.store, m, host.clock.now())
    if found is None:
        return ["🎙 Facilitator: nobody yet; " + cmd("facilitate", meeting=m.id) + " to lead the discussion."]
    return [f"🎙 Facilitator: {found.user.display} ({_HOW[found.how]}); " + cmd("facilitate pass", meeting=m.id)
            + " hands it on, " + cmd("facilitate", meeting=m.id) + " takes it."]


COMMANDS = [
    Command(("facilitate",), "Lead the discussion of a meeting (default: the next one); the questions come to you "
            "privately before it.", facilitate,
            (Param("meeting", MEETING, "the meeting's number", required=False),), examples=("facilitate",)),
    Command(("facilitate", "pass"), "Hand the facilitation of a meeting on to the next on the rota.",
            facilitate_pass, (Param("meeting", MEETING, "the meeting's number", required=False),)),
    Command(("facilitate", "swap"), "Make a member the facilitator of a meeting.", facilitate_swap,
            (Param("member", TEXT, "a member's name or platform id"),
             Param("meeting", MEETING, "the meeting's number", required=False)),
            organiser=True, examples=("facilitate swap alice", "facilitate swap bob 4")),
]

POST_LINES = [PostLines(PostKind.ASSIGNMENT, _reading_lines)]


async def questions_for_facilitator(host: PostSources, m: Meeting, circle: CircleSettings
                                    ) -> tuple[UserRef, Post] | None:
    """The timeline's post to the facilitator alone, `questions_ahead` before the meeting: the discussion
    questions to prepare with. None while the meeting has no facilitator (sent once someone takes it)."""
    if not circle.facilitators.rota:
        return None
    found = await facilitator_of(host.store, m, host.clock.now())
    if found is None:
        return None
    reading = host.readings.get(m.reading)
    title = reading.title if reading else m.reading
    questions = await host.meeting_questions(m, circle)
    lines: list[Text | str] = [
        f"🎙 {found.user.display}, you facilitate meeting #{m.id}, " + when(m.starts_at) + f": **{title}**. "
        "The discussion questions, to prepare with (only you got this message):"]
    lines += [f"{i}. {q}" for i, q in enumerate(questions, 1)] or ["(none yet: an organiser can add some)"]
    lines.append("Cannot make it? " + cmd("facilitate pass", meeting=m.id) + " hands it on.")
    return found.user, Post(Text.join("\n", lines), meeting_id=m.id)


DIRECT_POSTS = [DirectPost(PostKind.FACILITATOR, questions_for_facilitator)]

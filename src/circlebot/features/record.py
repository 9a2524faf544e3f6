"""The circle's record, beside attendance: how much of each meeting's reading members read (`read`), private
to each member, with aggregates for organisers and in the start post.

Private by default: a member's answer about their reading is shown only to them; others see counts."""

from __future__ import annotations

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
from circlebot.core.context import Context
from circlebot.core.text import Text, cmd
from circlebot.core.timeline import PostKind, PostLines
from circlebot.core.timeline.compose import PostSources
from circlebot.features.common import meeting_or_error, meeting_title
from circlebot.store import Meeting
from circlebot.store.record import Progress, RecordQueries

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
        lines: list[Text | str] = [f"Noted for meeting #{m.id}, {title}: {_SAID[progress]}. Only you see this; "
                                   "others see counts."]
    else:
        mine = await queries.progress_of(m.id, ctx.member_id)
        said = f"{_SAID[mine]}" if mine else "you have not said"
        lines = [f"Your reading for meeting #{m.id}, {title}: {said}. Change it with "
                 + cmd("read", answer="all", meeting=m.id) + " (or part / not)."]
    if ctx.organiser:
        summary = progress_summary(*await queries.progress_counts(m.id))
        lines.append(f"Read so far: {summary or 'nobody has said yet'}.")
    return Reply(Text.join("\n", lines), private=True)


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

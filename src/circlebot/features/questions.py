"""`questions`: the discussion questions for a meeting; organisers add or remove them in chat.

A meeting's questions are, in order: the reading's authored questions that fit the meeting (see
:func:`base_questions`) minus the ones an organiser removed for this meeting, then the questions organisers
added for it. Where the reading or part has no authored questions, a starter set drawn from the text is offered
(:mod:`circlebot.readings.starter_questions`). Additions and removals are kept in the database, per meeting.
"""

from __future__ import annotations

from dataclasses import dataclass

from circlebot.config import CircleSettings
from circlebot.core.commands import MEETING, NUMBER, TEXT, Command, Param, UsageError
from circlebot.core.context import Bot, Context
from circlebot.core.text import count, fold
from circlebot.features.common import meeting_or_error, meeting_title
from circlebot.readings import Part, Reading
from circlebot.readings.starter_questions import starter_questions
from circlebot.store import Meeting, Store

MAX_QUESTION = 500
MAX_ADDED = 30


@dataclass(frozen=True, slots=True)
class BaseQuestions:
    """The questions a meeting starts with: ``authored`` ones, else generated ``starter`` ones."""

    texts: tuple[str, ...]
    starter: bool


def part_of(reading: Reading, meeting: Meeting, part_minutes: int) -> Part | None:
    """The part of *reading* a meeting covers, or None for the whole reading (or parts that no longer fit)."""
    if not meeting.part or not meeting.parts or meeting.parts < 2:
        return None
    parts = reading.parts(part_minutes)
    if len(parts) != meeting.parts or not 1 <= meeting.part <= len(parts):
        return None
    return parts[meeting.part - 1]


def base_questions(reading: Reading, part: Part | None) -> BaseQuestions:
    """Authored questions for the whole reading or one part; the starter set where there are none.

    The whole reading: its questions, then every section's. A part: the questions of its sections, plus the
    reading's own questions on the last part; a part with no section questions (and not the last) gets the
    starter set drawn from its text.
    """
    if part is None:
        texts = [*reading.questions]
        texts += [f"{q} (section “{s.title}”)" for s in reading.sections for q in s.questions]
        if texts:
            return BaseQuestions(tuple(dict.fromkeys(texts)), starter=False)
        sections = [(None, reading.intro), *((s.title, s.body) for s in reading.sections)]
    else:
        texts = [f"{q} (section “{s.title}”)" for s in part.sections for q in s.questions]
        if part.index == part.count:
            texts += reading.questions
        if texts:
            return BaseQuestions(tuple(dict.fromkeys(texts)), starter=False)
        sections = [*([(None, reading.intro)] if part.intro else []), *((s.title, s.body) for s in part.sections)]
    starters = starter_questions(sections)
    return BaseQuestions(tuple(dict.fromkeys(str(q) for q in starters)), starter=True)


@dataclass(frozen=True, slots=True)
class Listed:
    """One numbered question as shown: its text, and the id of the row if an organiser added it."""

    text: str
    added_id: int | None


async def listed(store: Store, reading: Reading | None, m: Meeting, part_minutes: int) -> tuple[list[Listed], bool]:
    """A meeting's questions as shown, and whether they are the generated starter set."""
    base = base_questions(reading, part_of(reading, m, part_minutes)) if reading else None
    hidden = await store.hidden_questions(m.id)
    items = [Listed(t, None) for t in (base.texts if base else ()) if t not in hidden]
    items += [Listed(t, qid) for qid, t in await store.meeting_questions(m.id)]
    return items, bool(base and base.starter)


async def meeting_questions(app: Bot, m: Meeting, circle: CircleSettings) -> list[str]:
    """The questions the timeline posts when a meeting starts."""
    items, _ = await listed(app.store, app.readings.get(m.reading), m, circle.part_minutes)
    return [item.text for item in items]


async def _listed(ctx: Context, m: Meeting, reading: Reading | None) -> tuple[list[Listed], bool]:
    return await listed(ctx.store, reading, m, ctx.circle.part_minutes)


async def _show(ctx: Context, m: Meeting, note: str = "") -> str:
    reading = ctx.readings.get(m.reading)
    items, starter = await _listed(ctx, m, reading)
    lines = [note] if note else []
    lines.append(f"**Questions for meeting #{m.id}: {meeting_title(ctx, m)}**")
    if reading is None:
        lines.append(f"(The reading `{m.reading}` is no longer in the collection; an organiser can fix it.)")
    elif starter:
        lines.append("No questions were written for this part; starter questions drawn from the text:")
    if not items:
        lines.append(f"None left: an organiser can add one with `{ctx.prefix}questions add <question>`.")
    lines += [f"{i}. {item.text}" for i, item in enumerate(items, 1)]
    return "\n".join(lines)


async def questions(ctx: Context, meeting: int | None) -> str:
    m = await meeting_or_error(ctx, meeting)
    return await _show(ctx, m)


async def questions_add(ctx: Context, question: tuple[str, ...], meeting: int | None) -> str:
    m = await meeting_or_error(ctx, meeting)
    text = " ".join(" ".join(question).split())
    if len(text) > MAX_QUESTION:
        raise UsageError(f"that question is {len(text)} characters long; the most is {MAX_QUESTION}.")
    existing = await ctx.store.meeting_questions(m.id)
    if len(existing) >= MAX_ADDED:
        raise UsageError(f"meeting #{m.id} already has {MAX_ADDED} added questions; remove some first.")
    if any(fold(t) == fold(text) for _, t in existing):
        raise UsageError(f"meeting #{m.id} already has that question.")
    await ctx.store.add_meeting_question(m.id, text, ctx.member_id, ctx.now)
    return await _show(ctx, m, "Question added.")


async def questions_remove(ctx: Context, number: int, meeting: int | None) -> str:
    m = await meeting_or_error(ctx, meeting)
    items, _ = await _listed(ctx, m, ctx.readings.get(m.reading))
    if not 1 <= number <= len(items):
        raise UsageError(
            f"meeting #{m.id} has {count(len(items), 'question')}; `{ctx.prefix}questions {m.id}` shows their numbers."
        )
    item = items[number - 1]
    if item.added_id is not None:
        await ctx.store.remove_meeting_question(item.added_id)
    else:
        await ctx.store.hide_question(m.id, item.text, ctx.member_id, ctx.now)
    return await _show(ctx, m, f"Question {number} removed for meeting #{m.id}.")


_MEETING_OPTION = Param("meeting", MEETING, "the meeting's number (default: the next one)", required=False,
                        option=True)

COMMANDS = [
    Command(("questions",), "The discussion questions for a meeting (default: the next one).", questions,
            (Param("meeting", MEETING, "the meeting's number", required=False),)),
    Command(("questions", "add"), "Add a discussion question to a meeting.", questions_add,
            (Param("question", TEXT, "the question", greedy=True), _MEETING_OPTION), organiser=True,
            examples=('questions add "Who held power on 18 October?"', "questions add Why now? --meeting 3")),
    Command(("questions", "remove"), "Remove a question (by its number in `questions`) from a meeting.",
            questions_remove, (Param("number", NUMBER, "the question's number"), _MEETING_OPTION),
            organiser=True, examples=("questions remove 2", "questions remove 1 --meeting 3")),
]

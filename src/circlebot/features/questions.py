"""`questions`: the discussion questions for a meeting."""

from __future__ import annotations

from circlebot.app import Context
from circlebot.commands import MEETING, Command, Param
from circlebot.features.common import meeting_or_error, meeting_title


async def questions(ctx: Context, meeting: int | None) -> str:
    m = await meeting_or_error(ctx, meeting)
    reading = ctx.readings.get(m.reading)
    if reading is None:
        return f"Meeting #{m.id}'s reading `{m.reading}` is no longer in the collection; an organiser can fix it."
    lines = [f"**Questions for meeting #{m.id}: {meeting_title(ctx, m)}**"]
    lines += [f"{i}. {q}" for i, q in enumerate(reading.questions, 1)]
    return "\n".join(lines)


COMMANDS = [
    Command(("questions",), "The discussion questions for a meeting (default: the next one).", questions,
            (Param("meeting", MEETING, "the meeting's number", required=False),)),
]

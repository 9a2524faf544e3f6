"""The collection of features: one module per capability, each exporting COMMANDS (and EVENT_HANDLERS where
it handles events other than commands). `all_commands` is the order `help` shows them in."""

from __future__ import annotations

from circlebot.core.commands import Command
from circlebot.core.context import EventHandler
from circlebot.core.timeline import DirectPost, PostLines


def all_commands() -> list[Command]:
    from circlebot.features import (
        accounts,
        attendance,
        calendar,
        facilitators,
        general,
        meetings,
        polls,
        questions,
        readings,
        record,
        record_export,
    )

    modules = (general, readings, meetings, questions, attendance, record, record_export, facilitators, polls,
               calendar, accounts)
    return [c for m in modules for c in m.COMMANDS]


def all_event_handlers() -> list[EventHandler]:
    from circlebot.features import attendance, polls, record

    return [*attendance.EVENT_HANDLERS, *record.EVENT_HANDLERS, *polls.EVENT_HANDLERS]


def all_direct_posts() -> list[DirectPost]:
    """Timeline posts features send to one member alone."""
    from circlebot.features import facilitators

    return [*facilitators.DIRECT_POSTS]


def all_post_lines() -> list[PostLines]:
    """What features add to timeline posts, in this order."""
    from circlebot.features import facilitators, record

    return [*record.POST_LINES, *facilitators.POST_LINES]

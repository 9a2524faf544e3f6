"""One module per capability; each exports COMMANDS. `all_commands` is the order `help` shows them in."""

from __future__ import annotations

from circlebot.core.commands import Command


def all_commands() -> list[Command]:
    from circlebot.features import attendance, general, meetings, polls, questions, readings

    modules = (general, readings, meetings, questions, attendance, polls)
    return [c for m in modules for c in m.COMMANDS]

"""The errors a handler raises to answer the user instead of doing what they asked: `UsageError` for a mistake
(the command's usage is shown with it), `Refused` for what the user may not do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circlebot.core.text import Text

if TYPE_CHECKING:
    from circlebot.core.commands.declare import Command


class UserError(Exception):
    """Something to tell the user instead of doing what they asked; the router answers it privately."""

    def __init__(self, message: Text | str, command: Command | None = None) -> None:
        super().__init__(str(message))
        self.text = Text.of(message)
        self.command = command


class UsageError(UserError):
    """The user typed something wrong; the message says what, and the command's usage is shown with it."""


class Refused(UserError):
    """The user may not do that (not an organiser, not their data); no usage text is added."""


class UnknownCommand(UsageError):
    """No command has that name."""


class UnclosedQuote(UsageError):
    """A quote that is never closed; `start` is where it opens in the line."""

    def __init__(self, message: str, start: int, command: Command | None = None) -> None:
        super().__init__(message, command)
        self.start = start

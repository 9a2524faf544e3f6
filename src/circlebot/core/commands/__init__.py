"""Commands declared once and everything generated from the declarations: the text parser and binder, usage and
`help` (terminal, Matrix), the slash-command tree (Discord), and the errors users see. This package only gathers
the public names of its modules, so `from circlebot.core.commands import X` works for each of them."""

from __future__ import annotations

from circlebot.core.commands.bind import Assigned, assign_words, bind_options, bind_words
from circlebot.core.commands.declare import (
    DATE,
    FLAG,
    HOURS,
    MAX_NUMBER,
    MEETING,
    NUMBER,
    POLL,
    READING,
    TEXT,
    TIME,
    WHEN,
    Command,
    Handler,
    HandlerResult,
    Param,
    ParamType,
    Reply,
    choice,
    looks_like_number,
    positive_int,
)
from circlebot.core.commands.errors import Refused, UnclosedQuote, UnknownCommand, UsageError, UserError
from circlebot.core.commands.parse import MAX_INPUT, Word, split_words
from circlebot.core.commands.syntax import Syntax, help_text
from circlebot.core.commands.table import CommandTable

__all__ = [
    "DATE", "FLAG", "HOURS", "MAX_INPUT", "MAX_NUMBER", "MEETING", "NUMBER", "POLL", "READING", "TEXT", "TIME",
    "WHEN", "Assigned", "Command", "CommandTable", "Handler", "HandlerResult", "Param", "ParamType", "Refused",
    "Reply", "Syntax", "UnclosedQuote", "UnknownCommand", "UsageError", "UserError", "Word", "assign_words",
    "bind_options", "bind_words", "choice", "help_text", "looks_like_number", "positive_int", "split_words",
]

"""Commands declared once: name path, help, typed parameters (and the parameter types that turn a user's text
into a value), organiser-only flag, handler. The parser, binder, usage, `help` and Discord's slash commands are
all generated from these declarations."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, time
from typing import Any, Literal

from circlebot.core.domain import FileUpload
from circlebot.core.text import Text, fold


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer. `private` answers go only to the asker where the platform can (ephemeral, DM)."""

    text: Text | str
    private: bool = False
    file: FileUpload | None = None  # a file to hand over with the text (`ChatAdapter.send_file`)


HandlerResult = Text | str | Reply
Handler = Callable[..., Awaitable[HandlerResult]]


@dataclass(frozen=True, slots=True)
class ParamType:
    """How a parameter's text becomes a value. `kind` maps it to a platform's option type."""

    name: str
    convert: Callable[[str], Any]
    kind: Literal["str", "int", "float", "bool"] = "str"
    choices: tuple[str, ...] = ()
    complete: Literal["reading", "meeting", "poll"] | None = None


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter. `greedy` takes every remaining word; `option` is given as ``--name [value]``."""

    name: str
    type: ParamType
    help: str
    required: bool = True
    greedy: bool = False
    option: bool = False
    default: Any = None

    @property
    def is_flag(self) -> bool:
        return self.option and self.type.kind == "bool"

    def usage(self) -> str:
        if self.option:
            return f"[--{self.name}]" if self.is_flag else f"[--{self.name} {self.type.name.upper()}]"
        label = "|".join(self.type.choices) if self.type.choices else self.name
        label += "..." if self.greedy else ""
        return f"<{label}>" if self.required else f"[{label}]"


@dataclass(frozen=True, slots=True)
class Command:
    """A command: declared once, parsed and documented from the declaration."""

    path: tuple[str, ...]
    help: str
    handler: Handler
    params: tuple[Param, ...] = ()
    organiser: bool = False
    private: bool = False
    examples: tuple[str, ...] = ()
    details: str = ""
    # what it does is no circle's (linking accounts): sent in a direct conversation, any circle there will do
    any_circle: bool = False

    @property
    def name(self) -> str:
        return " ".join(self.path)


# ---------------------------------------------------------------------------------------------------------
# parameter types


MAX_NUMBER = 999_999_999
_NUMBER = re.compile(r"#?([0-9]+)")


def looks_like_number(text: str) -> bool:
    """ASCII digits, perhaps after a `#` (a meeting or poll as the bot writes it: #3)."""
    return _NUMBER.fullmatch(text.strip()) is not None


def positive_int(text: str, what: str = "a number") -> int:
    """A number a user typed: ASCII digits (other digits, like ² or ٣, are not numbers here), 1 to MAX_NUMBER."""
    m = _NUMBER.fullmatch(text.strip())
    n = int(m[1]) if m and len(m[1]) <= 12 else 0
    if not 1 <= n <= MAX_NUMBER:
        raise ValueError(f"expected {what} from 1 to {MAX_NUMBER}, got {text[:40]!r}")
    return n


def _positive_int(text: str) -> int:
    return positive_int(text)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a date like 2026-12-03, got {text!r}") from None


def _time(text: str) -> time:
    m = re.fullmatch(r"(\d{1,2})[:.h](\d{2})", text.strip())
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"expected a time like 19:00, got {text!r}")
    return time(int(m[1]), int(m[2]))


def _when(text: str) -> date | str:
    return "next" if text.strip().lower() == "next" else _date(text)


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _hours(text: str) -> float:
    try:
        h = float(text)
    except ValueError:
        raise ValueError(f"expected a number of hours, got {text!r}") from None
    if not 1 <= h <= 768:  # also refuses nan and inf
        raise ValueError(f"must be between 1 and 768 hours (32 days), got {text[:20]!r}")
    return h


def choice(name: str, *options: str) -> ParamType:
    def convert(text: str) -> str:
        t = text.strip().lower()
        if t not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return t

    return ParamType(name, convert, "str", choices=options)


TEXT = ParamType("text", _text)
NUMBER = ParamType("number", _positive_int, "int")
READING = ParamType("reading", lambda t: fold(_text(t)), complete="reading")
MEETING = ParamType("meeting", _positive_int, "int", complete="meeting")
POLL = ParamType("poll", _positive_int, "int", complete="poll")
DATE = ParamType("date", _date)
WHEN = ParamType("when", _when)
TIME = ParamType("time", _time)
HOURS = ParamType("hours", _hours, "float")
FLAG = ParamType("flag", lambda t: True, "bool")

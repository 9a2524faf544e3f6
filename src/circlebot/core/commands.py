"""Commands declared once: name path, help, typed parameters, organiser-only flag, handler.

The text parser and binder, `help` and usage messages (terminal, Matrix) and the slash-command tree (Discord)
are all generated from these declarations; the errors a handler raises to answer the user instead (`UserError`:
`UsageError` for a mistake, with the usage; `Refused` for what the user may not do) live here too.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Literal

from circlebot.core.text import Text, clean, fold

MAX_INPUT = 2000
_QUOTES = {'"': '"', "“": "”„“", "„": "“”", "«": "»"}
_SINGLE_QUOTES = {"'": "'", "‘": "’‘"}  # group words only where they close: else an apostrophe is a letter


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


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer. `private` answers go only to the asker where the platform can (ephemeral, DM)."""

    text: Text | str
    private: bool = False


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


# ---------------------------------------------------------------------------------------------------------
# text parsing


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    quoted: bool = False


def _single_quote_end(text: str, i: int) -> int:
    """Where the single quote opening at `i` closes: the first closing quote that ends a word; -1 if none
    does (then the quote is an apostrophe, a letter: 'Tis, 'n')."""
    closers = _SINGLE_QUOTES[text[i]]
    for k in range(i + 1, len(text)):
        if text[k] in closers and (k + 1 == len(text) or text[k + 1].isspace()):
            return k
    return -1


def split_words(text: str) -> list[Word]:
    """Split a command line into words. Double, curly and guillemet quotes group words (a backslash before the
    closing quote keeps it in the word); single quotes group words where they close at the end of a word, and
    are otherwise an apostrophe, a letter like any other (what's, 'Tis). Raises UnclosedQuote for a double
    quote that is never closed."""
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] in _SINGLE_QUOTES and (end := _single_quote_end(text, i)) > 0:
            words.append(Word(text[i + 1:end], quoted=True))
            i = end + 1
        elif text[i] in _QUOTES:
            closers = _QUOTES[text[i]]
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] not in closers:
                if text[j] == "\\" and j + 1 < n and text[j + 1] in closers:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise UnclosedQuote(f"a quote is not closed: {text[i:][:40]!r}. Close it with {closers[0]}.", i)
            words.append(Word("".join(buf), quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(Word(text[i:j]))
            i = j
    return words


@dataclass
class CommandTable:
    """All commands, looked up by path."""

    commands: Sequence[Command]
    _by_path: dict[tuple[str, ...], Command] = field(init=False)

    def __post_init__(self) -> None:
        self._by_path = {}
        for c in self.commands:
            if c.path in self._by_path:
                raise ValueError(f"command {c.name!r} declared twice")
            self._by_path[c.path] = c

    def get(self, path: tuple[str, ...]) -> Command | None:
        return self._by_path.get(path)

    def names(self) -> list[str]:
        return sorted({c.path[0] for c in self.commands})

    def resolve(self, text: str, prefix: str = "") -> tuple[Command, list[Word]]:
        """Find the command a line names (without the prefix); the rest of its words are not bound yet.
        `prefix` is how the platform's users start a command, for the hints in its errors."""
        if len(text) > MAX_INPUT:
            raise UsageError(f"that message is too long ({len(text)} characters; the most is {MAX_INPUT}).")
        try:
            words = split_words(text)
        except UnclosedQuote as e:  # name the command the quote belongs to, for its usage line
            with contextlib.suppress(UsageError):
                e.command = self.resolve(text[:e.start], prefix)[0] if e.start else None
            raise
        if not words:
            raise UnknownCommand(f"type a command; `{prefix}help` lists them.")
        head = words[0].text.lower()
        command = None
        if len(words) > 1 and not words[1].quoted:
            command = self.get((head, words[1].text.lower()))
            if command is not None:
                words = words[2:]
        if command is None:
            command = self.get((head,))
            words = words[1:]
        if command is None:
            near = [c.name for c in self.commands if c.path[0].startswith(head[:3])] if head else []
            hint = f" Did you mean: {', '.join(near)}?" if near else ""
            raise UnknownCommand(f"there is no command {head[:40]!r}.{hint} `{prefix}help` lists them.")
        return command, words

    def parse(self, text: str) -> tuple[Command, dict[str, Any]]:
        """Parse a command line into a command and its converted arguments."""
        command, words = self.resolve(text)
        return command, bind_words(command, words)

    def bind(self, command: Command, options: Mapping[str, Any]) -> dict[str, Any]:
        """Convert structured options (Discord slash-command options, by parameter name).

        An option's value is only text: words in it are never read as options (``answers:"A" "B" --secret``
        is refused, naming the option to set instead), and quote marks around a whole value are not part
        of it (``question:"Which day?"``)."""
        words: list[Word] = []
        for p in command.params:
            if p.name not in options or options[p.name] is None:
                continue
            v = options[p.name]
            if p.is_flag:
                if v:
                    words.append(Word(f"--{p.name}"))
            elif p.option:
                words += [Word(f"--{p.name}"), Word(_whole_value(v), quoted=True)]
            elif p.greedy and isinstance(v, str):
                words += _value_words(command, p, v)
            elif p.greedy and isinstance(v, list | tuple):
                words += [Word(str(x), quoted=True) for x in v]
            else:
                words.append(Word(_whole_value(v), quoted=True))
        return bind_words(command, words)


def _whole_value(value: Any) -> str:
    """A structured option's value as one word: a value that is all one quoted phrase loses its quotes."""
    text = str(value)
    try:
        words = split_words(text)
    except UsageError:
        return text
    return words[0].text if len(words) == 1 and words[0].quoted else text


def _value_words(command: Command, param: Param, value: str) -> list[Word]:
    """The words of a structured option that takes several (quoted where they contain spaces), all text."""
    names = {p.name for p in command.params if p.option}
    out: list[Word] = []
    try:
        split = split_words(value)
    except UnclosedQuote as e:
        e.command = command
        raise
    for w in split:
        name = w.text[2:].partition("=")[0].lower()
        if not w.quoted and w.text.startswith("--") and name in names:
            raise UsageError(f"{w.text} inside {param.name} is text, not an option: set the command's {name} "
                             "option instead.", command)
        out.append(Word(w.text, quoted=True))
    return out


Assigned = Word | tuple[Word, ...] | bool


def assign_words(command: Command, words: list[Word]) -> dict[str, Assigned]:
    """Which words go to which parameter, before any conversion: a flag gets True, a greedy parameter the
    tuple of its words, any other the one word given. Missing or extra words and unknown options raise
    UsageError."""
    options = {p.name: p for p in command.params if p.option}
    positional = [p for p in command.params if not p.option]
    assigned: dict[str, Assigned] = {}
    rest: list[Word] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.text.startswith("--") and not w.quoted and len(w.text) > 2:
            name, _, inline = w.text[2:].partition("=")
            p = options.get(name.lower())
            if p is None:
                known = ", ".join(f"--{o}" for o in options) or "none"
                raise UsageError(f"unknown option --{name[:30]} (options: {known}).", command)
            if p.is_flag:
                assigned[p.name] = True
            elif inline:
                assigned[p.name] = Word(inline)
            else:
                i += 1
                if i >= len(words):
                    raise UsageError(f"--{p.name} needs a value ({p.type.name}).", command)
                assigned[p.name] = words[i]
        else:
            rest.append(w)
        i += 1
    for p in positional:
        if p.greedy:
            if rest:
                assigned[p.name], rest = tuple(rest), []
            elif p.required:
                raise UsageError(f"missing <{p.name}>: {p.help}", command)
        elif rest:
            assigned[p.name] = rest.pop(0)
        elif p.required:
            raise UsageError(f"missing <{p.name}>: {p.help}", command)
    if rest:
        extra = " ".join(w.text for w in rest)[:60]
        raise UsageError(f"too many words: {extra!r}.", command)
    return assigned


def bind_words(command: Command, words: list[Word]) -> dict[str, Any]:
    """Bind words to a command's parameters, converting each; every mistake raises UsageError."""
    assigned = assign_words(command, words)
    values: dict[str, Any] = {}
    for p in command.params:
        got = assigned.get(p.name)
        if got is None:
            values[p.name] = False if p.is_flag else p.default
        elif isinstance(got, bool):
            values[p.name] = got
        elif isinstance(got, tuple):
            values[p.name] = tuple(_convert(command, p, w.text) for w in got)
        else:
            values[p.name] = _convert(command, p, got.text)
    return values


def _convert(command: Command, p: Param, text: str) -> Any:
    try:
        return p.type.convert(clean(text))
    except ValueError as e:
        raise UsageError(f"<{p.name}> {e}", command) from None


@dataclass(frozen=True)
class Syntax:
    """How a platform's users type commands: text after a prefix (terminal, Matrix: `!poll "Q?" "A" "B"`), or
    slash commands with named options (Discord: `/poll open question:... answers:...`), where `label` gives a
    command's name there. Usage and help are written in the platform's own syntax."""

    prefix: str = ""
    slash: bool = False
    label: Callable[[Command], str] | None = None

    def name(self, command: Command) -> str:
        return self.prefix + (self.label(command) if self.label else command.name)

    def param(self, p: Param) -> str:
        if not self.slash:
            return p.usage()
        value = "|".join(p.type.choices) if p.type.choices else p.type.name
        shown = f"{p.name}:True" if p.is_flag else f"{p.name}:<{value}>"
        return shown if p.required and not p.option else f"[{shown}]"

    def usage(self, command: Command) -> str:
        return " ".join([self.name(command), *(self.param(p) for p in command.params)])

    def example(self, command: Command, **values: object) -> str:
        """A command as users type it on this platform, with these values (``!vote 3 <n>``,
        ``/vote poll:3 answers:<n>``): every hint the bot gives is written by this, as usage is."""
        parts = [self.name(command)]
        for p in command.params:
            if p.name not in values:
                continue
            v = values[p.name]
            if self.slash:
                parts.append(f"{p.name}:{v}")
            elif p.is_flag:
                parts += [f"--{p.name}"] if v else []
            elif p.option:
                parts.append(f"--{p.name} {v}")
            else:
                parts.append(str(v))
        return " ".join(parts)

    def help_hint(self, command: Command) -> str:
        topic = self.label(command) if self.label else command.name
        return f"`{self.prefix}help command:{topic}`" if self.slash else f"`{self.prefix}help {command.name}`"


def help_text(table: CommandTable, topic: str | None, *, syntax: Syntax, organiser: bool) -> str:
    """`help` and `help <command>`, generated from the declarations, in the platform's syntax."""
    if topic:
        wanted = topic.lower().lstrip("/!")
        matches = [c for c in table.commands
                   if wanted in (c.name, c.path[0]) or (syntax.label is not None and wanted == syntax.label(c))]
        if not matches:
            raise UsageError(f"there is no command {topic[:40]!r}; `{syntax.prefix}help` lists them.")
        parts = []
        for c in matches:
            lines = [f"`{syntax.usage(c)}`" + (" (organisers only)" if c.organiser else ""), c.help]
            lines += [f"  {syntax.param(p)}: {p.help}" for p in c.params]
            if c.details:
                lines.append(c.details)
            if not syntax.slash:
                lines += [f"  e.g. `{syntax.prefix}{e}`" for e in c.examples]
            parts.append("\n".join(lines))
        return "\n\n".join(parts)
    lines = ["**Commands**"]
    for c in table.commands:
        if c.organiser and not organiser:
            continue
        mark = " *(organisers)*" if c.organiser else ""
        lines.append(f"`{syntax.usage(c)}`: {c.help}{mark}")
    more = f"`{syntax.prefix}help command:<name>`" if syntax.slash else f"`{syntax.prefix}help <command>`"
    lines.append(f"{more} tells more about one command.")
    return "\n".join(lines)

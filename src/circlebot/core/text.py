"""What the bot says, as structure: text, plus the parts each platform writes its own way.

A `Text` is a sequence of segments. A `str` segment is shown as it is: the core's light Markdown with whatever
users typed inside it; nothing in it is ever parsed back into a time or a command. The other segments are
values the adapters render:

- `TimeValue`: a moment. Discord writes its `<t:…>` mark (shown in each reader's zone); the other platforms
  write the time in the circle's zone, named (`named_time`).
- `CommandRef`: a command a reader can type, written by the adapter with its own prefix as inline code.

So a question, a poll answer or a name that contains `<t:…>` or `{prefix}` is only ever text, and no stored
value can make rendering fail. Build texts with `+` (`"Starts " + when(dt) + "."`) and `Text.join`; an
f-string would flatten a `Text` and lose its parts, so formatting one raises `TypeError`.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo


class TimeStyle(enum.StrEnum):
    """How much of a time to show (the letters are Discord's)."""

    FULL = "F"  # Thu 26 Nov 2026, 19:00 GMT (Europe/London)
    DATE = "D"  # Thu 26 Nov 2026
    TIME = "t"  # 19:00 GMT


@dataclass(frozen=True, slots=True)
class TimeValue:
    """A moment in a post, rendered per platform."""

    at: datetime
    style: TimeStyle = TimeStyle.FULL


@dataclass(frozen=True, slots=True)
class CommandRef:
    """A command a reader can type: its path and parameter values (``("rsvp",), (("answer", "yes"), ("meeting",
    "3"))``), written by each platform in its syntax (``!rsvp yes 3``, ``/rsvp answer:yes meeting:3``)."""

    path: tuple[str, ...]
    values: tuple[tuple[str, str], ...] = ()

    @property
    def words(self) -> str:
        """The command as text after a prefix (positional values, in the order given)."""
        return " ".join([*self.path, *(v for _, v in self.values)])


Segment = str | TimeValue | CommandRef


class Text:
    """An immutable sequence of segments (see the module docstring)."""

    __slots__ = ("segments",)
    segments: tuple[Segment, ...]

    def __init__(self, *pieces: Piece) -> None:
        out: list[Segment] = []
        for piece in pieces:
            for seg in piece.segments if isinstance(piece, Text) else (piece,):
                if isinstance(seg, str):
                    if not seg:
                        continue
                    if out and isinstance(out[-1], str):
                        out[-1] += seg
                        continue
                elif not isinstance(seg, TimeValue | CommandRef):
                    raise TypeError(f"a Text is made of str, TimeValue and CommandRef, not {type(seg).__name__}")
                out.append(seg)
        self.segments = tuple(out)

    @classmethod
    def of(cls, value: Piece) -> Text:
        return value if isinstance(value, Text) else cls(value)

    @staticmethod
    def join(sep: str, items: Iterable[Piece]) -> Text:
        pieces: list[Piece] = []
        for i, item in enumerate(items):
            if i:
                pieces.append(sep)
            pieces.append(item)
        return Text(*pieces)

    def __add__(self, other: Piece) -> Text:
        if not isinstance(other, str | TimeValue | CommandRef | Text):
            return NotImplemented
        return Text(self, other)

    def __radd__(self, other: Piece) -> Text:
        if not isinstance(other, str | TimeValue | CommandRef | Text):
            return NotImplemented
        return Text(other, self)

    def __format__(self, spec: str) -> str:
        raise TypeError("a Text in an f-string would lose its times and commands; join it with + instead")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Text) and other.segments == self.segments

    def __hash__(self) -> int:
        return hash(self.segments)

    def __bool__(self) -> bool:
        return bool(self.segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __repr__(self) -> str:
        return f"Text{self.segments!r}"

    def __str__(self) -> str:
        """A neutral rendering (UTC times, commands without a prefix), for logs and tests."""
        return self.render(time=lambda t: named_time(t, ZoneInfo("UTC")), command=lambda c: f"`{c.words}`")

    def __contains__(self, part: str) -> bool:
        return part in str(self)

    def to_data(self) -> list[Any]:
        """The text as JSON-ready data (how a post decided once is stored, `post_to_json`): its segments in
        order, a string as it is, a time as ``{"time": ISO 8601, "style": "F"}``, a command as ``{"command":
        [path...], "values": [[name, value]...]}``. `from_data` reads it back."""
        out: list[Any] = []
        for seg in self.segments:
            if isinstance(seg, str):
                out.append(seg)
            elif isinstance(seg, TimeValue):
                out.append({"time": seg.at.isoformat(), "style": seg.style.value})
            else:
                out.append({"command": list(seg.path), "values": [list(v) for v in seg.values]})
        return out

    @classmethod
    def from_data(cls, data: object) -> Text:
        """The text `to_data` wrote; raises ValueError naming the first segment that is not one."""
        if not isinstance(data, list):
            raise ValueError(f"a text is a list of segments, not {_shown(data)}")
        segments: list[Segment] = []
        for i, item in enumerate(data):
            try:
                segments.append(_segment(item))
            except (ValueError, TypeError) as e:
                raise ValueError(f"segment {i + 1}: {e}") from None
        return cls(*segments)

    def render(self, *, time: Callable[[TimeValue], str], command: Callable[[CommandRef], str],
               literal: Callable[[str], str] = str) -> str:
        """The text as one platform writes it: `literal` escapes what a platform would read as markup in text
        (Discord's time marks), `time` and `command` write the parts."""
        out: list[str] = []
        for seg in self.segments:
            if isinstance(seg, str):
                out.append(literal(seg))
            elif isinstance(seg, TimeValue):
                out.append(time(seg))
            else:
                out.append(command(seg))
        return "".join(out)


Piece = Segment | Text
"""Anything a Text is built from."""


def _shown(value: object, limit: int = 40) -> str:
    """A value read back, as an error message quotes it (JSON, cut short)."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _segment(item: object) -> Segment:
    """One segment of `Text.to_data`'s form."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and set(item) == {"time", "style"}:
        at, style = item["time"], item["style"]
        if not isinstance(at, str):
            raise ValueError(f"a time is an ISO 8601 string, not {_shown(at)}")
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {_shown(at)}") from None
        if not isinstance(style, str) or style not in {s.value for s in TimeStyle}:
            raise ValueError(f"a time's 'style' is one of {', '.join(s.value for s in TimeStyle)}, not "
                             f"{_shown(style)}")
        return TimeValue(moment, TimeStyle(style))
    if isinstance(item, dict) and set(item) == {"command", "values"}:
        path, values = item["command"], item["values"]
        if not (isinstance(path, list) and path and all(isinstance(w, str) and w for w in path)):
            raise ValueError(f"a command's path is a list of words, not {_shown(path)}")
        if not (isinstance(values, list) and all(
                isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in values)):
            raise ValueError(f"a command's values are [name, value] pairs of strings, not {_shown(values)}")
        return CommandRef(tuple(path), tuple((v[0], v[1]) for v in values))
    raise ValueError(f"a segment is a string, a time or a command, not {_shown(item)}")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """A number with its noun in the form that goes with it: "1 voter", "2 voters" (`plural` where adding an s
    is wrong)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def when(dt: datetime, style: TimeStyle = TimeStyle.FULL) -> Text:
    """A time in a post, as a part each platform renders (Discord in each reader's zone; others the circle's)."""
    return Text(TimeValue(dt, style))


def cmd(path: str, **values: object) -> Text:
    """A command in a post (`path` like "poll results", values by parameter name, in the order of the
    command's parameters), written by each platform in its own syntax."""
    return Text(CommandRef(tuple(path.split()), tuple((k, str(v)) for k, v in values.items())))


def named_time(value: TimeValue, zone: ZoneInfo) -> str:
    """A time in `zone`, named: "Thu 26 Nov 2026, 19:00 GMT (Europe/London)". Never raises: a moment that
    cannot be shown in the zone (the edge of the calendar) is shown in UTC."""
    at = value.at if value.at.tzinfo is not None else value.at.replace(tzinfo=UTC)
    local, name = at, ""
    for target in (zone, UTC):
        try:
            local, name = at.astimezone(target), str(target)
            break
        except (OverflowError, ValueError):
            continue
    label = local.tzname() or name
    if value.style is TimeStyle.DATE:
        return f"{local:%a} {local.day} {local:%b} {local.year:04d}"
    if value.style is TimeStyle.TIME:
        return f"{local:%H:%M} {label}"
    named = f" ({name})" if name and name != label else ""
    return f"{local:%a} {local.day} {local:%b} {local.year:04d}, {local:%H:%M} {label}{named}"


def discord_time(value: TimeValue) -> str:
    """Discord's time mark, which each reader's client shows in their own zone."""
    at = value.at if value.at.tzinfo is not None else value.at.replace(tzinfo=UTC)
    return f"<t:{int(at.timestamp())}:{value.style.value}>"


_DISCORD_MARK = re.compile(r"(\\*)<(?=[tT]:|@|#|/|:|a:)")


def discord_literal(text: str) -> str:
    """User text for Discord: a `<t:…>` (or mention, channel, command, emoji) mark in it is escaped with a
    backslash, so Discord shows it as typed. A backslash before `<` in the text itself would escape the escape,
    so the `<` always ends up after an odd number of them."""
    return _DISCORD_MARK.sub(lambda m: m[1] + ("\\" if len(m[1]) % 2 == 0 else "") + "<", text)


# user text: normalised on the way in, compared by its visible letters -------------------------------------------

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u180e"), None)  # zero-width space, joiner, BOM, MVS
_OPENERS = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c", "\u202e": "\u202c",  # LRE RLE LRO RLO
            "\u2066": "\u2069", "\u2067": "\u2069", "\u2068": "\u2069"}  # LRI RLI FSI
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSEEN = dict.fromkeys(map(ord, BIDI_CONTROLS + "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad"), None)


def clean(text: str, *, balance: bool = True) -> str:
    """User text as the core keeps it: NFC, lone surrogates replaced (U+FFFD), zero-width spaces and joiners
    removed, and (with `balance`) bidi embeddings, overrides and isolates balanced, so a right-to-left override
    typed in an answer or a name ends where that text ends instead of turning the rest of the bot's line
    around. A command line is cleaned without balancing, and each of its words with it."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text)).translate(_INVISIBLE)
    if not balance or not any(c in _OPENERS or c in "\u202c\u2069" for c in text):
        return text
    out: list[str] = []
    stack: list[str] = []
    for c in text:
        if c in _OPENERS:
            stack.append(_OPENERS[c])
        elif c in "\u202c\u2069":
            if c not in stack:
                continue  # a closer with nothing to close
            while stack and stack[-1] != c:  # closing an isolate closes the embeddings inside it
                out.append(stack.pop())
            stack.pop()
        out.append(c)
    out.extend(reversed(stack))
    return "".join(out)


def fold(text: str) -> str:
    """The key two user texts are compared by (answers, slugs, names, questions): NFC, without zero-width
    characters, soft hyphens and bidi controls, case-folded, spaces collapsed."""
    text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text)).translate(_UNSEEN)
    return " ".join(text.casefold().split())

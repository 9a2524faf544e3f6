"""The article collection: load and validate the study circle's readings.

Each reading is one Markdown file, ``readings/<slug>.md``.  The slug is the
file stem and must match :data:`SLUG_PATTERN`.  The file starts with a TOML
front-matter block between two lines ``+++``::

    +++
    title = "Bolivia: first balance-sheet of the insurrection"
    author = "International Marxist Tendency"
    publisher = "In Defence of Marxism (marxist.com)"
    published = 2003-10-20
    summary = "What the Bolivian workers concluded after overthrowing Goni."
    questions = ["Why was power not taken?"]

    [sections."First section"]
    questions = ["What does the first section argue?"]
    +++

    Introduction text...

    ## First section

    Section text...

Text before the first ``## `` heading is the introduction; each ``## Heading``
starts a section, and ``###`` or deeper headings belong to the current section.
Headings inside fenced code blocks are ignored.

Questions for one section go in a ``[sections."<heading>"]`` table with a
``questions`` list; the heading is matched ignoring case, spacing and
quotation marks, and a table naming no section of the file is an error.

:meth:`Reading.parts` splits a reading into meeting-sized :class:`Part` values
along its sections; :func:`check_collection` adds the stricter checks of
``circlebot readings check`` (empty sections, duplicate slugs and titles).

:func:`parse_reading` validates one file's text and raises
:class:`ReadingFormatError` listing *every* problem it found;
:func:`load_collection` loads a whole directory and never raises for bad files:
their problems are collected in :attr:`Collection.errors`, and the good files
are still loaded.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import os
import pathlib
import re
import stat
import tomllib
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circlebot.search import SearchIndex

__all__ = [
    "MAX_FILE_BYTES",
    "SLUG_PATTERN",
    "WORDS_PER_MINUTE",
    "CheckReport",
    "Collection",
    "Part",
    "Reading",
    "ReadingError",
    "ReadingFormatError",
    "Section",
    "check_collection",
    "load_collection",
    "parse_reading",
]

WORDS_PER_MINUTE = 200
"""Reading speed used for reading-time estimates."""

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Files larger than this are refused without being read."""

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
"""A valid slug (file stem) must match this pattern in full."""

_DELIMITER = "+++"
_REQUIRED_STRINGS = ("title", "author", "publisher", "summary")
_OPTIONAL_STRINGS = ("source", "organisation")
_KNOWN_KEYS = frozenset(
    {*_REQUIRED_STRINGS, *_OPTIONAL_STRINGS, "published", "language", "tags", "questions", "sections"}
)
_SECTION_TABLE_RE = re.compile(
    r"""\s*\[\s*sections\s*\.\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*\]"""
)
_TITLE_NOISE = str.maketrans("", "", "\"'“”‘’«»„")

PART_SLACK = 0.1
"""A reading up to 10 % longer than the target still counts as fitting one meeting."""
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_TOML_POSITION_RE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOML_KEY_RE = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*[.=]""")
_TOML_TABLE_RE = re.compile(r"""\s*\[\[?\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)""")
_HEADING_RE = re.compile(r" {0,3}##(?=[ \t]|$)(.*)")
_CLOSING_HASHES_RE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")
_SIMPLE_STRING = r'"[^"\\\x00-\x08\x0a-\x1f\x7f]*"'  # a TOML basic string without escapes
_SIMPLE_STRING_RE = re.compile(r'"([^"]*)"')
_SIMPLE_TOML_LINE_RE = re.compile(
    rf"([A-Za-z0-9_-]+)[ \t]*=[ \t]*"
    rf"(?:({_SIMPLE_STRING})"
    r"|([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    rf"|(\[[ \t]*(?:{_SIMPLE_STRING}[ \t]*,[ \t]*)*(?:{_SIMPLE_STRING}[ \t]*)?\]))[ \t]*"
)

# Rough Markdown-to-text conversion used for word counts and excerpts.
_MARKUP_SUBSTITUTIONS = (
    (re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]*\S.*$", re.MULTILINE), ""),  # link reference definitions
    (re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)"), r"\1"),  # images ![alt](src)
    (re.compile(r"\[([^\]\n]*)\]\([^)\n]*\)"), r"\1"),  # links [text](url)
    (re.compile(r"\[([^\]\n]*)\]\[[^\]\n]*\]"), r"\1"),  # reference links [text][ref]
    (re.compile(r"<((?:https?|mailto):[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][^>\n]*>"), ""),  # inline HTML tags
)
_MARKUP_CHARS = str.maketrans("", "", "#*_>`")
_WORD_TOKEN_RE = re.compile(r"[^\s\w]*\w\S*")  # one match per whitespace-separated token holding a \w


class _WordShapes(dict[int, int | None]):
    """``str.translate`` table for word counting: letters and digits become ``a``, whitespace a space.

    Every other character (punctuation, symbols, and the ``#*_>`` ` markup characters) is deleted,
    so a whitespace-separated token holding a ``\\w`` character (``_`` being markup) becomes one run
    of ``a`` and a token without one disappears.  Non-ASCII characters are classified on first
    sight and remembered.
    """

    def __missing__(self, code: int) -> int | None:
        char = chr(code)
        shape = _A if char.isalnum() else _SPACE if char.isspace() else None
        self[code] = shape
        return shape


_A, _SPACE = ord("a"), ord(" ")
_WORD_SHAPES = _WordShapes()
# The same for ASCII text as bytes (much faster): delete the other characters, then map.
_ASCII_WORD_SHAPES = bytes(_WORD_SHAPES[code] or code for code in range(256))
_ASCII_NON_WORD = bytes(code for code in range(256) if code > 127 or _WORD_SHAPES[code] is None)


# --------------------------------------------------------------------------- model


def _minutes(words: int) -> int:
    """Reading time in whole minutes for *words* words (at least one minute)."""
    return max(1, math.ceil(words / WORDS_PER_MINUTE))


@dataclass(frozen=True, slots=True)
class Section:
    """One ``## `` section of a reading.

    ``line`` is the 1-based line of the heading in the file; ``body`` is the
    Markdown text under the heading (without it) and ``words`` its word count.
    """

    title: str
    line: int
    body: str
    words: int
    questions: tuple[str, ...] = ()

    @property
    def minutes(self) -> int:
        """Estimated reading time of the section, in minutes (at least 1)."""
        return _minutes(self.words)


@dataclass(frozen=True, slots=True)
class Part:
    """A run of consecutive sections read for one meeting (see :meth:`Reading.parts`).

    ``index`` is 1-based and ``count`` the number of parts of the reading;
    ``intro`` tells whether the part starts with the reading's introduction.
    ``words`` includes the section headings.
    """

    index: int
    count: int
    intro: bool
    sections: tuple[Section, ...]
    words: int

    @property
    def minutes(self) -> int:
        """Estimated reading time of the part, in minutes (at least 1)."""
        return _minutes(self.words)

    @property
    def title(self) -> str:
        """``"Introduction … Last heading"``, or the one heading the part holds."""
        labels = (["Introduction"] if self.intro else []) + [s.title for s in self.sections]
        if not labels:
            return "Introduction"
        return labels[0] if len(labels) == 1 else f"{labels[0]} … {labels[-1]}"


@dataclass(frozen=True, slots=True)
class Reading:
    """A validated article of the collection.

    ``words`` counts the whole body (introduction, headings and sections);
    ``intro`` is the Markdown text before the first section.
    """

    slug: str
    title: str
    author: str
    publisher: str
    published: datetime.date
    source: str | None
    organisation: str | None
    language: str
    tags: tuple[str, ...]
    summary: str
    questions: tuple[str, ...]
    intro: str
    sections: tuple[Section, ...]
    words: int
    path: pathlib.Path

    @property
    def minutes(self) -> int:
        """Estimated reading time in minutes: ``ceil(words / 200)``, at least 1."""
        return _minutes(self.words)

    def parts(self, target_minutes: int) -> tuple[Part, ...]:
        """Split the reading into parts of about *target_minutes* each, never cutting a section.

        A reading of at most ``target_minutes * 1.1`` minutes is one part.
        Otherwise the fewest consecutive groups are taken whose longest group
        fits the target with that slack (or, when one section alone is longer,
        is no longer than that section); among the splits into that many
        groups, the one with the shortest longest group wins, the earliest
        such split on ties.  The introduction goes with the first section.
        Deterministic and pure.
        """
        if target_minutes < 1:
            raise ValueError(f"target_minutes must be at least 1, got {target_minutes}")
        intro_words = _count_words(self.intro)
        units = [s.words + _count_words(s.title) for s in self.sections]
        if not units:
            return (Part(1, 1, True, (), self.words),)
        units[0] += intro_words
        limit = target_minutes * WORDS_PER_MINUTE
        if sum(units) <= limit * (1 + PART_SLACK):
            groups = [len(units)]
        else:
            bound = max(limit * (1 + PART_SLACK), max(units))
            groups = [1] * len(units)
            for n in range(min(len(units), math.ceil(sum(units) / bound)), len(units) + 1):
                groups = _balanced_split(units, n)
                if _largest(units, groups) <= bound:
                    break
        parts: list[Part] = []
        start = 0
        for number, size in enumerate(groups, start=1):
            chunk = self.sections[start : start + size]
            words = sum(units[start : start + size])
            parts.append(Part(number, len(groups), start == 0 and bool(self.intro), chunk, words))
            start += size
        return tuple(parts)

    def excerpt(self, chars: int = 400) -> str:
        """Return the opening of the introduction as plain text, at most *chars* characters.

        Whitespace is collapsed and Markdown markup removed.  Longer text is cut
        at a word boundary and ends with "…" (counted in *chars*).  If the
        reading has no introduction, the first section (or else the summary)
        is used instead.
        """
        if chars < 1:
            raise ValueError(f"chars must be at least 1, got {chars}")
        source = self.intro or (self.sections[0].body if self.sections else "") or self.summary
        text = " ".join(_plain_text(source).split())
        if len(text) <= chars:
            return text
        window = text[: chars - 1]
        if text[chars - 1].isspace():
            cut = window
        else:
            space = window.rfind(" ")
            cut = window[:space] if space > 0 else window
        return cut.rstrip(" ,;:–—-") + "…"


@dataclass(frozen=True, slots=True)
class ReadingError:
    """One problem found in a reading file.

    ``line`` is 1-based; ``0`` means the problem concerns the file as a whole
    (its name, its size, where a symlink points...), and no line is shown.
    """

    path: pathlib.Path
    line: int
    message: str

    def __str__(self) -> str:
        """Render as ``path:line: message`` (or ``path: message`` when line is 0)."""
        if self.line > 0:
            return f"{self.path}:{self.line}: {self.message}"
        return f"{self.path}: {self.message}"


class ReadingFormatError(Exception):
    """Raised by :func:`parse_reading`; ``errors`` holds every problem found, in line order."""

    errors: tuple[ReadingError, ...]

    def __init__(self, errors: Iterable[ReadingError]) -> None:
        """Build the exception from one or more :class:`ReadingError` items."""
        self.errors = tuple(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True)
class Collection:
    """A loaded article collection.

    ``readings`` maps slug to :class:`Reading` (read-only, sorted by slug);
    ``errors`` lists the problems of the files that could not be loaded.
    Iterating yields the readings in slug order.
    """

    readings: Mapping[str, Reading]
    errors: tuple[ReadingError, ...] = field(default=())

    def __post_init__(self) -> None:
        """Freeze ``readings`` into a read-only mapping sorted by slug."""
        ordered = dict(sorted(self.readings.items()))
        object.__setattr__(self, "readings", types.MappingProxyType(ordered))
        object.__setattr__(self, "errors", tuple(self.errors))

    def get(self, slug: str) -> Reading | None:
        """Return the reading with this slug, or ``None``."""
        return self.readings.get(slug)

    def search(self, words: str) -> list[Reading]:
        """Find readings matching every word of *words* (case-insensitive).

        A word matches when it appears (as a substring) in the title, a tag,
        the author or the slug.  An empty query returns every reading.  Results
        are sorted by publication date, newest first, then by slug.
        """
        terms = words.casefold().split()
        hits = [reading for reading in self.readings.values() if _matches(reading, terms)]
        hits.sort(key=lambda reading: reading.slug)
        hits.sort(key=lambda reading: reading.published, reverse=True)
        return hits

    @cached_property
    def index(self) -> SearchIndex:
        """The full-text index of the collection, built on first use (see :mod:`circlebot.search`)."""
        from circlebot.search import SearchIndex

        return SearchIndex(self)

    def __len__(self) -> int:
        """Number of readings loaded."""
        return len(self.readings)

    def __iter__(self) -> Iterator[Reading]:
        """Iterate over the readings in slug order."""
        return iter(self.readings.values())


def _balanced_split(units: list[int], n: int) -> list[int]:
    """Sizes of the split of *units* into *n* consecutive non-empty groups with the smallest largest sum."""
    k = len(units)
    prefix = [0]
    for u in units:
        prefix.append(prefix[-1] + u)
    inf = float("inf")
    # best[g][i]: smallest largest sum splitting units[:i] into g groups; cut[g][i]: where the last group starts
    best = [[inf] * (k + 1) for _ in range(n + 1)]
    cut = [[0] * (k + 1) for _ in range(n + 1)]
    best[0][0] = 0
    for g in range(1, n + 1):
        for i in range(g, k + 1):
            for j in range(g - 1, i):
                value = max(best[g - 1][j], prefix[i] - prefix[j])
                if value < best[g][i]:
                    best[g][i], cut[g][i] = value, j
    sizes: list[int] = []
    i = k
    for g in range(n, 0, -1):
        j = cut[g][i]
        sizes.append(i - j)
        i = j
    return sizes[::-1]


def _largest(units: list[int], sizes: list[int]) -> int:
    largest, start = 0, 0
    for size in sizes:
        largest = max(largest, sum(units[start : start + size]))
        start += size
    return largest


def _matches(reading: Reading, terms: list[str]) -> bool:
    haystack = "\n".join((reading.title, reading.author, reading.slug, *reading.tags)).casefold()
    return all(term in haystack for term in terms)


# ------------------------------------------------------------------------ text helpers


def _plain_text(markdown: str) -> str:
    """Strip Markdown markup roughly: links become their text, ``#*_>` `` are dropped."""
    for pattern, replacement in _MARKUP_SUBSTITUTIONS:
        markdown = pattern.sub(replacement, markdown)
    return markdown.translate(_MARKUP_CHARS)


def _count_words(markdown: str) -> int:
    """Count the words of a Markdown text (tokens with at least one letter or digit).

    Same result as ``len(_WORD_TOKEN_RE.findall(_plain_text(markdown)))``, without regular
    expressions in the common case: the markup substitutions only run when their trigger
    character is present (each pattern holds a literal ``[`` or ``<`` and only copies text),
    then each token is reduced to a run of ``a`` (see :class:`_WordShapes`) and the runs counted.
    """
    if "[" in markdown:
        for pattern, replacement in _MARKUP_SUBSTITUTIONS[:4]:
            markdown = pattern.sub(replacement, markdown)
    if "<" in markdown:
        for pattern, replacement in _MARKUP_SUBSTITUTIONS[4:]:
            markdown = pattern.sub(replacement, markdown)
    if markdown.isascii():
        ascii_shapes = markdown.encode("ascii").translate(_ASCII_WORD_SHAPES, _ASCII_NON_WORD)
        return ascii_shapes.count(b" a") + ascii_shapes.startswith(b"a")
    shapes = markdown.translate(_WORD_SHAPES)
    return shapes.count(" a") + shapes.startswith("a")


def _describe(value: Any) -> str:
    """Describe a TOML value for an error message."""
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, datetime.datetime):
        return f"{value.isoformat()} (a date-time)"
    if isinstance(value, datetime.date):
        return f"{value.isoformat()} (a date)"
    if isinstance(value, datetime.time):
        return f"{value.isoformat()} (a time of day)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__  # pragma: no cover - tomllib produces no other types


def _suggest_slug(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:80].rstrip("-")
    return slug or "my-article"


# ------------------------------------------------------------------------- parsing


class _Problems:
    """Collects the errors of one file."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.errors: list[ReadingError] = []

    def add(self, line: int | Callable[[], int], message: str) -> None:
        """Record a problem; *line* may be a function, called only now (finding it can cost a pass)."""
        self.errors.append(ReadingError(self.path, line if isinstance(line, int) else line(), message))

    def fail(self) -> ReadingFormatError:
        """The exception to raise: every error, in line order."""
        return ReadingFormatError(sorted(self.errors, key=lambda error: error.line))


def parse_reading(path: pathlib.Path, text: str) -> Reading:
    """Parse and validate the text of the reading file *path*.

    The slug is ``path.stem``; *path* is only used for the slug and in error
    messages (the file is not read).  Raises :class:`ReadingFormatError` with
    all the problems found.
    """
    problems = _Problems(path)
    slug = path.stem
    if not SLUG_PATTERN.fullmatch(slug):
        problems.add(
            0,
            f"file name {path.name!r} is not a valid slug: use 1-80 lowercase letters, digits and "
            f"hyphens, starting with a letter or digit; rename it e.g. to "
            f"'{_suggest_slug(slug)}{path.suffix}'",
        )
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        problems.add(line, "binary file (contains NUL bytes): a reading must be a UTF-8 Markdown text file")
        raise problems.fail()
    if not text or text.isspace():
        problems.add(1, "empty file: a reading starts with a '+++' line, TOML metadata, '+++', then the text")
        raise problems.fail()

    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    end = text.find("\n")
    if (text if end < 0 else text[:end]).rstrip() != _DELIMITER:
        problems.add(1, _no_front_matter_message(text.split("\n")))
        raise problems.fail()
    # Lines 1..close-1 (0-based) are the front matter; the body is what follows line `close`.
    front_lines: list[str] = []
    close = 0
    while end >= 0:
        start = end + 1
        end = text.find("\n", start)
        front_line = text[start:] if end < 0 else text[start:end]
        close += 1
        if front_line.rstrip() == _DELIMITER:
            break
        front_lines.append(front_line)
    else:
        problems.add(
            1,
            "front matter opened with '+++' on line 1 is never closed: "
            "add a line '+++' after the last metadata line",
        )
        raise problems.fail()

    meta = _parse_front_matter(front_lines, close + 1, problems)
    fields = _check_fields(meta, _KeyLines(front_lines), problems) if meta is not None else None
    intro, sections, words = _parse_body("" if end < 0 else text[end + 1 :], close + 2, problems)
    if meta is not None and "sections" in meta:
        sections = _attach_section_questions(meta["sections"], front_lines, sections, problems)

    if problems.errors or fields is None:
        raise problems.fail()
    return Reading(
        slug=slug,
        intro=intro,
        sections=sections,
        words=words,
        path=path,
        **fields,
    )


def _no_front_matter_message(lines: list[str]) -> str:
    message = "no front matter: the file must start with a line '+++'"
    first = next((line.strip() for line in lines if line.strip()), "")
    if first == _DELIMITER:
        return message + " (remove the blank lines before it)"
    if first == "---":
        return message + " (this looks like YAML front matter: use TOML between '+++' lines instead)"
    return message + ", then the TOML metadata (title, author, ...), then another '+++' line"


def _parse_front_matter(
    front_lines: list[str], closing_line: int, problems: _Problems
) -> dict[str, Any] | None:
    """Parse the front matter: the common simple form directly, anything else with :mod:`tomllib`."""
    meta = _parse_simple_toml(front_lines)
    if meta is not None:
        return meta
    return _parse_toml(front_lines, closing_line, problems)


def _parse_simple_toml(front_lines: list[str]) -> dict[str, Any] | None:
    """Parse a front matter made only of one-line ``key = value`` pairs, or return None.

    Only a strict subset of TOML is accepted: bare keys, each defined once; values that are
    basic strings without escapes or control characters, local dates, or one-line arrays of
    such strings; blank lines.  The result is then exactly what :func:`tomllib.loads` returns.
    Anything else (comments, tables, escapes, invalid TOML...) returns None, and the caller
    falls back to :mod:`tomllib` and its error reporting.
    """
    meta: dict[str, Any] = {}
    for line in front_lines:
        match = _SIMPLE_TOML_LINE_RE.fullmatch(line)
        if match is None:
            if line.strip(" \t"):
                return None
            continue
        key, string, year, month, day, array = match.groups()
        if key in meta:
            return None
        if string is not None:
            meta[key] = string[1:-1]
        elif array is not None:
            meta[key] = _SIMPLE_STRING_RE.findall(array)
        else:
            try:
                meta[key] = datetime.date(int(year), int(month), int(day))
            except ValueError:
                return None
    return meta


def _parse_toml(front_lines: list[str], closing_line: int, problems: _Problems) -> dict[str, Any] | None:
    """Parse the front matter; on a syntax error report it with its file line."""
    try:
        return tomllib.loads("\n".join(front_lines))
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION_RE.search(message)
        reason = message[: position.start()] if position else message
        if position and position.group(1):
            line = int(position.group(1)) + 1  # + 1 for the opening '+++' line
            detail = f"{reason} (column {position.group(2)})"
        else:
            line = closing_line
            detail = f"{reason} at the end of the front matter (check for an unclosed quote or bracket)"
        if reason.startswith("Cannot overwrite"):
            duplicate = _duplicate_key(front_lines)
            if duplicate is not None:
                key, line = duplicate[0], duplicate[1] + 1
                detail = f"key {key!r} is defined twice"
        problems.add(
            line,
            f"invalid TOML in the front matter: {detail}; strings need quotes, lists look like "
            '["a", "b"] and dates like 2003-10-20',
        )
        return None


def _iter_top_level_keys(front_lines: list[str]) -> Iterator[tuple[str, int]]:
    """Yield (top-level key, 1-based front-matter line) pairs, roughly.

    Keys inside a ``[table]`` belong to that table, so the table name is
    yielded instead; lines inside multi-line strings are skipped.
    """
    in_string: str | None = None
    in_table = False
    for number, raw in enumerate(front_lines, start=1):
        line = raw
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        table = _TOML_TABLE_RE.match(line)
        if table:
            in_table = True
            yield _unquote(table.group(1)), number
        elif not in_table:
            key = _TOML_KEY_RE.match(line)
            if key:
                yield _unquote(key.group(1)), number
        for quote in ('"""', "'''"):
            if line.count(quote) % 2 == 1:
                in_string = quote
                break


def _unquote(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
        return key[1:-1]
    return key


def _key_lines(front_lines: list[str]) -> dict[str, int]:
    """Map each top-level key to the file line where it is first defined."""
    found: dict[str, int] = {}
    for key, number in _iter_top_level_keys(front_lines):
        found.setdefault(key, number + 1)  # + 1 for the opening '+++' line
    return found


_LineRef = int | Callable[[], int]
"""A 1-based file line, or a function finding it (called only when a problem is reported)."""


class _KeyLines:
    """The lines of the top-level front-matter keys, found (see :func:`_key_lines`) on first use."""

    def __init__(self, front_lines: list[str]) -> None:
        self._front_lines = front_lines
        self._found: dict[str, int] | None = None

    def get(self, key: str, default: int = 1) -> int:
        if self._found is None:
            self._found = _key_lines(self._front_lines)
        return self._found.get(key, default)

    def at(self, key: str) -> Callable[[], int]:
        """The line of *key* (1 when it is missing), as a function called only if needed."""
        return lambda: self.get(key)


def _duplicate_key(front_lines: list[str]) -> tuple[str, int] | None:
    seen: set[str] = set()
    for key, number in _iter_top_level_keys(front_lines):
        if key in seen:
            return key, number
        seen.add(key)
    return None


def _check_fields(meta: dict[str, Any], key_lines: _KeyLines, problems: _Problems) -> dict[str, Any] | None:
    """Validate the front-matter values; return Reading keyword arguments or None."""
    before = len(problems.errors)
    values: dict[str, Any] = {}

    def line_of(key: str) -> int:
        return key_lines.get(key)

    for key in meta:
        if key not in _KNOWN_KEYS:
            close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
            problems.add(
                line_of(key),
                f"unknown key {key!r} in the front matter: {hint} "
                f"(allowed keys: {', '.join(sorted(_KNOWN_KEYS))})",
            )

    for key in _REQUIRED_STRINGS:
        if key not in meta:
            problems.add(
                1, f'missing required field {key!r}: add a line like {key} = "..." to the front matter'
            )
            continue
        value = meta[key]
        if not isinstance(value, str):
            problems.add(line_of(key), f"{key!r} must be a string in quotes, got {_describe(value)}")
        elif not value.strip():
            problems.add(line_of(key), f"{key!r} must not be empty")
        else:
            values[key] = value.strip()

    for key in _OPTIONAL_STRINGS:
        value = meta.get(key)
        if value is None:
            values[key] = None
        elif not isinstance(value, str):
            problems.add(line_of(key), f"{key!r} must be a string in quotes, got {_describe(value)}")
        else:
            values[key] = value.strip() or None

    values["published"] = _check_published(meta, key_lines.at("published"), problems)
    values["language"] = _check_language(meta.get("language", "en"), key_lines.at("language"), problems)
    values["tags"] = _check_string_list(meta.get("tags", []), "tags", key_lines.at("tags"), problems)
    if "questions" not in meta:
        problems.add(
            1,
            'missing required field \'questions\': add questions = ["...?", "...?"] '
            "with at least one discussion question",
        )
    else:
        questions = _check_string_list(meta["questions"], "questions", key_lines.at("questions"), problems)
        if meta["questions"] == []:
            problems.add(line_of("questions"), "'questions' is empty: add at least one discussion question")
        values["questions"] = questions

    if len(problems.errors) > before:
        return None
    return values


def _check_published(meta: dict[str, Any], line: _LineRef, problems: _Problems) -> datetime.date | None:
    if "published" not in meta:
        problems.add(1, "missing required field 'published': add a line like published = 2003-10-20")
        return None
    value = meta["published"]
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    hint = ""
    if isinstance(value, datetime.datetime):
        hint = " (leave out the time of day)"
    elif isinstance(value, str):
        try:
            datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            hint = " (remove the quotes: TOML dates are written bare)"
    problems.add(line, f"'published' must be a TOML date like 2003-10-20, got {_describe(value)}{hint}")
    return None


def _check_language(value: Any, line: _LineRef, problems: _Problems) -> str:
    if isinstance(value, str) and _LANGUAGE_RE.fullmatch(value.strip()):
        return value.strip()
    problems.add(line, f'\'language\' must be a language code like "en" or "es", got {_describe(value)}')
    return "en"


def _check_string_list(value: Any, key: str, line: _LineRef, problems: _Problems) -> tuple[str, ...]:
    if not isinstance(value, list):
        problems.add(line, f'{key!r} must be a list of strings like ["a", "b"], got {_describe(value)}')
        return ()
    items: list[str] = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, str):
            problems.add(line, f"{key!r} item {number} must be a string in quotes, got {_describe(item)}")
        elif not item.strip():
            problems.add(line, f"{key!r} item {number} is empty: remove it or fill it in")
        else:
            items.append(item.strip())
    return tuple(dict.fromkeys(items))


def _title_key(title: str) -> str:
    """How a front-matter section name is matched to a heading: case, spacing and quote marks ignored."""
    return " ".join(title.translate(_TITLE_NOISE).casefold().split())


def _section_table_lines(front_lines: list[str]) -> dict[str, int]:
    """Map each ``[sections."name"]`` table's name key to its file line."""
    found: dict[str, int] = {}
    for number, line in enumerate(front_lines, start=2):  # + 1 for the opening '+++' line
        match = _SECTION_TABLE_RE.match(line)
        if match:
            raw = match.group(1)
            try:
                name = json.loads(raw) if raw.startswith('"') else _unquote(raw)
            except ValueError:
                name = _unquote(raw)
            found.setdefault(_title_key(str(name)), number)
    return found


def _attach_section_questions(
    value: Any, front_lines: list[str], sections: tuple[Section, ...], problems: _Problems
) -> tuple[Section, ...]:
    """Validate the ``[sections."heading"]`` tables and put their questions on the sections."""
    table_line = _key_lines(front_lines).get("sections", 1)
    if not isinstance(value, dict):
        problems.add(
            table_line,
            "'sections' must be tables like [sections.\"Heading\"] with a questions list, "
            f"got {_describe(value)}",
        )
        return sections
    lines = _section_table_lines(front_lines)
    by_key = {_title_key(s.title): s.title for s in sections}
    found: dict[str, tuple[str, ...]] = {}
    for name, table in value.items():
        key = _title_key(name)
        line = lines.get(key, table_line)
        shown = json.dumps(name, ensure_ascii=False)
        if key not in by_key:
            close = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.6)
            hint = f": did you mean {json.dumps(by_key[close[0]], ensure_ascii=False)}?" if close else ""
            headings = "; the file has no '##' sections" if not sections else hint
            problems.add(
                line, f"questions for section {shown}, but there is no '## ' heading with that title{headings}"
            )
            continue
        if not isinstance(table, dict):
            problems.add(line, f"sections.{shown} must be a table with a questions list, got {_describe(table)}")
            continue
        for extra in sorted(set(table) - {"questions"}):
            problems.add(line, f"unknown key {extra!r} in sections.{shown}: only 'questions' is allowed")
        if "questions" not in table:
            problems.add(line, f"sections.{shown} has no 'questions' list")
            continue
        asked = _check_string_list(table["questions"], f"sections.{name} questions", line, problems)
        found[by_key[key]] = found.get(by_key[key], ()) + asked
    if not found:
        return sections
    return tuple(
        replace(section, questions=found[section.title]) if section.title in found else section
        for section in sections
    )


def _parse_body(body: str, first_line: int, problems: _Problems) -> tuple[str, tuple[Section, ...], int]:
    """Split the body into introduction and sections; return (intro, sections, words).

    *body* is the text after the front matter (newlines normalised), starting on file line
    *first_line*.  Without fenced code blocks, only the lines holding ``##`` are looked at and the
    parts are sliced out of *body*; otherwise it goes line by line (see :func:`_parse_body_lines`).
    """
    if ("`" in body and "```" in body) or ("~" in body and "~~~" in body):  # one character is found faster
        return _parse_body_lines(body.split("\n"), first_line, problems)
    # headings: (title, file line, start and end offsets of the heading line in body)
    headings: list[tuple[str, int, int, int]] = []
    line_number, counted = first_line, 0
    hit = body.find("##")
    while hit >= 0:
        start = body.rfind("\n", 0, hit) + 1
        end = body.find("\n", hit)
        if end < 0:
            end = len(body)
        # a heading line has its first '##' after at most three spaces: look at no other '##' of the line
        heading = _HEADING_RE.match(body[start:end]) if hit - start <= 3 else None
        if heading:
            line_number += body.count("\n", counted, start)
            counted = start
            title = heading.group(1).strip()
            if title.endswith("#"):  # else there are no closing hashes to remove
                title = _CLOSING_HASHES_RE.sub("", title).strip()
            if not title:
                problems.add(line_number, "empty '##' heading: give the section a title")
            headings.append((title, line_number, start, end))
        hit = body.find("##", end)

    sections: tuple[Section, ...] = ()
    if not headings:
        intro, words = body, _count_words(body)
    else:
        intro = body[: headings[0][2]]
        # Word counts go line by line (see _count_words), so the body's count is the sum of those of
        # the introduction, the heading lines and the section texts: each of those is counted once.
        # Stripping spaces, tabs and newlines off the front of a section keeps its count (a link
        # reference definition may follow spaces or tabs); if other whitespace comes off, the whole
        # body is counted instead.
        words = _count_words(intro) + _count_words("\n".join(body[start:end] for _, _, start, end in headings))
        counts_add_up = True
        following = [start for _, _, start, _ in headings[1:]] + [len(body)]
        built: list[Section] = []
        for (title, number, _, end), stop in zip(headings, following, strict=True):
            text = body[end + 1 : stop].lstrip(" \t\n")
            if text[:1].isspace():
                counts_add_up = False
                text = text.lstrip()
            text = text.rstrip()
            section_words = _count_words(text)
            words += section_words
            built.append(Section(title=title, line=number, body=text, words=section_words))
        sections = tuple(built)
        if not counts_add_up:
            words = _count_words(body)
    if words == 0:
        problems.add(
            max(first_line - 1, 1), "the article has no text: add the Markdown body after the closing '+++'"
        )
    return intro.strip(), sections, words


def _parse_body_lines(
    lines: list[str], first_line: int, problems: _Problems
) -> tuple[str, tuple[Section, ...], int]:
    """:func:`_parse_body` line by line, following fenced code blocks (whose headings do not count)."""
    intro_lines: list[str] = []
    headings: list[tuple[str, int]] = []
    bodies: list[list[str]] = []
    current = intro_lines
    fence: str | None = None
    for number, line in enumerate(lines, start=first_line):
        fence_match = _FENCE_RE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        else:
            heading = _HEADING_RE.match(line)
            if heading:
                title = _CLOSING_HASHES_RE.sub("", heading.group(1).strip()).strip()
                if not title:
                    problems.add(number, "empty '##' heading: give the section a title")
                headings.append((title, number))
                current = []
                bodies.append(current)
                continue
        current.append(line)

    intro = "\n".join(intro_lines).strip()
    sections = tuple(
        Section(title=title, line=number, body=body, words=_count_words(body))
        for (title, number), body in (
            (h, "\n".join(b).strip()) for h, b in zip(headings, bodies, strict=True)
        )
    )
    words = _count_words("\n".join(lines))
    if words == 0:
        problems.add(
            max(first_line - 1, 1), "the article has no text: add the Markdown body after the closing '+++'"
        )
    return intro, sections, words


# ------------------------------------------------------------------------- loading


def load_collection(directory: pathlib.Path) -> Collection:
    """Load every ``*.md`` reading of *directory* (not recursive).

    Never raises for bad files: their problems end up in
    :attr:`Collection.errors` and the other files still load.  A missing
    directory is reported as a single error.  ``README.md`` and hidden files
    are skipped; symlinks pointing outside *directory* are refused.
    """
    try:
        with os.scandir(directory) as scan:
            entries = sorted(((entry.name, _is_symlink(entry)) for entry in scan), key=lambda entry: entry[0])
        root = directory.resolve()
    except FileNotFoundError:
        message = "readings directory not found: create it and add one <slug>.md file per article"
        return Collection({}, (ReadingError(directory, 0, message),))
    except NotADirectoryError:
        message = "the readings path is not a directory: point it at the folder holding the <slug>.md files"
        return Collection({}, (ReadingError(directory, 0, message),))
    except (OSError, RuntimeError) as exc:
        message = f"cannot list the readings directory: {_os_reason(exc)}"
        return Collection({}, (ReadingError(directory, 0, message),))

    readings: dict[str, Reading] = {}
    errors: list[ReadingError] = []
    for name, is_symlink in entries:
        if not name.endswith(".md") or name.startswith(".") or name.casefold() == "readme.md":
            continue
        entry = directory / name
        try:
            reading = parse_reading(entry, _read_text(entry, root, is_symlink=is_symlink))
        except ReadingFormatError as exc:
            errors.extend(exc.errors)
        else:
            readings[reading.slug] = reading
    return Collection(readings, tuple(errors))


def _is_symlink(entry: os.DirEntry[str]) -> bool | None:
    """Whether a directory entry is a symlink, as listed (None when unknown: checked again when read)."""
    try:
        return entry.is_symlink()
    except OSError:
        return None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _read_text(path: pathlib.Path, root: pathlib.Path, *, is_symlink: bool | None = None) -> str:
    """Read a reading file safely as UTF-8, raising ReadingFormatError on any problem.

    *is_symlink* is what the directory listing said about *path* (checked again when None).
    """

    def fail(line: int, message: str) -> ReadingFormatError:
        return ReadingFormatError((ReadingError(path, line, message),))

    if path.is_symlink() if is_symlink is None else is_symlink:
        try:
            target = path.resolve(strict=True)
        except FileNotFoundError as exc:
            raise fail(
                0, f"broken symlink: it points to {os.readlink(path)!s}, which does not exist"
            ) from exc
        except (OSError, RuntimeError) as exc:
            raise fail(0, f"cannot follow symlink: {_os_reason(exc)}") from exc
        if not target.is_relative_to(root):
            raise fail(
                0,
                f"symlink points outside the readings directory (to {target}): "
                "refused; copy the file into the directory instead",
            )

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise fail(0, f"cannot open the file: {_os_reason(exc)}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise fail(0, "not a regular file: each reading must be a plain <slug>.md file")
        if info.st_size > MAX_FILE_BYTES:
            raise fail(
                0,
                f"file too large ({info.st_size:,} bytes, limit {MAX_FILE_BYTES:,}): "
                "a reading should be one article of plain text",
            )
        # Read what fstat announced plus one byte (to see the end, or growth), up to the limit + 1:
        # asking for MAX_FILE_BYTES at once would allocate that much for every file.
        chunks: list[bytes] = []
        wanted = min(info.st_size, MAX_FILE_BYTES) + 1
        total = 0
        while total <= MAX_FILE_BYTES:
            chunk = os.read(fd, max(wanted - total, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as exc:
        raise fail(0, f"cannot read the file: {_os_reason(exc)}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise fail(0, f"file too large (over {MAX_FILE_BYTES:,} bytes): a reading should be one article")

    nul = data.find(b"\x00")
    if nul >= 0:
        hint = ""
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            hint = " (it looks like UTF-16: re-save it as UTF-8)"
        line = data.count(b"\n", 0, nul) + 1
        raise fail(
            line, f"binary file (contains NUL bytes): a reading must be a UTF-8 Markdown text file{hint}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise fail(
            line,
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}): re-save the file as UTF-8",
        ) from exc


# -------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class CheckReport:
    """What ``circlebot readings check`` found: the loaded collection, errors and warnings."""

    collection: Collection
    errors: tuple[ReadingError, ...]
    warnings: tuple[ReadingError, ...]


def check_collection(directory: pathlib.Path) -> CheckReport:
    """Load *directory* and apply the stricter checks of ``readings check``.

    Beyond the loader's errors (front matter fields and types, questions for
    missing sections...), these are errors: a section without text, and two
    files whose names give the same slug once case is ignored (``a.md`` and
    ``A.md``: the second is also an invalid slug, but on a case-insensitive
    file system they collide).  Warnings: two readings with the same title,
    and files the loader skips because of their extension (``.MD``,
    ``.markdown``, ``.txt``).
    """
    collection = load_collection(directory)
    errors = list(collection.errors)
    warnings: list[ReadingError] = []
    for reading in collection:
        for section in reading.sections:
            if section.words == 0:
                errors.append(
                    ReadingError(
                        reading.path,
                        section.line,
                        f"section {section.title!r} is empty: add its text or remove the heading",
                    )
                )
    try:
        names = sorted(entry.name for entry in directory.iterdir())
    except OSError:
        names = []
    stems: dict[str, str] = {}
    for name in names:
        if name.startswith("."):
            continue
        stem, dot, suffix = name.rpartition(".")
        if not dot:
            continue
        if suffix == "md" and name.casefold() != "readme.md":
            first = stems.setdefault(stem.casefold(), name)
            if first != name:
                errors.append(
                    ReadingError(
                        directory / name,
                        0,
                        f"duplicate slug {stem.casefold()!r}: {first} has the same name but for case; "
                        "remove or rename one",
                    )
                )
        elif suffix.casefold() in {"md", "markdown", "txt"} and name.casefold() != "readme.md":
            warnings.append(
                ReadingError(
                    directory / name,
                    0,
                    "skipped: only files ending in '.md' are readings (`circlebot readings import` "
                    "turns a text file into one)",
                )
            )
    titles: dict[str, Reading] = {}
    for reading in collection:
        other = titles.setdefault(" ".join(reading.title.casefold().split()), reading)
        if other is not reading:
            warnings.append(
                ReadingError(reading.path, 0, f"same title as {other.path.name}: is it the same article twice?")
            )
    errors.sort(key=lambda error: (str(error.path), error.line))
    return CheckReport(collection, tuple(errors), tuple(warnings))

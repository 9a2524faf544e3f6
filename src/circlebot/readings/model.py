"""The collection's values: readings, their sections and meeting parts, the loaded collection, and load errors."""

from __future__ import annotations

import datetime
import math
import pathlib
import re
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from circlebot.readings.text import count_words, plain_text

if TYPE_CHECKING:
    from circlebot.readings.search import SearchIndex

WORDS_PER_MINUTE = 200
"""Reading speed used for reading-time estimates."""

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Files larger than this are refused without being read."""

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,79}")
"""A valid slug (file stem) must match this pattern in full."""

PART_SLACK = 0.1
"""A reading up to 10 % longer than the target still counts as fitting one meeting."""


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
        intro_words = count_words(self.intro)
        units = [s.words + count_words(s.title) for s in self.sections]
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
        text = " ".join(plain_text(source).split())
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
        """The full-text index of the collection, built on first use (see :mod:`circlebot.readings.search`)."""
        from circlebot.readings.search import SearchIndex

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


class Problems:
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


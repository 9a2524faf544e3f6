"""Front matter: the TOML block between ``+++`` lines, read with tomli and checked field by field.

The one TOML reader is :mod:`tomli` (the library the standard ``tomllib`` was taken from, the same parser
with the same errors, shipped compiled so it reads a front matter about 2.5 times faster): values come
only from it, and so do the file lines of problems.  A syntax error carries its own line and column; the
line of a key whose value is wrong is where that key first appears when ever longer prefixes of the front
matter are read (done only when a problem is reported).
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import tomli

from circlebot.readings.model import Problems, Section

DELIMITER = "+++"
"""The line that opens and closes the front matter."""

_REQUIRED_STRINGS = ("title", "author", "publisher", "summary")
_OPTIONAL_STRINGS = ("source", "organisation")
_KNOWN_KEYS = frozenset(
    {*_REQUIRED_STRINGS, *_OPTIONAL_STRINGS, "published", "language", "tags", "questions", "sections"}
)
_TITLE_NOISE = str.maketrans("", "", "\"'“”‘’«»„")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_TOML_HINT = 'strings need quotes, lists look like ["a", "b"] and dates like 2003-10-20'
# Locating keys reads ever longer prefixes: at most this many, of at most this many characters in all (a huge
# front matter would otherwise take minutes); keys not located by then are reported on line 1.
_LOCATE_MAX_LINES = 500
_LOCATE_MAX_CHARS = 4_000_000


@dataclass(frozen=True, slots=True)
class FrontMatter:
    """A file cut at its front matter: the TOML lines (file lines 2 on) and the body after the closing line."""

    lines: list[str]
    body: str

    @property
    def closing_line(self) -> int:
        """The file line of the closing ``+++``."""
        return len(self.lines) + 2


def split_front_matter(text: str, problems: Problems) -> FrontMatter | None:
    """Cut *text* (newlines normalised, not empty) into front matter and body; None (and a problem) if it can't be."""
    end = text.find("\n")
    if (text if end < 0 else text[:end]).rstrip() != DELIMITER:
        problems.add(1, _no_front_matter_message(text.split("\n")))
        return None
    lines: list[str] = []
    while end >= 0:
        start = end + 1
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.rstrip() == DELIMITER:
            return FrontMatter(lines, "" if end < 0 else text[end + 1 :])
        lines.append(line)
    problems.add(
        1,
        "front matter opened with '+++' on line 1 is never closed: add a line '+++' after the last metadata line",
    )
    return None


def parse_toml(front: FrontMatter, problems: Problems) -> dict[str, Any] | None:
    """Read the front matter with tomli; on a syntax error record it at its file line and return None."""
    document = "\n".join(front.lines)
    try:
        return tomli.loads(document)
    except tomli.TOMLDecodeError as exc:
        line = exc.lineno + 1  # + 1 for the opening '+++' line
        if exc.msg.startswith("Cannot overwrite"):
            key = _key_defined_on(front.lines[exc.lineno - 1])
            detail = f"key {key!r} is defined twice" if key else f"{exc.msg} (column {exc.colno})"
        elif exc.pos >= len(document):
            line = front.closing_line
            detail = f"{exc.msg} at the end of the front matter (check for an unclosed quote or bracket)"
        else:
            detail = f"{exc.msg} (column {exc.colno})"
        problems.add(line, f"invalid TOML in the front matter: {detail}; {_TOML_HINT}")
        return None


def _key_defined_on(line: str) -> str | None:
    """The one key a line defines, when the line is a TOML document by itself."""
    try:
        keys = list(tomli.loads(line))
    except tomli.TOMLDecodeError:
        return None
    return keys[0] if len(keys) == 1 else None


_LineRef = int | Callable[[], int]
"""A 1-based file line, or a function finding it (called only when a problem is reported)."""


class KeyLines:
    """The file line where each key of a front matter is defined, found on first use.

    The line of a key is where it first appears in what tomli reads from ever longer prefixes of the
    front matter (a prefix that ends inside a multi-line value does not parse and is passed over), so the
    same parser that gave the values places them.  Keys are the top-level ones (``("title",)``) and those
    one table down (``("sections", "Heading")``).
    """

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._found: dict[tuple[str, ...], int] | None = None

    def get(self, *key: str, default: int = 1) -> int:
        """The file line of *key* (*default* when it is not found)."""
        if self._found is None:
            self._found = self._locate()
        return self._found.get(key, default)

    def at(self, key: str) -> Callable[[], int]:
        """The line of the top-level *key* (1 when it is missing), as a function called only if needed."""
        return lambda: self.get(key)

    def _locate(self) -> dict[tuple[str, ...], int]:
        found: dict[tuple[str, ...], int] = {}
        parsed = 0  # the longest prefix read so far; a key new in a longer one starts on the line after it
        size = spent = 0
        for end in range(1, min(len(self._lines), _LOCATE_MAX_LINES) + 1):
            size += len(self._lines[end - 1]) + 1
            spent += size
            if spent > _LOCATE_MAX_CHARS:
                break
            try:
                document = tomli.loads("\n".join(self._lines[:end]))
            except tomli.TOMLDecodeError:
                continue
            for key, value in document.items():
                found.setdefault((key,), parsed + 2)  # + 1 for the opening '+++' line
                if isinstance(value, dict):
                    for inner in value:
                        found.setdefault((key, inner), parsed + 2)
            parsed = end
        return found


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


def _no_front_matter_message(lines: list[str]) -> str:
    message = "no front matter: the file must start with a line '+++'"
    first = next((line.strip() for line in lines if line.strip()), "")
    if first == DELIMITER:
        return message + " (remove the blank lines before it)"
    if first == "---":
        return message + " (this looks like YAML front matter: use TOML between '+++' lines instead)"
    return message + ", then the TOML metadata (title, author, ...), then another '+++' line"


def check_fields(meta: dict[str, Any], key_lines: KeyLines, problems: Problems) -> dict[str, Any] | None:
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


def _check_published(meta: dict[str, Any], line: _LineRef, problems: Problems) -> datetime.date | None:
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


def _check_language(value: Any, line: _LineRef, problems: Problems) -> str:
    if isinstance(value, str) and _LANGUAGE_RE.fullmatch(value.strip()):
        return value.strip()
    problems.add(line, f'\'language\' must be a language code like "en" or "es", got {_describe(value)}')
    return "en"


def _check_string_list(value: Any, key: str, line: _LineRef, problems: Problems) -> tuple[str, ...]:
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


def _table_line(key_lines: KeyLines, name: str) -> Callable[[], int]:
    """The line of the ``[sections."name"]`` table (else of the first sections table), found only if needed."""
    return lambda: key_lines.get("sections", name, default=key_lines.get("sections"))

def attach_section_questions(
    value: Any, key_lines: KeyLines, sections: tuple[Section, ...], problems: Problems
) -> tuple[Section, ...]:
    """Validate the ``[sections."heading"]`` tables and put their questions on the sections."""
    table_line = key_lines.at("sections")
    if not isinstance(value, dict):
        problems.add(
            table_line,
            "'sections' must be tables like [sections.\"Heading\"] with a questions list, "
            f"got {_describe(value)}",
        )
        return sections
    by_key = {_title_key(s.title): s.title for s in sections}
    found: dict[str, tuple[str, ...]] = {}
    for name, table in value.items():
        key = _title_key(name)
        line = _table_line(key_lines, name)
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


"""Front matter: the TOML block between ``+++`` lines, parsed and checked field by field, errors by file line."""

from __future__ import annotations

import datetime
import difflib
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from circlebot.readings.model import Problems, Section

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

_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_TOML_POSITION_RE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOML_KEY_RE = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*[.=]""")
_TOML_TABLE_RE = re.compile(r"""\s*\[\[?\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)""")
_SIMPLE_STRING = r'"[^"\\\x00-\x08\x0a-\x1f\x7f]*"'  # a TOML basic string without escapes
_SIMPLE_STRING_RE = re.compile(r'"([^"]*)"')
_SIMPLE_TOML_LINE_RE = re.compile(
    rf"([A-Za-z0-9_-]+)[ \t]*=[ \t]*"
    rf"(?:({_SIMPLE_STRING})"
    r"|([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    rf"|(\[[ \t]*(?:{_SIMPLE_STRING}[ \t]*,[ \t]*)*(?:{_SIMPLE_STRING}[ \t]*)?\]))[ \t]*"
)


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
    if first == _DELIMITER:
        return message + " (remove the blank lines before it)"
    if first == "---":
        return message + " (this looks like YAML front matter: use TOML between '+++' lines instead)"
    return message + ", then the TOML metadata (title, author, ...), then another '+++' line"


def _parse_front_matter(
    front_lines: list[str], closing_line: int, problems: Problems
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


def _parse_toml(front_lines: list[str], closing_line: int, problems: Problems) -> dict[str, Any] | None:
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


def _check_fields(meta: dict[str, Any], key_lines: _KeyLines, problems: Problems) -> dict[str, Any] | None:
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
    value: Any, front_lines: list[str], sections: tuple[Section, ...], problems: Problems
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


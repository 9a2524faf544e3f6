"""Turn plain-text or Markdown articles into collection files (``circlebot readings import``).

The conversion (:func:`convert`) is pure and follows documented heuristics:

* **Title**: the first non-empty line (a leading ``#`` is dropped).
* **Paragraphs** are blocks of lines separated by blank lines; they are kept
  as they are, quotations included.  A plain-text line starting with ``#`` is
  escaped so that it stays text.
* **Headings** (plain text only): a block of a single line is a ``##``
  heading when it is short (at most 12 words and 100 characters), has a
  letter, does not end with a full stop, comma, semicolon or colon, is not a
  list item, and has a paragraph after it.  A Markdown file (``.md`` or
  ``.markdown``) keeps its ``#`` headings (``#`` becomes ``##``, ``###`` and
  deeper stay inside the section) and no heuristic is applied; any other file
  is plain text, where a line starting with ``#`` is text.  Either way, a heading with no
  words after it before the next heading is not a section: it stays text (so an import never
  writes a reading that ``readings check`` rejects).
  Photo captions look exactly like headings in plain text ("Miner with a
  dynamite stick"): the heuristic cannot tell them apart, so remove them with
  ``drop_lines`` (``--drop-line TEXT``, matched against whole lines, case
  ignored).
* **Metadata from the text**: a line that is only a date ("October 20,
  2003", "20 October 2003", "2003-10-20") gives ``published`` and is removed;
  with ``cut_after_date`` everything after it (a web page's trailer: "See the
  original", "Join us"...) is cut as well.  A line ``By Name`` or ``Author:
  Name`` among the first paragraphs gives ``author``.  The summary defaults to
  the opening sentences of the first paragraph.  What the text does not give
  must come from the options (``--author``, ``--publisher``, ``--published``);
  options always win over the text.
* **Questions**: the starter set of :mod:`circlebot.readings.starter_questions`.

The result is validated with :func:`circlebot.readings.load.parse_reading` and the checks of
``readings check`` before anything is written; an existing reading is never replaced without
``force``; the readings directory is created when it does not exist.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from circlebot.readings.check import reading_problems
from circlebot.readings.load import parse_reading
from circlebot.readings.model import MAX_FILE_BYTES, SLUG_PATTERN, ReadingFormatError
from circlebot.readings.starter_questions import starter_questions
from circlebot.readings.text import count_words

__all__ = [
    "Converted",
    "ImportFailure",
    "ImportOptions",
    "ImportReport",
    "convert",
    "import_file",
    "import_files",
    "read_source",
]

HEADING_MAX_WORDS = 12
HEADING_MAX_CHARS = 100
TITLE_MAX_CHARS = 300
SUMMARY_MAX_CHARS = 400

_DATE_FORMATS = (
    "%B %d, %Y",
    "%B %d %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%b %d %Y",
    "%d %b %Y",
    "%Y-%m-%d",
    "%A, %B %d, %Y",
    "%A %d %B %Y",
)
_ORDINAL_RE = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b")
_BYLINE_RE = re.compile(r"^\s*(?:by|written by|author\s*:)\s+(\S.{0,100})$", re.IGNORECASE)
_LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s)")
_MD_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SENTENCE_RE = re.compile(r"(?<=[.!?])[”’\"]?\s+")


class ImportFailure(Exception):
    """A file could not be imported; the message says why and what to do."""


@dataclass(frozen=True)
class ImportOptions:
    """Metadata the text does not give, and how to treat the text (see the module docstring)."""

    author: str | None = None
    publisher: str | None = None
    published: datetime.date | None = None
    summary: str | None = None
    source: str | None = None
    organisation: str | None = None
    language: str = "en"
    tags: tuple[str, ...] = ()
    slug: str | None = None
    drop_lines: tuple[str, ...] = ()
    cut_after_date: bool = False
    force: bool = False


@dataclass(frozen=True)
class Converted:
    """A converted article: its slug and the text of its collection file."""

    slug: str
    text: str
    headings: tuple[str, ...]


@dataclass
class ImportReport:
    """What :func:`import_files` did: (source, written file) pairs and (source, reason) failures."""

    imported: list[tuple[pathlib.Path, pathlib.Path]] = field(default_factory=list)
    failed: list[tuple[pathlib.Path, str]] = field(default_factory=list)


# ------------------------------------------------------------------------------ conversion


def slug_from_name(name: str) -> str:
    """A slug from a file name: lowercase ASCII letters and digits joined by hyphens, at most 80 characters."""
    stem = pathlib.PurePath(name.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:80].rstrip("-")


def _parse_date(line: str) -> datetime.date | None:
    text = _ORDINAL_RE.sub(r"\1", " ".join(line.strip().split()))
    if not 8 <= len(text) <= 40:
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _blocks(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line.strip():
            current.append(line.rstrip())
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _is_heading(block: list[str], has_next: bool) -> bool:
    if len(block) != 1 or not has_next:
        return False
    line = block[0].strip()
    return (
        len(line) <= HEADING_MAX_CHARS
        and len(line.split()) <= HEADING_MAX_WORDS
        and re.search(r"[^\W\d_]", line) is not None
        and not line.endswith((".", ",", ";", ":", "…"))
        and not _LIST_ITEM_RE.match(line)
    )


def _escape_hash(line: str) -> str:
    """A line of text that starts with ``#``, escaped so that it stays text."""
    return re.sub(r"^(\s*)#", r"\1\\#", line)


def _toml(value: str) -> str:
    return json.dumps(_CONTROL_RE.sub("", value), ensure_ascii=False)


def convert(name: str, text: str, options: ImportOptions) -> Converted:
    """Convert one article's text (from a file called *name*) into a collection file; pure.

    Raises :class:`ImportFailure` when the text cannot make a valid reading.
    """
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise ImportFailure("binary file (contains NUL bytes): import plain text or Markdown saved as UTF-8")
    if not text.strip():
        raise ImportFailure("empty file: nothing to import")
    first = text.lstrip().split("\n", 1)[0].strip()
    if first in ("+++", "---"):
        raise ImportFailure(
            "the file already has front matter: copy it into the readings directory and run "
            "`circlebot readings check` instead"
        )
    dropped = {" ".join(d.split()).casefold() for d in options.drop_lines}
    lines = [ln for ln in text.split("\n") if " ".join(ln.split()).casefold() not in dropped]
    blocks = _blocks(lines)
    if not blocks:
        raise ImportFailure("every line was dropped: nothing is left to import")

    title_line = blocks[0][0].strip()
    title = _CONTROL_RE.sub("", re.sub(r"^#+\s*", "", title_line)).strip()
    if len(title) > TITLE_MAX_CHARS or not title:
        raise ImportFailure(
            f"the first line is not a title ({len(title_line)} characters): put the title alone on the first line"
        )
    rest = blocks[0][1:]
    blocks = ([rest] if rest else []) + blocks[1:]

    published = options.published
    author = options.author
    date_found: datetime.date | None = None
    kept: list[list[str]] = []
    for number, block in enumerate(blocks):
        if len(block) == 1 and date_found is None and (found := _parse_date(block[0])) is not None:
            date_found = found
            if options.cut_after_date:
                break
            continue
        byline = _BYLINE_RE.match(block[0]) if number < 3 and len(block) == 1 and author is None else None
        if byline and (named := _CONTROL_RE.sub("", byline.group(1)).strip()):
            author = named
            continue
        kept.append(block)
    published = published or date_found

    markdown = name.lower().endswith((".md", ".markdown"))
    # Each block as (heading, text): a heading's title, and the text it is should it not be one; or (None, text).
    items: list[tuple[str | None, str]] = []
    for number, block in enumerate(kept):
        md = _MD_HEADING_RE.match(block[0]) if markdown and len(block) == 1 else None
        if md and md.group(2).strip():
            if len(md.group(1)) > 2:  # ### and deeper stay inside the current section
                items.append((None, block[0].strip()))
            else:
                items.append((md.group(2).strip(), _escape_hash(md.group(2).strip())))
        elif markdown:
            items.append((None, "\n".join(block)))
        else:
            paragraph = "\n".join(_escape_hash(line) for line in block)
            items.append((block[0].strip() if _is_heading(block, number + 1 < len(kept)) else None, paragraph))
    # A heading with no text after it (before the next heading) is not a section: it stays text.
    words_after = 0
    for number in range(len(items) - 1, -1, -1):
        heading, paragraph = items[number]
        if heading is None:
            words_after += count_words(paragraph)
        elif words_after:
            words_after = 0
        else:
            items[number] = (None, paragraph)

    body: list[str] = []
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for heading, paragraph in items:
        if heading is not None:
            body.append(f"## {heading}")
            sections.append((heading, []))
        else:
            body.append(paragraph)
            sections[-1][1].append(paragraph)
    if not count_words("\n\n".join(body)):
        raise ImportFailure("there is no text after the title (only the title, a date or a byline): nothing to import")

    missing = [
        flag
        for flag, value in (
            ("--author", author),
            ("--publisher", options.publisher),
            ("--published", published),
        )
        if not value
    ]
    if missing:
        raise ImportFailure(
            f"the text does not give {', '.join(m.lstrip('-') for m in missing)}: give {' and '.join(missing)} "
            "(a date line like 'October 20, 2003' or a line 'By Name' is taken from the text)"
        )
    assert author is not None and options.publisher is not None and published is not None

    paragraphs = [p for title_, ps in sections for p in ps if not p.startswith("#")]
    summary = options.summary or _summary(paragraphs)
    pairs = [(t, "\n\n".join(ps)) for t, ps in sections if t is not None or ps]
    questions = [str(q) for q in starter_questions(pairs)] or [
        f"What is the main argument of “{title}”, and do you agree with it?"
    ]
    front = [
        f"title = {_toml(title)}",
        f"author = {_toml(author)}",
        f"publisher = {_toml(options.publisher)}",
        f"published = {published.isoformat()}",
    ]
    front += [
        f"{key} = {_toml(value)}"
        for key, value in (("source", options.source), ("organisation", options.organisation))
        if value
    ]
    front.append(f"language = {_toml(options.language)}")
    if options.tags:
        front.append(f"tags = [{', '.join(_toml(t) for t in options.tags)}]")
    front.append(f"summary = {_toml(summary)}")
    front.append("questions = [")
    front += [f"    {_toml(q)}," for q in questions]
    front.append("]")
    document = "+++\n" + "\n".join(front) + "\n+++\n\n" + "\n\n".join(body) + "\n"

    slug = (
        options.slug if options.slug is not None else (slug_from_name(name) or slug_from_name(title + ".x"))
    )
    if not SLUG_PATTERN.fullmatch(slug):
        raise ImportFailure(
            f"{slug[:90]!r} is not a valid slug: use 1-80 lowercase letters, digits and hyphens "
            "(give one with --slug)"
        )
    try:
        problems = [e.message for e in reading_problems(parse_reading(pathlib.Path(f"{slug}.md"), document))]
    except ReadingFormatError as exc:
        problems = [e.message for e in exc.errors]
    if problems:
        raise ImportFailure(f"the converted reading does not pass the check: {'; '.join(problems)}")
    return Converted(slug, document, tuple(t for t, _ in sections if t is not None))


def _summary(paragraphs: Sequence[str]) -> str:
    for paragraph in paragraphs:
        text = " ".join(paragraph.split()).lstrip("\\")
        if not re.search(r"\w", text):
            continue
        summary = ""
        for sentence in _SENTENCE_RE.split(text):
            if summary and len(summary) + len(sentence) + 1 > SUMMARY_MAX_CHARS:
                break
            summary = f"{summary} {sentence}".strip()
        if len(summary) > SUMMARY_MAX_CHARS:
            summary = summary[: SUMMARY_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"
        return summary
    return "(no summary)"


# ------------------------------------------------------------------------------ files


def read_source(path: pathlib.Path) -> str:
    """Read an article to import as UTF-8; refuse what is not a regular, small, text file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ImportFailure(f"cannot open the file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImportFailure("not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ImportFailure(
                f"file too large ({info.st_size:,} bytes, limit {MAX_FILE_BYTES:,}): import one article per file"
            )
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            data = handle.read(MAX_FILE_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ImportFailure(f"file too large (over {MAX_FILE_BYTES:,} bytes): import one article per file")
    if b"\x00" in data:
        raise ImportFailure("binary file (contains NUL bytes): import plain text or Markdown saved as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFailure(f"not valid UTF-8 (line {line}): re-save the file as UTF-8") from None


def _write(directory: pathlib.Path, converted: Converted, force: bool) -> pathlib.Path:
    target = directory / f"{converted.slug}.md"
    if not SLUG_PATTERN.fullmatch(converted.slug):  # pragma: no cover - convert() checked it already
        raise ImportFailure(f"refused: {converted.slug!r} is not a valid slug")
    if os.path.lexists(target):
        if not force:
            raise ImportFailure(f"{target} exists already: give --force to replace it")
        if target.is_dir() and not target.is_symlink():
            raise ImportFailure(f"{target} is a directory: remove or rename it")
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, replaced atomically
        "w", encoding="utf-8", dir=directory, prefix=".import-", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(converted.text)
        os.replace(handle.name, target)  # replaces a symlink itself, never the file it points to
    except BaseException:
        pathlib.Path(handle.name).unlink(missing_ok=True)
        raise
    return target


def _make_directory(directory: pathlib.Path) -> None:
    """Create the readings directory (and its parents) if it does not exist yet."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImportFailure(f"{directory} is a file, not a directory: give --dir a directory") from None
    except OSError as exc:
        raise ImportFailure(
            f"cannot create the readings directory {directory}: {exc.strerror or exc}"
        ) from None


def import_file(path: pathlib.Path, directory: pathlib.Path, options: ImportOptions) -> pathlib.Path:
    """Convert and write one article; return the written file. Raises :class:`ImportFailure`."""
    converted = convert(path.name, read_source(path), options)
    _make_directory(directory)
    try:
        return _write(directory, converted, options.force)
    except OSError as exc:
        raise ImportFailure(f"cannot write into {directory}: {exc.strerror or exc}") from None


def import_files(
    paths: Sequence[pathlib.Path],
    directory: pathlib.Path,
    options: ImportOptions,
    progress: Callable[[int, int, pathlib.Path], None] | None = None,
) -> ImportReport:
    """Import every file; one file's failure does not stop the others. Slugs must differ within a batch."""
    report = ImportReport()
    if options.slug is not None and len(paths) > 1:
        report.failed += [
            (p, "--slug names one file only; leave it out when importing several") for p in paths
        ]
        return report
    written: dict[str, pathlib.Path] = {}
    for number, path in enumerate(paths, start=1):
        if progress is not None:
            progress(number, len(paths), path)
        try:
            converted = convert(path.name, read_source(path), options)
            if converted.slug in written:
                raise ImportFailure(
                    f"gives the slug {converted.slug!r} like {written[converted.slug]} in this batch: "
                    "rename one of them"
                )
            _make_directory(directory)
            try:
                target = _write(directory, converted, options.force)
            except OSError as exc:
                raise ImportFailure(f"cannot write into {directory}: {exc.strerror or exc}") from None
        except ImportFailure as exc:
            report.failed.append((path, str(exc)))
            continue
        written[converted.slug] = path
        report.imported.append((path, target))
    return report

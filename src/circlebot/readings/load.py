"""Reading files: parse one file's text into a Reading, and load a directory of them safely."""

from __future__ import annotations

import os
import pathlib
import re
import stat

from circlebot.readings.body import parse_body
from circlebot.readings.cache import ReadingCache, file_key
from circlebot.readings.frontmatter import (
    KeyLines,
    attach_section_questions,
    check_fields,
    parse_toml,
    split_front_matter,
)
from circlebot.readings.model import (
    MAX_FILE_BYTES,
    SLUG_PATTERN,
    Collection,
    Problems,
    Reading,
    ReadingError,
    ReadingFormatError,
)


def parse_reading(path: pathlib.Path, text: str) -> Reading:
    """Parse and validate the text of the reading file *path*.

    The slug is ``path.stem``; *path* is only used for the slug and in error
    messages (the file is not read).  Raises :class:`ReadingFormatError` with
    all the problems found.
    """
    problems = Problems(path)
    slug = path.stem
    if not SLUG_PATTERN.fullmatch(slug):
        problems.add(
            0,
            f"file name {path.name!r} is not a valid slug: use 1-80 lowercase letters, digits and "
            f"hyphens, starting with a letter or digit; rename it e.g. to "
            f"'{_suggest_slug(slug)}{path.suffix}'",
        )
    text = _normalised(text)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        problems.add(line, "binary file (contains NUL bytes): a reading must be a UTF-8 Markdown text file")
        raise problems.fail()
    if not text or text.isspace():
        problems.add(1, "empty file: a reading starts with a '+++' line, TOML metadata, '+++', then the text")
        raise problems.fail()

    front = split_front_matter(text, problems)
    if front is None:
        raise problems.fail()
    meta = parse_toml(front, problems)
    key_lines = KeyLines(front.lines)
    fields = check_fields(meta, key_lines, problems) if meta is not None else None
    intro, sections, words = parse_body(front.body, front.closing_line + 1, problems)
    if meta is not None and "sections" in meta:
        sections = attach_section_questions(meta["sections"], key_lines, sections, problems)

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


def _normalised(text: str) -> str:
    """A file's text as it is parsed: without a byte-order mark, every line ending a "\\n"."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _suggest_slug(stem: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:80].rstrip("-")
    return slug or "my-article"


def load_collection(directory: pathlib.Path, *, cache: pathlib.Path | None = None) -> Collection:
    """Load every ``*.md`` reading of *directory* (not recursive).

    Never raises for bad files: their problems end up in
    :attr:`Collection.errors` and the other files still load.  A missing
    directory is reported as a single error.  ``README.md`` and hidden files
    are skipped; symlinks pointing outside *directory* are refused.

    With *cache* (a file, see :mod:`circlebot.readings.cache`), files that have
    not changed since they were last parsed are taken from it, and it is
    updated; the result is the same with or without it.
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

    store = ReadingCache(cache) if cache is not None else None
    readings: dict[str, Reading] = {}
    errors: list[ReadingError] = []
    for name, is_symlink in entries:
        if not name.endswith(".md") or name.startswith(".") or name.casefold() == "readme.md":
            continue
        entry = directory / name
        try:
            data, info = _read_file(entry, root, is_symlink=is_symlink)
            text = _decode(entry, data)
            if store is None:
                reading = parse_reading(entry, text)
            else:
                key, normalised = file_key(info, data), _normalised(text)
                cached = store.get(name, key, entry, normalised)
                if cached is None:
                    reading = parse_reading(entry, text)
                    store.put(name, key, reading, normalised)
                else:
                    reading = cached
        except ReadingFormatError as exc:
            errors.extend(exc.errors)
        else:
            readings[reading.slug] = reading
    if store is not None:
        store.save()
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


def _read_file(
    path: pathlib.Path, root: pathlib.Path, *, is_symlink: bool | None = None
) -> tuple[bytes, os.stat_result]:
    """Read a reading file safely: its bytes and what fstat said, or ReadingFormatError on any problem.

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
    return data, info


def _decode(path: pathlib.Path, data: bytes) -> str:
    """The text of a reading file: UTF-8 without NUL bytes, else ReadingFormatError saying where."""

    def fail(line: int, message: str) -> ReadingFormatError:
        return ReadingFormatError((ReadingError(path, line, message),))

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


"""The load cache: readings already parsed, keyed by each file's name, size, mtime and content hash.

One cache file per collection directory, in the user's cache directory (``$XDG_CACHE_HOME/circlebot``,
else ``~/.cache/circlebot``; :func:`default_cache_path`), never in the collection itself, which is often
kept in git and shared.  The cache only saves work, it never decides anything:

* a file is taken from the cache only when its size, its mtime *and* the hash of the bytes just read are
  those it had when it was parsed, so an edit is always seen (even one keeping the size and the mtime);
* files with problems are never cached: their errors are reported afresh on every load;
* a missing, unreadable, truncated or corrupt cache file (its own checksum), or one written by another
  version of the loader (a fingerprint of the parsing code is part of its header), is ignored and
  replaced; a cache that cannot be written is left alone.

Deleting the cache file is always safe.
"""

from __future__ import annotations

import datetime
import hashlib
import marshal
import os
import pathlib
import re
import tempfile
from functools import cache
from typing import Any

import tomli

from circlebot.readings.model import Reading, Section

__all__ = ["ReadingCache", "default_cache_path"]

_MAGIC = b"circlebot readings cache 1\n"
_PARSING_MODULES = ("model.py", "text.py", "frontmatter.py", "body.py", "load.py", "cache.py")

_Key = tuple[int, int, bytes]
"""(size, mtime in nanoseconds, SHA-256 of the content, cut to 16 bytes)."""


def default_cache_path(directory: pathlib.Path) -> pathlib.Path | None:
    """Where the cache of the collection in *directory* lives (None when the user has no cache directory)."""
    try:
        base_dir = os.environ.get("XDG_CACHE_HOME", "")
        base = pathlib.Path(base_dir) if os.path.isabs(base_dir) else pathlib.Path.home() / ".cache"
        resolved = directory.resolve()
    except (OSError, RuntimeError, KeyError):  # no home directory, or the path cannot be resolved
        return None
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", resolved.name).strip("-")[:40] or "readings"
    return base / "circlebot" / f"readings-{name}-{digest}.cache"


@cache
def _fingerprint() -> bytes:
    """A digest of the code that turns a file into a Reading: another loader version gets another cache."""
    digest = hashlib.blake2b(tomli.__version__.encode(), digest_size=16)
    here = pathlib.Path(__file__).parent
    for name in _PARSING_MODULES:
        try:
            digest.update((here / name).read_bytes())
        except OSError:  # sources not on disk (a zip import): fall back on nothing that could be stale
            digest.update(os.urandom(16))
    return digest.digest()


def file_key(info: os.stat_result, data: bytes) -> _Key:
    """The cache key of a file: its size and mtime as just read, and a hash of its content."""
    return info.st_size, info.st_mtime_ns, hashlib.sha256(data).digest()[:16]


class ReadingCache:
    """The parsed readings of one collection directory, read from and written back to one cache file.

    :meth:`get` takes a reading out if its file has not changed; :meth:`put` records one just parsed;
    :meth:`save` writes what this load used (entries of deleted or broken files drop out).  The texts
    of a reading (introduction, sections) are kept as spans of the file's text, which the loader reads
    anyway to hash it, so the cache holds little more than the metadata.
    """

    def __init__(self, path: pathlib.Path) -> None:
        """Read the cache file at *path*; anything wrong with it gives an empty cache."""
        self.path = path
        self._old = self._read()
        self._new: dict[str, tuple[_Key, tuple[Any, ...]]] = {}
        self._changed = False

    def _read(self) -> dict[str, tuple[_Key, tuple[Any, ...]]]:
        try:
            data = self.path.read_bytes()
        except OSError:
            return {}
        header = _MAGIC + _fingerprint()
        checksum_end = len(header) + 32
        if not data.startswith(header) or len(data) < checksum_end:
            return {}
        payload = memoryview(data)[checksum_end:]
        if hashlib.blake2b(payload, digest_size=32).digest() != data[len(header) : checksum_end]:
            return {}
        try:
            entries = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):  # pragma: no cover - the checksum matched
            return {}
        return entries if isinstance(entries, dict) else {}

    def get(self, name: str, key: _Key, path: pathlib.Path, text: str) -> Reading | None:
        """The reading of file *name* (at *path*, its newline-normalised *text*) if cached with *key*, else None."""
        entry = self._old.get(name)
        if entry is None or entry[0] != key:
            return None
        try:
            reading = _thaw(entry[1], path, text)
        except (TypeError, ValueError, IndexError, OverflowError):  # pragma: no cover - a forged entry
            return None
        self._new[name] = entry
        return reading

    def put(self, name: str, key: _Key, reading: Reading, text: str) -> None:
        """Record a reading just parsed from file *name*, whose key is *key* and normalised text *text*."""
        self._new[name] = (key, _freeze(reading, text))
        self._changed = True

    def save(self) -> None:
        """Write the cache file if this load changed it (atomically; a failure only loses the cache)."""
        if not self._changed and self._new.keys() == self._old.keys():
            return
        payload = marshal.dumps(self._new)
        data = _MAGIC + _fingerprint() + hashlib.blake2b(payload, digest_size=32).digest() + payload
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            return


_Text = tuple[int, int] | str
"""A text of a reading: its span in the file's text (or, should it not be found there, itself)."""


def _freeze(reading: Reading, text: str) -> tuple[Any, ...]:
    """A reading as plain values marshal can write; its path is not kept (it is known when read back)."""
    position = 0

    def span(part: str) -> _Text:
        nonlocal position
        start = text.find(part, position) if part else position
        if start < 0:  # pragma: no cover - every text of a reading is a slice of its file
            return part
        position = start + len(part)
        return start, position

    intro = span(reading.intro)
    sections = tuple((s.title, s.line, span(s.body), s.words, s.questions) for s in reading.sections)
    return (
        reading.slug,
        reading.title,
        reading.author,
        reading.publisher,
        reading.published.toordinal(),
        reading.source,
        reading.organisation,
        reading.language,
        reading.tags,
        reading.summary,
        reading.questions,
        intro,
        sections,
        reading.words,
    )


def _thaw(values: tuple[Any, ...], path: pathlib.Path, text: str) -> Reading:
    """The reading :func:`_freeze` gave *values* for, at *path*, whose file's text is *text*."""

    def part(stored: _Text) -> str:
        return stored if isinstance(stored, str) else text[stored[0] : stored[1]]

    slug, title, author, publisher, published, source, organisation, language = values[:8]
    tags, summary, questions, intro, sections, words = values[8:]
    return Reading(
        slug=slug,
        title=title,
        author=author,
        publisher=publisher,
        published=datetime.date.fromordinal(published),
        source=source,
        organisation=organisation,
        language=language,
        tags=tags,
        summary=summary,
        questions=questions,
        intro=part(intro),
        sections=tuple(
            Section(title, line, part(body), words, questions) for title, line, body, words, questions in sections
        ),
        words=words,
        path=path,
    )

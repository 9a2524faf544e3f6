"""Full-text search over the reading collection: an in-memory SQLite FTS5 index.

The index holds one row per reading (title, tags, author, full text) and ranks
hits with ``bm25`` weighting the title most, then tags, then author, then the
text.  :meth:`SearchIndex.search` answers with the best passage of each hit
(FTS5 ``snippet()``).

User input never reaches FTS5 as query syntax: every word is turned into a
quoted string (embedded ``"`` doubled) followed by ``*`` so that ``revolution``
also finds ``revolutionary``; words without a letter or digit are dropped.  All
words must match (FTS5's implicit AND).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MAX_WORDS", "SearchHit", "SearchIndex", "fts_query"]


class _Section(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...


class Document(Protocol):
    """What the index reads of a reading (a `circlebot.readings.model.Reading` is one)."""

    @property
    def slug(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def author(self) -> str: ...
    @property
    def intro(self) -> str: ...
    @property
    def sections(self) -> Sequence[_Section]: ...

MAX_WORDS = 12
"""Only the first words of a query are used (a bound on the query's cost)."""

_WEIGHTS = (0.0, 10.0, 5.0, 3.0, 1.0)  # slug (unindexed), title, tags, author, body
_WORD_CHARS = re.compile(r"\w")
_MARK_OPEN, _MARK_CLOSE = "\x02", "\x03"
_MARKUP = re.compile(r"\]\([^)]*\)|[#*_>`\[\]]")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching reading: its slug, title, rank (lower is better) and best passage.

    In ``passage`` the matched words are wrapped in ``**`` (Markdown bold).
    """

    slug: str
    title: str
    rank: float
    passage: str


def fts_query(words: str) -> str | None:
    """The FTS5 query for the user's *words*, or ``None`` if nothing searchable is left."""
    terms = [w for w in words.split() if _WORD_CHARS.search(w)][:MAX_WORDS]
    if not terms:
        return None
    return " ".join('"' + term.replace('"', '""') + '"*' for term in terms)


class SearchIndex:
    """An FTS5 index of a :class:`~circlebot.readings.model.Collection`, built in memory at construction.

    Thread-safe: queries are serialised by a lock, so the chat handlers may run
    them in a worker thread (``asyncio.to_thread``).
    """

    def __init__(self, collection: Iterable[Document]) -> None:
        """Index every reading of *collection* (iterated twice: a `Collection`, a list)."""
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE VIRTUAL TABLE docs USING fts5("
            "slug UNINDEXED, title, tags, author, body, tokenize = 'unicode61 remove_diacritics 2')"
        )
        with self._db:
            self._db.executemany(
                "INSERT INTO docs (slug, title, tags, author, body) VALUES (?, ?, ?, ?, ?)",
                (
                    (
                        r.slug,
                        r.title,
                        " ".join(r.tags),
                        r.author,
                        _body(r.intro, [(s.title, s.body) for s in r.sections]),
                    )
                    for r in collection
                ),
            )
        self._titles = {r.slug: r.title for r in collection}

    def search(self, words: str, limit: int = 10) -> list[SearchHit]:
        """The readings matching every word of *words*, best first, at most *limit*."""
        query = fts_query(words)
        if query is None or limit < 1:
            return []
        weights = ", ".join(str(w) for w in _WEIGHTS)
        sql = (
            f"SELECT slug, bm25(docs, {weights}) AS rank, "
            f"snippet(docs, 4, ?, ?, '…', 24), snippet(docs, -1, ?, ?, '…', 24) "
            "FROM docs WHERE docs MATCH ? ORDER BY rank, slug LIMIT ?"
        )
        marks = (_MARK_OPEN, _MARK_CLOSE)
        with self._lock:
            try:
                rows = self._db.execute(sql, (*marks, *marks, query, limit)).fetchall()
            except sqlite3.OperationalError:  # pragma: no cover - quoting makes this unreachable
                return []
        hits = []
        for slug, rank, body_passage, best_passage in rows:
            passage = body_passage if _MARK_OPEN in body_passage else best_passage
            hits.append(SearchHit(slug, self._titles[slug], float(rank), _clean(passage)))
        return hits

    def close(self) -> None:
        """Free the in-memory database."""
        with self._lock:
            self._db.close()


def _body(intro: str, sections: list[tuple[str, str]]) -> str:
    parts = [intro] + [f"{title}\n{body}" for title, body in sections]
    return "\n\n".join(part for part in parts if part)


def _clean(passage: str) -> str:
    """Plain one-line passage with the matches in ``**``; Markdown markup of the source removed."""
    text = " ".join(_MARKUP.sub("", passage).split())
    return text.replace(_MARK_OPEN, "**").replace(_MARK_CLOSE, "**")

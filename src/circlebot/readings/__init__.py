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

The package, one purpose a module: :mod:`~circlebot.readings.model` (the values),
:mod:`~circlebot.readings.text` (word counts, plain text), :mod:`~circlebot.readings.frontmatter`,
:mod:`~circlebot.readings.body`, :mod:`~circlebot.readings.load` (one file, a directory),
:mod:`~circlebot.readings.cache` (what was parsed, kept between loads),
:mod:`~circlebot.readings.check`, :mod:`~circlebot.readings.importer`,
:mod:`~circlebot.readings.search` and :mod:`~circlebot.readings.starter_questions`.
"""

from __future__ import annotations

from circlebot.readings.check import CheckReport, check_collection
from circlebot.readings.load import load_collection, parse_reading
from circlebot.readings.model import (
    MAX_FILE_BYTES,
    SLUG_PATTERN,
    WORDS_PER_MINUTE,
    Collection,
    Part,
    Reading,
    ReadingError,
    ReadingFormatError,
    Section,
)

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

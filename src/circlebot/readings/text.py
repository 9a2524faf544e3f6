"""Markdown as plain text: the one word counter (reading times) and the markup stripper (excerpts)."""

from __future__ import annotations

import re

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


def plain_text(markdown: str) -> str:
    """Strip Markdown markup roughly: links become their text, ``#*_>` `` are dropped."""
    for pattern, replacement in _MARKUP_SUBSTITUTIONS:
        markdown = pattern.sub(replacement, markdown)
    return markdown.translate(_MARKUP_CHARS)


def count_words(markdown: str) -> int:
    """Count the words of a Markdown text (tokens with at least one letter or digit).

    Same result as ``len(re.findall(r"[^\\s\\w]*\\w\\S*", plain_text(markdown)))``, without regular
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

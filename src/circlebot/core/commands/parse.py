"""A command line split into words: quotes group words, apostrophes stay letters, an unclosed quote is a
usage error."""

from __future__ import annotations

from dataclasses import dataclass

from circlebot.core.commands.errors import UnclosedQuote

MAX_INPUT = 2000
_QUOTES = {'"': '"', "“": "”„“", "„": "“”", "«": "»"}
_SINGLE_QUOTES = {"'": "'", "‘": "’‘"}  # group words only where they close: else an apostrophe is a letter


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    quoted: bool = False


def _single_quote_end(text: str, i: int) -> int:
    """Where the single quote opening at `i` closes: the first closing quote that ends a word; -1 if none
    does (then the quote is an apostrophe, a letter: 'Tis, 'n')."""
    closers = _SINGLE_QUOTES[text[i]]
    for k in range(i + 1, len(text)):
        if text[k] in closers and (k + 1 == len(text) or text[k + 1].isspace()):
            return k
    return -1


def split_words(text: str) -> list[Word]:
    """Split a command line into words. Double, curly and guillemet quotes group words (a backslash before the
    closing quote keeps it in the word); single quotes group words where they close at the end of a word, and
    are otherwise an apostrophe, a letter like any other (what's, 'Tis). Raises UnclosedQuote for a double
    quote that is never closed."""
    words: list[Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] in _SINGLE_QUOTES and (end := _single_quote_end(text, i)) > 0:
            words.append(Word(text[i + 1:end], quoted=True))
            i = end + 1
        elif text[i] in _QUOTES:
            closers = _QUOTES[text[i]]
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] not in closers:
                if text[j] == "\\" and j + 1 < n and text[j + 1] in closers:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise UnclosedQuote(f"a quote is not closed: {text[i:][:40]!r}. Close it with {closers[0]}.", i)
            words.append(Word("".join(buf), quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            words.append(Word(text[i:j]))
            i = j
    return words

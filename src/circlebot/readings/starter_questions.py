"""Starter discussion questions derived from a reading's own text, without any network service.

Used where a reading or a part has no authored questions, and by the importer
to fill the ``questions`` front-matter field.  Three sources, in this order:

1. **Section headings.**  A heading that is already a question ("What attitude
   towards the new government?") is asked as it is; other headings give
   "what does the section argue" questions (only to fill up the set).
2. **Quoted passages with a speaker.**  A quotation of 8 words or more in
   curly or straight double quotes, whose speaker is named in the same
   sentence before it ("Miners' leader Zuvieta added: “…”") or right after it
   ("“…”, said Solares").  The speaker is the last run of capitalised words
   before the speech verb; if there is none, the few words before the verb
   ("One of the miners' leaders").  Quotes without a speaker are skipped.
3. **Conclusions.**  The last sentence of the text holding a concluding cue
   ("the lesson", "the crucial task", "therefore"...), or else the
   first sentence of the last paragraph.

Every question ends with where it comes from (a section, or a quote in a
section).  The result depends only on the text: deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_QUESTIONS", "StarterQuestion", "starter_questions"]

MAX_QUESTIONS = 8
MAX_QUOTES = 3
QUOTE_WORDS = 30

_QUOTE_RE = re.compile(r"“([^“”]+)”|\"([^\"\n]+)\"")
_SPEECH_VERB_RE = re.compile(
    r"\b(?:said|says|added|adds|declared|declares|stated|states|explained|explains|insisted|insists|"
    r"stressed|stresses|argued|argues|admitted|admits|warned|warns|concluded|concludes|spoke|asked|"
    r"asks|told|replied|wrote|writes|summed up|pointed out|put it|answered|recalled|noted)\b"
)
_NAME_RUN_RE = re.compile(
    r"[A-Z][\w’'.-]*(?:\s+(?:(?:de|la|del|van|von|der|da|dos|du|di)\s+)*[A-Z][\w’'.-]*)*"
)
_AFTER_RE = re.compile(
    r"^[”\"]?\s*,?\s*(?:(?P<verb1>said|says|added|declared|explained|insisted|stressed|argued|admitted|warned|"
    r"concluded|summed up)\s+(?P<name1>[A-Z][\w’'.-]*(?:\s+[A-Z][\w’'.-]*){0,3})|"
    r"(?P<name2>[A-Z][\w’'.-]*(?:\s+[A-Z][\w’'.-]*){0,3})\s+(?:said|says|added|declared|explained|"
    r"insisted|stressed|argued|admitted|warned|concluded|summed up))"
)
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "in",
        "on",
        "at",
        "of",
        "and",
        "but",
        "so",
        "also",
        "this",
        "that",
        "these",
        "those",
        "one",
        "however",
        "then",
        "when",
        "while",
        "as",
        "if",
        "it",
        "he",
        "she",
        "they",
        "we",
        "our",
        "their",
        "his",
        "her",
        "its",
        "there",
        "here",
        "for",
        "from",
        "with",
        "after",
        "before",
        "by",
        "to",
        "yet",
        "even",
    ]
)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[”’\"]?\s+(?=[“\"‘(]?[A-Z0-9])")
_PRONOUNS = frozenset(
    ["i", "we", "you", "he", "she", "it", "they", "this", "that", "so", "also", "and", "but", "as", "then"]
)
_CUE_RE = re.compile(
    r"\b(?:the lesson|lessons|conclusion|conclude|the crucial task|therefore|the problem is|"
    r"we need|the only|it is necessary|in short|in conclusion)\b",
    re.IGNORECASE,
)
_MARKUP_RE = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)|[*_`>#]")
_WORD_RE = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class StarterQuestion:
    """A generated question and where it comes from (``source``, e.g. ``section “Mesa forms government”``)."""

    question: str
    source: str

    def __str__(self) -> str:
        """The question followed by its source in parentheses."""
        return f"{self.question} (from {self.source})"


def starter_questions(
    sections: Sequence[tuple[str | None, str]], limit: int = MAX_QUESTIONS
) -> tuple[StarterQuestion, ...]:
    """Starter questions for a text given as ``(heading, Markdown body)`` pairs in order.

    The heading is ``None`` for the introduction.  At most *limit* questions.
    """
    headed = [(title, _plain(body)) for title, body in sections]
    asked = [_heading_question(title) for title, _ in headed if title and title.rstrip().endswith("?")]
    quotes = _quote_questions(headed)
    conclusion = _conclusion_question(headed)
    others = [_heading_topic(title) for title, _ in headed if title and not title.rstrip().endswith("?")]
    found: list[StarterQuestion] = []
    for question in [*asked, *quotes, *([conclusion] if conclusion else []), *others]:
        if len(found) >= limit:
            break
        if question.question not in {q.question for q in found}:
            found.append(question)
    return tuple(found)


def _where(title: str | None) -> str:
    return f"section “{_unquoted(title)}”" if title else "the introduction"


def _unquoted(title: str) -> str:
    return title.strip().strip("“”\"'‘’ ")


def _heading_question(title: str) -> StarterQuestion:
    heading = _unquoted(title)
    return StarterQuestion(f"{heading} How does the article answer, and what is your answer?", _where(title))


def _heading_topic(title: str) -> StarterQuestion:
    heading = _unquoted(title)
    return StarterQuestion(
        f"“{heading}”: what does the article argue here, and what evidence does it give?", _where(title)
    )


def _plain(markdown: str) -> str:
    return _MARKUP_RE.sub(lambda m: m.group(1) or "", markdown)


def _shorten(text: str, words: int = QUOTE_WORDS) -> str:
    tokens = text.split()
    if len(tokens) <= words:
        return " ".join(tokens)
    return " ".join(tokens[:words]).rstrip(",;:") + "…"


def _quote_questions(headed: list[tuple[str | None, str]]) -> list[StarterQuestion]:
    found: list[StarterQuestion] = []
    speakers: set[str] = set()
    for title, text in headed:
        for paragraph in text.split("\n\n"):
            paragraph = " ".join(paragraph.split())
            previous_end = 0
            for match in _QUOTE_RE.finditer(paragraph):
                quote = (match.group(1) or match.group(2) or "").strip()
                before, previous_end = paragraph[previous_end : match.start()], match.end()
                if len(quote.split()) < 8:
                    continue
                speaker = _speaker(before, paragraph[match.end() :])
                if speaker is None or speaker.casefold() in speakers:
                    continue
                speakers.add(speaker.casefold())
                found.append(
                    StarterQuestion(
                        f"{speaker} says: “{_shorten(quote)}” What does this show, and does the article "
                        "draw the right conclusion from it?",
                        f"a quote from {speaker} in {_where(title)}",
                    )
                )
                if len(found) >= MAX_QUOTES:
                    return found
    return found


def _speaker(before: str, after: str) -> str | None:
    """Who is quoted: named in the sentence before the quote, or right after it."""
    ends = list(_SENTENCE_END_RE.finditer(before))
    segment = before[ends[-1].end() :] if ends else before
    verbs = list(_SPEECH_VERB_RE.finditer(segment))
    if verbs:
        head = segment[: verbs[-1].start()]
        words = head.strip(" ,:;–—-").split()
        if "we" in {w.casefold() for w in words}:
            return None  # the article quoting itself ("as we said")
        name = _last_name(head)
        if name:
            return name
        if 1 <= len(words) <= 8 and words[0].casefold() not in _PRONOUNS:
            return " ".join(words)
    match = _AFTER_RE.match(after[:80])
    if match:
        name = _last_name(match.group("name1") or match.group("name2") or "")
        if name:
            return name
    return None


def _last_name(text: str) -> str | None:
    """The last run of capitalised words that is not just sentence-opening function words."""
    for found in reversed(list(_NAME_RUN_RE.finditer(text))):
        run = found.group()
        words = run.split()
        if (
            found.start() == len(text) - len(text.lstrip())
            and len(words) == 1
            and text[found.end() :].strip()
        ):
            continue  # one capitalised word opening the sentence ("Far from ...") is not a name
        while words and words[0].casefold() in _STOPWORDS:
            words = words[1:]
        name = " ".join(words).strip(".,’'")
        if name and _WORD_RE.search(name):
            return name
    return None


def _conclusion_question(headed: list[tuple[str | None, str]]) -> StarterQuestion | None:
    for title, text in reversed(headed):
        paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
        if not paragraphs:
            continue
        for paragraph in reversed(paragraphs):
            for sentence in reversed(_own_sentences(paragraph)):
                if _CUE_RE.search(sentence):
                    return _conclusion(sentence, title)
        for paragraph in reversed(paragraphs):
            own = _own_sentences(paragraph)
            if own:
                return _conclusion(own[0], title)
    return None


def _own_sentences(paragraph: str) -> list[str]:
    """The sentences of *paragraph* that are the article's own words: none inside or with a quotation."""
    quoted = [m.span() for m in _QUOTE_RE.finditer(paragraph)]
    sentences: list[str] = []
    start = 0
    for end in [m.start() for m in _SENTENCE_END_RE.finditer(paragraph)] + [len(paragraph)]:
        stop = end + 1 if end < len(paragraph) else end
        sentence = paragraph[start:stop].strip()
        overlaps = any(a < stop and start < b for a, b in quoted)
        if sentence and not overlaps and not any(c in sentence for c in '“”"'):
            sentences.append(sentence)
        start = stop
    return sentences


def _conclusion(sentence: str, title: str | None) -> StarterQuestion:
    return StarterQuestion(
        f"The article concludes: “{_shorten(sentence, 40)}” Do you agree, and what would it mean in practice?",
        _where(title),
    )

"""The body of a reading file: its introduction and ``##`` sections, with word counts and file lines.

A line is a section heading when it starts with ``##`` after at most three spaces, followed by a space, a
tab or the end of the line (``###`` and deeper belong to the current section); closing hashes are dropped
from the title.  Lines inside fenced code blocks (```` ``` ```` or ``~~~``, closed by a fence of the same
character at least as long) are never headings.  Text before the first heading is the introduction.
"""

from __future__ import annotations

import re

from circlebot.readings.model import Problems, Section
from circlebot.readings.text import count_words

# The start of each line that opens or closes a fence, or is a "##" heading (the body is scanned with a
# newline put in front of it, so every line starts with one: one search over the text finds them all).
_LINE_START_RE = re.compile(r"\n {0,3}(?:(`{3,}|~{3,})|##(?=[ \t\n]|\Z)([^\n]*))")
_CLOSING_HASHES_RE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")


def parse_body(body: str, first_line: int, problems: Problems) -> tuple[str, tuple[Section, ...], int]:
    """Split *body* into introduction and sections; return ``(intro, sections, words)``.

    *body* is the text after the front matter (newlines normalised), starting on file line *first_line*.
    ``words`` counts the whole body, headings included.  Empty headings and a body without text are
    recorded in *problems*.
    """
    text = "\n" + body  # offsets in text are those of body plus one
    # headings: (title, file line, start of the heading line and end of it, as offsets in body)
    headings: list[tuple[str, int, int, int]] = []
    fence: str | None = None
    line_number, counted = first_line, 0
    for match in _LINE_START_RE.finditer(text):
        marker, title = match.group(1, 2)
        if fence is not None:
            if marker and marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if marker:
            fence = marker
            continue
        start = match.start()  # the newline before the line: its offset in body is where the line starts
        line_number += body.count("\n", counted, start)
        counted = start
        title = title.strip()
        if title.endswith("#"):
            title = _CLOSING_HASHES_RE.sub("", title).strip()
        if not title:
            problems.add(line_number, "empty '##' heading: give the section a title")
        headings.append((title, line_number, start, match.end() - 1))

    ends = [start for _, _, start, _ in headings[1:]] + [len(body)] if headings else []
    sections: list[Section] = []
    for (title, number, _, end), stop in zip(headings, ends, strict=True):
        section_text = body[end + 1 : stop].strip()
        sections.append(Section(title=title, line=number, body=section_text, words=count_words(section_text)))
    intro = body[: headings[0][2]] if headings else body
    words = count_words(body)
    if words == 0:
        problems.add(
            max(first_line - 1, 1), "the article has no text: add the Markdown body after the closing '+++'"
        )
    return intro.strip(), tuple(sections), words

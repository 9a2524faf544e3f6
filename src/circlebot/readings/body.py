"""The body of a reading file: its introduction and ``##`` sections, with word counts and file lines."""

from __future__ import annotations

import re

from circlebot.readings.model import Problems, Section
from circlebot.readings.text import count_words

_HEADING_RE = re.compile(r" {0,3}##(?=[ \t]|$)(.*)")
_CLOSING_HASHES_RE = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")


def _parse_body(body: str, first_line: int, problems: Problems) -> tuple[str, tuple[Section, ...], int]:
    """Split the body into introduction and sections; return (intro, sections, words).

    *body* is the text after the front matter (newlines normalised), starting on file line
    *first_line*.  Without fenced code blocks, only the lines holding ``##`` are looked at and the
    parts are sliced out of *body*; otherwise it goes line by line (see :func:`_parse_body_lines`).
    """
    if ("`" in body and "```" in body) or ("~" in body and "~~~" in body):  # one character is found faster
        return _parse_body_lines(body.split("\n"), first_line, problems)
    # headings: (title, file line, start and end offsets of the heading line in body)
    headings: list[tuple[str, int, int, int]] = []
    line_number, counted = first_line, 0
    hit = body.find("##")
    while hit >= 0:
        start = body.rfind("\n", 0, hit) + 1
        end = body.find("\n", hit)
        if end < 0:
            end = len(body)
        # a heading line has its first '##' after at most three spaces: look at no other '##' of the line
        heading = _HEADING_RE.match(body[start:end]) if hit - start <= 3 else None
        if heading:
            line_number += body.count("\n", counted, start)
            counted = start
            title = heading.group(1).strip()
            if title.endswith("#"):  # else there are no closing hashes to remove
                title = _CLOSING_HASHES_RE.sub("", title).strip()
            if not title:
                problems.add(line_number, "empty '##' heading: give the section a title")
            headings.append((title, line_number, start, end))
        hit = body.find("##", end)

    sections: tuple[Section, ...] = ()
    if not headings:
        intro, words = body, count_words(body)
    else:
        intro = body[: headings[0][2]]
        # Word counts go line by line (see count_words), so the body's count is the sum of those of
        # the introduction, the heading lines and the section texts: each of those is counted once.
        # Stripping spaces, tabs and newlines off the front of a section keeps its count (a link
        # reference definition may follow spaces or tabs); if other whitespace comes off, the whole
        # body is counted instead.
        words = count_words(intro) + count_words("\n".join(body[start:end] for _, _, start, end in headings))
        counts_add_up = True
        following = [start for _, _, start, _ in headings[1:]] + [len(body)]
        built: list[Section] = []
        for (title, number, _, end), stop in zip(headings, following, strict=True):
            text = body[end + 1 : stop].lstrip(" \t\n")
            if text[:1].isspace():
                counts_add_up = False
                text = text.lstrip()
            text = text.rstrip()
            section_words = count_words(text)
            words += section_words
            built.append(Section(title=title, line=number, body=text, words=section_words))
        sections = tuple(built)
        if not counts_add_up:
            words = count_words(body)
    if words == 0:
        problems.add(
            max(first_line - 1, 1), "the article has no text: add the Markdown body after the closing '+++'"
        )
    return intro.strip(), sections, words


def _parse_body_lines(
    lines: list[str], first_line: int, problems: Problems
) -> tuple[str, tuple[Section, ...], int]:
    """:func:`_parse_body` line by line, following fenced code blocks (whose headings do not count)."""
    intro_lines: list[str] = []
    headings: list[tuple[str, int]] = []
    bodies: list[list[str]] = []
    current = intro_lines
    fence: str | None = None
    for number, line in enumerate(lines, start=first_line):
        fence_match = _FENCE_RE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        else:
            heading = _HEADING_RE.match(line)
            if heading:
                title = _CLOSING_HASHES_RE.sub("", heading.group(1).strip()).strip()
                if not title:
                    problems.add(number, "empty '##' heading: give the section a title")
                headings.append((title, number))
                current = []
                bodies.append(current)
                continue
        current.append(line)

    intro = "\n".join(intro_lines).strip()
    sections = tuple(
        Section(title=title, line=number, body=body, words=count_words(body))
        for (title, number), body in (
            (h, "\n".join(b).strip()) for h, b in zip(headings, bodies, strict=True)
        )
    )
    words = count_words("\n".join(lines))
    if words == 0:
        problems.add(
            max(first_line - 1, 1), "the article has no text: add the Markdown body after the closing '+++'"
        )
    return intro, sections, words


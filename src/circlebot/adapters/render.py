"""Posts are light Markdown with structured parts; this turns them into what each platform shows, and splits
long ones.

A post's `Text` becomes Markdown first: `named_markdown` for platforms without time markup (times in the
circle's zone, named), `discord_markdown` for Discord (its `<t:…>` marks; the same marks typed by users are
escaped). Matrix then gets HTML from markdown-it-py (CommonMark, raw HTML disabled, so any HTML a user typed is
escaped, not rendered); Discord takes the Markdown as it is; the console gets plain text (`plain_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt

from circlebot.core.text import CommandRef, Text, discord_literal, discord_time, named_time


def named_markdown(text: Text | str, zone: ZoneInfo, prefix: str) -> str:
    """Markdown for platforms without per-reader times: times named in `zone`, commands as inline code."""
    return Text.of(text).render(time=lambda t: named_time(t, zone), command=lambda c: _code(prefix, c))


def discord_markdown(text: Text | str, command: Callable[[CommandRef], str] | None = None) -> str:
    """Markdown for Discord: its time marks for times; time (and mention) marks in user text escaped;
    commands as `command` writes them (the slash command with its options), as inline code."""
    def code(c: CommandRef) -> str:
        return f"`{(command(c) if command else '/' + c.words).replace('`', '')}`"

    return Text.of(text).render(time=discord_time, command=code, literal=discord_literal)


def _code(prefix: str, command: CommandRef) -> str:
    return f"`{prefix}{command.words.replace('`', '')}`"


_MD_STRIP = [
    (re.compile(r"\*\*(.+?)\*\*", re.S), r"\1"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", re.S), r"\1"),
    (re.compile(r"^#{1,6}\s+", re.M), ""),
    (re.compile(r"\[([^\]]+)\]\(([^)]+)\)"), r"\1 (\2)"),
]


_CODE = re.compile(r"`([^`\n]+)`")


def plain_text(markdown: str, *, keep_code: bool = False) -> str:
    """The light Markdown core posts use, as plain text (for a Matrix ``body``). With `keep_code` (the
    terminal) inline code keeps its backticks, so a command in a sentence stays recognisable as one."""
    out = markdown
    for pattern, repl in _MD_STRIP:
        out = pattern.sub(repl, out)
    return out if keep_code else _CODE.sub(r"\1", out)


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("strikethrough")


def to_html(markdown: str) -> str:
    """CommonMark to HTML; raw HTML in the text is escaped."""
    html: str = _md().render(markdown)
    return html.strip()


def split_text(text: str, limit: int) -> list[str]:
    """Split text into chunks of at most `limit` characters, at paragraph breaks, else line breaks, else
    spaces; a single word longer than the limit is cut. Joining the chunks with blank lines loses nothing but
    the whitespace at the cuts."""
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = window.rfind(sep)
            if cut > 0:
                break
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks

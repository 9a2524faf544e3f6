"""Posts are Markdown; this turns them into what each platform shows, and splits long ones.

Matrix gets HTML from markdown-it-py (CommonMark, raw HTML disabled, so any HTML a user typed is escaped, not
rendered); Discord takes the Markdown as it is; the console gets plain text (see adapters.base.plain_text).
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt


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

"""Rendering posts: Markdown to Matrix HTML with user text escaped; splitting long posts."""

from __future__ import annotations

import pytest

from circlebot.adapters.render import split_text, to_html


def test_markdown_becomes_html_and_user_html_is_escaped() -> None:
    html = to_html("**Poll #1: <script>alert(1)</script>** and `code`\n1. one\n2. two")
    assert "<strong>Poll #1: &lt;script&gt;alert(1)&lt;/script&gt;</strong>" in html
    assert "<code>code</code>" in html and "<ol>" in html
    assert "<script>" not in html


@pytest.mark.parametrize("limit", [10, 50, 200])
def test_split_keeps_every_word_and_respects_the_limit(limit: int) -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * (i * 7) for i in range(12)) + " " + "x" * 300
    chunks = split_text(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())


def test_split_prefers_paragraph_breaks() -> None:
    text = "first paragraph here\n\nsecond one\n\nthird"
    assert split_text(text, 35) == ["first paragraph here\n\nsecond one", "third"]
    assert split_text("short", 100) == ["short"]

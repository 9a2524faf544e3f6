"""Each circle's read-only page, through aiohttp's test client: what a reader sees (when the circle meets, its
meetings and readings, RSVP and attendance counts, closed polls, the attendance chart), what it keeps back
(member names, the reading's text, secret polls) unless the config allows it, and hostile text escaped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import SEED, circle_config, make_settings
from drivers import FakeClock
from web_helpers import WebBot, make_readings, start_web_bot

BODY_SENTENCE = "After overthrowing the hated Goni, the workers of Bolivia have drawn one main conclusion"
HOSTILE = '<script>alert("title")</script> & <b onmouseover=x>bold</b>'


class Outline(HTMLParser):
    """The elements of a page (tag, attributes), and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


async def page(bot: WebBot) -> tuple[str, Outline]:
    assert bot.app.web is not None
    resp = await bot.client.get(bot.path(bot.app.web.page_url(bot.slug)))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/html"
    assert resp.headers["X-Robots-Tag"].startswith("noindex")
    html = await resp.text()
    outline = Outline()
    outline.feed(html)
    return html, outline


async def make_bot(tmp_path: Path, clock: FakeClock, web: dict[str, Any] | None = None,
                   **circle: Any) -> WebBot:
    return await start_web_bot(make_settings(tmp_path, web={"port": 0, **(web or {})},
                                             circles=[circle_config(**circle)]), clock)


@pytest.fixture
async def webbot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[WebBot]:
    bot = await make_bot(tmp_path, clock)
    try:
        yield bot
    finally:
        await bot.close()


async def test_the_page_shows_when_the_circle_meets_its_meetings_and_readings(webbot: WebBot) -> None:
    await webbot.driver.say("alice", "rsvp yes")
    await webbot.driver.say("bob", "rsvp maybe")
    html, outline = await page(webbot)
    text = outline.visible
    assert outline.tags[0] == ("html", {"lang": "en"})
    assert ("meta", {"name": "robots", "content": "noindex, nofollow"}) in outline.tags
    assert ("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}) in outline.tags
    for landmark in ("header", "main", "footer", "h1"):
        assert outline.count(landmark) == 1, landmark
    assert "Test study circle" in text
    assert "Meets every Thursday at 19:00 (Europe/London), 1 h 30 min." in text
    assert "Thursday 26 November 2026, 19:00 GMT" in text
    assert "A revolutionary party was missing" in text and "by International Marxist Tendency" in text
    assert "about 19 min to read" in text
    assert "Lack of a revolutionary leadership" in text  # its sections
    assert "What were the two powers" in text  # a discussion question
    assert "RSVPs: 1 coming, 1 maybe, 0 not coming." in text
    assert "alice" not in html and "bob" not in html  # no member names unless the config allows them
    assert BODY_SENTENCE not in html  # nor the reading's text
    feed = webbot.app.web.feed_url(webbot.slug)  # type: ignore[union-attr]
    assert ("a", {"href": feed.replace("http://", "webcal://")}) in outline.tags  # type: ignore[union-attr]
    assert ("time", {"datetime": "2026-11-26T19:00:00Z", "data-utc": "2026-11-26T19:00:00Z"}) in outline.tags


async def test_names_and_the_reading_text_are_shown_only_where_the_config_allows(
        tmp_path: Path, clock: FakeClock) -> None:
    bot = await make_bot(tmp_path, clock, {"show_member_names": True, "publish_reading_text": True})
    try:
        await bot.driver.say("alice", "rsvp yes")
        _, outline = await page(bot)
        assert "Coming: alice." in outline.visible
        assert BODY_SENTENCE in outline.visible
    finally:
        await bot.close()


async def test_past_meetings_attendance_chart_and_closed_polls(webbot: WebBot) -> None:
    d = webbot.driver
    await d.say("olga", 'poll "Which day?" "Mon" "Wed"')
    await d.say("olga", 'poll "Secret one?" "A" "B" --secret')
    await d.say("olga", 'poll "Still open?" "X" "Y"')
    await d.say("alice", "vote 1 2")
    await d.say("bob", "vote 1 2")
    await d.say("olga", "poll close 1")
    await d.say("olga", "poll close 2")
    await d.say("olga", f"schedule {SEED} 2026-12-03")
    webbot.clock.set(datetime(2026, 11, 26, 19, 10, tzinfo=UTC))
    for name in ("alice", "bob", "carol"):
        await d.say(name, "here")
    webbot.clock.set(datetime(2026, 12, 3, 19, 10, tzinfo=UTC))
    await d.say("alice", "here")
    webbot.clock.set(datetime(2026, 12, 8, 12, tzinfo=UTC))
    html, outline = await page(webbot)
    text = outline.visible
    assert "Which day?" in text and "Wed (chosen)" in text
    assert "Secret one?" not in html and "Still open?" not in html
    assert "3 came." in text and "1 came." in text
    rects = [a for t, a in outline.tags if t == "rect"]
    assert len(rects) == 2
    assert outline.count("svg") == 1
    heights = [float(a["height"] or 0) for a in rects]
    assert heights[0] == pytest.approx(3 * heights[1])  # 3 came, then 1
    assert "Check-ins per meeting, oldest first: Thu 26 Nov 2026: 3, Thu 3 Dec 2026: 1." in text


async def test_a_hostile_reading_title_question_and_name_are_escaped(tmp_path: Path, clock: FakeClock) -> None:
    slugs = make_readings(tmp_path / "readings", [HOSTILE], questions=['Is <img src=x onerror=alert(1)> "ok"?'])
    settings = make_settings(tmp_path, readings=str(tmp_path / "readings"),
                             web={"port": 0, "show_member_names": True}, circles=[circle_config(syllabus=slugs)])
    bot = await start_web_bot(settings, clock)
    try:
        await bot.driver.say("olga", 'questions add </li><script>alert(1)</script>')
        await bot.driver.say("<i>mallory</i>", "rsvp yes")
        html, outline = await page(bot)
        assert outline.count("script") == 1  # only the page's own, which adds the reader's time
        assert outline.count("img") == 0 and outline.count("b") == 0 and outline.count("i") == 0
        assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; &amp; &lt;b onmouseover=x&gt;bold&lt;/b&gt;" in html
        text = outline.visible
        assert HOSTILE in text
        assert 'Is <img src=x onerror=alert(1)> "ok"?' in text
        assert '</li><script>alert(1)</script>' in text
        assert "Coming: <i>mallory</i>." in text
        # and the feed carries the same text as text
        cal = await bot.feed()
        assert HOSTILE in str(next(iter(cal.walk("VEVENT")))["summary"])
    finally:
        await bot.close()


async def test_the_page_is_rendered_once_and_again_after_a_change(webbot: WebBot) -> None:
    assert webbot.app.web is not None
    path = webbot.path(webbot.app.web.page_url(webbot.slug))
    first = await webbot.client.get(path)
    etag = first.headers["ETag"]
    again = await webbot.client.get(path)
    assert again.headers["ETag"] == etag  # served from what was rendered
    await webbot.driver.say("alice", "rsvp yes")
    after = await webbot.client.get(path)
    assert after.headers["ETag"] != etag
    assert "RSVPs: 1 coming" in await after.text()
    await webbot.driver.say("alice", "upcoming")  # a command that changes nothing: the rendering stays
    assert (await webbot.client.get(path)).headers["ETag"] == after.headers["ETag"]


async def test_while_a_page_renders_again_requests_get_the_last_rendering_without_waiting() -> None:
    import asyncio

    from circlebot.web.render import RenderCache

    generation = [0]
    cache = RenderCache(lambda: generation[0])
    release = asyncio.Event()

    async def slow() -> bytes:
        await release.wait()
        return b"new"

    async def fast() -> bytes:
        return b"old"

    assert (await cache.get("k", fast)).body == b"old"
    generation[0] += 1
    rendering = asyncio.create_task(cache.get("k", slow))
    await asyncio.sleep(0)
    assert (await cache.get("k", fast)).body == b"old"  # not rendered twice, not waited for
    release.set()
    assert (await rendering).body == b"new"
    assert (await cache.get("k", fast)).body == b"new"

"""Members' own calendar feeds (`calendar`, answered privately: their RSVP in each title, the alarm they chose, a
new link on demand) and the organisers' `links rotate`: a retired link answers 404."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from conftest import SEED, circle_config, make_settings
from drivers import FakeClock
from pg_harness import BOTH_DATABASES
from web_helpers import WebBot, events, start_web_bot

URL = re.compile(r"http://\S+/(?:m|c)/[A-Za-z0-9_-]{32}(?:/calendar\.ics)?")


@pytest.fixture
async def webbot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[WebBot]:
    bot = await start_web_bot(make_settings(tmp_path, web={"port": 0}, circles=[circle_config()]), clock)
    try:
        yield bot
    finally:
        await bot.close()


async def my_feed(bot: WebBot, user: str, *args: str) -> tuple[str, str]:
    answer = await bot.driver.say(user, " ".join(("calendar", *args)))
    assert answer.private, "the calendar command answers privately"
    found = URL.findall(answer.text)
    assert len(found) == 1 and "/m/" in found[0], answer.text
    return found[0], answer.text


async def fetch(bot: WebBot, url: str) -> tuple[int, bytes]:
    resp = await bot.client.get(bot.path(url))
    return resp.status, await resp.read()


async def test_a_members_feed_shows_their_rsvp_in_each_title_and_their_alarm(webbot: WebBot) -> None:
    d = webbot.driver
    await d.say("olga", f"schedule {SEED} 2026-12-03")
    await d.say("olga", f"schedule {SEED} 2026-12-10")
    url, text = await my_feed(webbot, "alice")
    assert "an alarm 1 h before each meeting" in text
    status, body = await fetch(webbot, url)
    assert status == 200
    got = events(Calendar.from_ical(body))
    assert [str(e["summary"]).split("]")[0] + "]" for e in got] == ["[no answer yet]"] * 3
    assert all(a.decoded("trigger") == timedelta(hours=-1) for e in got for a in e.walk("VALARM"))
    await d.say("alice", "rsvp yes 1")
    await d.say("alice", "rsvp no 2")
    await d.say("alice", "rsvp maybe 3")
    url2, text = await my_feed(webbot, "alice", "--alarm", "2h")
    assert url2 == url and "Changed to an alarm 2 h before each meeting" in text
    got = events(Calendar.from_ical((await fetch(webbot, url))[1]))
    assert [str(e["summary"]).split("]")[0] + "]" for e in got] == ["[going]", "[not going]", "[maybe]"]
    assert [[a.decoded("trigger") for a in e.walk("VALARM")] for e in got] == [
        [timedelta(hours=-2)], [], [timedelta(hours=-2)]]  # no alarm for a meeting she is not going to
    await my_feed(webbot, "alice", "--alarm", "off")
    got = events(Calendar.from_ical((await fetch(webbot, url))[1]))
    assert not any(e.walk("VALARM") for e in got)
    bob, _ = await my_feed(webbot, "bob")
    assert bob != url
    got = events(Calendar.from_ical((await fetch(webbot, bob))[1]))
    assert [str(e["summary"]).split("]")[0] + "]" for e in got] == ["[no answer yet]"] * 3  # his own answers


async def test_a_bad_alarm_is_explained(webbot: WebBot) -> None:
    answer = await webbot.driver.say("alice", "calendar --alarm soon")
    assert 'like "30m", "2h" or "1d", or "off"' in answer.text and answer.private
    assert "Usage: calendar [--alarm LEAD] [--rotate]" in answer.text
    answer = await webbot.driver.say("alice", "calendar --alarm 30d")
    assert "between 1 minute and 7 days" in answer.text


async def test_a_member_rotates_their_own_link_and_the_old_one_is_404(webbot: WebBot) -> None:
    old, _ = await my_feed(webbot, "alice", "--alarm", "45m")
    new, text = await my_feed(webbot, "alice", "--rotate")
    assert new != old and "Your old link no longer works" in text and "45 min" in text
    assert (await fetch(webbot, old))[0] == 404
    assert (await fetch(webbot, new))[0] == 200


async def test_organisers_rotate_the_circles_links_and_every_old_one_is_404(webbot: WebBot) -> None:
    d = webbot.driver
    assert webbot.app.web is not None
    shown = (await d.say("alice", "links")).text
    page, feed = URL.findall(shown)
    assert page == webbot.app.web.page_url(webbot.slug) and feed == webbot.app.web.feed_url(webbot.slug)
    mine, _ = await my_feed(webbot, "alice")
    refused = await d.say("alice", "links rotate")
    assert "for the organisers" in refused.text
    assert (await fetch(webbot, page))[0] == 200
    rotated = (await d.say("olga", "links rotate")).text
    new_page, new_feed = URL.findall(rotated)
    assert new_page != page and new_feed == new_page + "/calendar.ics"
    for gone in (page, feed, mine):
        assert (await fetch(webbot, gone))[0] == 404, gone
    assert (await fetch(webbot, new_page))[0] == 200
    assert (await fetch(webbot, new_feed))[0] == 200
    again, _ = await my_feed(webbot, "alice")
    assert again != mine and (await fetch(webbot, again))[0] == 200


async def test_without_a_web_server_the_commands_say_so(tmp_path: Path, clock: FakeClock) -> None:
    from circlebot.app import App
    from circlebot.readings import load_collection
    from circlebot.store import Database, Store
    from conftest import START
    from drivers import CoreDriver, RecordingAdapter

    settings = make_settings(tmp_path, circles=[circle_config()])
    db = await Database.open(settings.database)
    try:
        app = App(settings, Store(db), load_collection(settings.readings), FakeClock(START))
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
        app.add_adapter(adapter)
        d = CoreDriver(app, adapter, clock, "study")
        for line in ("calendar", "links"):
            assert "no web server" in (await d.say("alice", line)).text
    finally:
        await db.close()


@BOTH_DATABASES
async def test_links_feeds_pages_and_readiness_on_either_database(database: str, tmp_path: Path,
                                                                   clock: FakeClock) -> None:
    """The web's own SQL (links, a member's answers, the write probe) runs on SQLite and PostgreSQL alike, and
    an RSVP renews the renderings on both (SQLite counts its writes; PostgreSQL: every event dispatched)."""
    bot = await start_web_bot(make_settings(tmp_path, database=database, web={"port": 0},
                                            circles=[circle_config()]), clock)
    try:
        assert bot.app.web is not None
        assert (await bot.client.get("/readyz")).status == 200
        page = bot.app.web.page_url(bot.slug)
        assert page is not None
        before = await (await bot.client.get(bot.path(page))).text()
        assert "No RSVPs yet." in before
        await bot.driver.say("alice", "rsvp yes")
        assert "RSVPs: 1 coming" in await (await bot.client.get(bot.path(page))).text()
        mine, _ = await my_feed(bot, "alice", "--alarm", "30m")
        got = events(Calendar.from_ical((await fetch(bot, mine))[1]))
        assert str(got[0]["summary"]).startswith("[going]")
        assert [a.decoded("trigger") for a in got[0].walk("VALARM")] == [timedelta(minutes=-30)]
        await bot.driver.say("olga", "links rotate")
        assert (await fetch(bot, page))[0] == 404 and (await fetch(bot, mine))[0] == 404
    finally:
        await bot.close()

"""Each circle's live calendar feed, through aiohttp's test client, parsed back with icalendar and expanded with
recurring-ical-events: every meeting past and planned (the syllabus's coming meetings on a fresh config), times
across the 2026 daylight-saving changes, SEQUENCE and LAST-MODIFIED after a move, CANCELLED, and `circlebot
export ics` writing the same calendar."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from conftest import REPO, SEED, circle_config, make_settings
from drivers import FakeClock, number_after
from web_helpers import WebBot, events, local, make_readings, start_web_bot

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def syllabus_settings(tmp_path: Path, count: int, zone: str = "Europe/London", **web: object) -> object:
    slugs = make_readings(tmp_path / "readings", [f"Reading number {i}" for i in range(1, count + 1)])
    return make_settings(tmp_path, readings=str(tmp_path / "readings"), web={"port": 0, **web},
                         circles=[circle_config(syllabus=slugs, timezone=zone)])


@pytest.fixture
async def webbot(tmp_path: Path, clock: FakeClock) -> AsyncIterator[WebBot]:
    bot = await start_web_bot(make_settings(tmp_path, web={"port": 0}, circles=[circle_config(syllabus=[])]), clock)
    try:
        yield bot
    finally:
        await bot.close()


async def test_a_fresh_config_has_a_full_calendar_of_the_meetings_the_syllabus_will_plan(
        tmp_path: Path, clock: FakeClock) -> None:
    bot = await start_web_bot(syllabus_settings(tmp_path, 20, calendar_weeks=12), clock)  # type: ignore[arg-type]
    try:
        cal = await bot.feed()
        got = events(cal)
        # 12 weeks of Thursdays from Tuesday 24 November: the one the syllabus stored already, 11 more planned
        assert len(got) == 12
        # stored by the syllabus: it keeps the UID it would have had as planned (20261126T190000Z, 19:00 London)
        assert str(got[0]["uid"]) == f"planned-{bot.slug}-20261126T190000Z@circlebot"
        assert str(got[0]["status"]) == "CONFIRMED"
        assert all(str(e["uid"]).startswith(f"planned-{bot.slug}-") and str(e["status"]) == "TENTATIVE"
                   for e in got[1:])
        assert [str(e["summary"]) for e in got[:3]] == [f"Test study circle: Reading number {i}" for i in (1, 2, 3)]
        starts = [local(e) for e in got]
        assert all(s.astimezone(LONDON).time() == time(19, 0) and s.astimezone(LONDON).weekday() == 3
                   for s in starts)
        assert starts[0] == datetime(2026, 11, 26, 19, tzinfo=UTC)
        first = got[0]
        description = str(first["description"])
        assert "Reading: Reading number 1" in description
        assert "By International Marxist Tendency" in description
        assert "Reading time: about 19 min" in description
        assert "Sections: Lack of a revolutionary leadership;" in description
        page = bot.app.web.page_url(bot.slug)  # type: ignore[union-attr]
        assert f"Meeting: {page}#meeting-1" in description
        assert str(first["url"]) == f"{page}#meeting-1"
        assert str(cal["x-wr-timezone"]) == "Europe/London"
        assert [tz["tzid"] for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
    finally:
        await bot.close()


async def test_a_planned_meeting_keeps_its_uid_when_the_syllabus_stores_it_and_after_it_moves(
        tmp_path: Path, clock: FakeClock) -> None:
    # a member subscribed while the second Thursday was only planned; when the syllabus stores that meeting (the
    # first is over) and an organiser moves it, their calendar must update the same event, not drop it for a new one
    bot = await start_web_bot(syllabus_settings(tmp_path, 20, calendar_weeks=12), clock)  # type: ignore[arg-type]
    try:
        planned = events(await bot.feed())[1]
        assert str(planned["status"]) == "TENTATIVE"
        uid, start = str(planned["uid"]), local(planned)
        clock.advance(timedelta(days=3))  # Friday 27 November: the first meeting is over
        assert bot.app.timeline is not None
        await bot.app.timeline.rebuild()
        stored = [e for e in events(await bot.feed()) if local(e) == start]
        assert [(str(e["uid"]), str(e["status"])) for e in stored] == [(uid, "CONFIRMED")]
        [meeting] = [m for m in await bot.app.store.meetings(bot.slug, limit=10) if m.starts_at == start]
        await bot.driver.say("olga", f"move {meeting.id} 2026-12-04 18:30")
        after_move = events(await bot.feed())
        moved = {str(e["uid"]): e for e in after_move}[uid]
        assert int(moved["sequence"]) == 1
        assert local(moved).astimezone(LONDON) == datetime(2026, 12, 4, 18, 30, tzinfo=LONDON)
        # the Thursday it left is free again and the syllabus plans the next reading there: under a UID of its
        # own (two events with one UID would make calendars merge them), which it keeps once stored
        uids = [str(e["uid"]) for e in after_move]
        assert len(uids) == len(set(uids)), uids
        [again] = [e for e in after_move if local(e) == start]
        assert str(again["uid"]) != uid and str(again["summary"]).endswith("Reading number 3"), again
        await bot.app.timeline.rebuild()
        refilled = {str(e["uid"]): e for e in events(await bot.feed())}
        assert str(refilled[str(again["uid"])]["status"]) == "CONFIRMED"
    finally:
        await bot.close()


async def test_a_split_reading_names_the_part_to_read(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, web={"port": 0},
                             circles=[circle_config(split_long_readings=True, part_minutes=5)])
    bot = await start_web_bot(settings, clock)
    try:
        got = events(await bot.feed())
        assert [str(e["summary"]).rsplit("(", 1)[1] for e in got] == [f"part {i} of 4)" for i in (1, 2, 3, 4)]
        assert "Read: The COB meeting on Saturday 18 … What attitude towards the new government?" in str(
            got[1]["description"])
        assert "Reading time: about 5 min" in str(got[1]["description"])
    finally:
        await bot.close()


@pytest.mark.parametrize(("zone", "before", "change", "after"), [
    (LONDON, datetime(2026, 3, 1, tzinfo=UTC), date(2026, 3, 29), date(2026, 4, 2)),
    (LONDON, datetime(2026, 10, 1, tzinfo=UTC), date(2026, 10, 25), date(2026, 10, 29)),
    (NEW_YORK, datetime(2026, 2, 15, tzinfo=UTC), date(2026, 3, 8), date(2026, 3, 12)),
    (NEW_YORK, datetime(2026, 10, 10, tzinfo=UTC), date(2026, 11, 1), date(2026, 11, 5)),
])
async def test_meetings_stay_at_the_circles_local_time_across_the_2026_changes(
        tmp_path: Path, zone: ZoneInfo, before: datetime, change: date, after: date) -> None:
    """Expanded with recurring-ical-events for a window around each 2026 change: every Thursday 19:00 local,
    the UTC time an hour apart either side."""
    clock = FakeClock(before)
    bot = await start_web_bot(syllabus_settings(tmp_path, 12, zone.key), clock)  # type: ignore[arg-type]
    try:
        cal = await bot.feed()
        window = recurring_ical_events.of(cal).between(change - timedelta(days=10), change + timedelta(days=10))
        starts = sorted(local(e) for e in window)
        assert len(starts) == 3
        assert all(s.astimezone(zone).time() == time(19, 0) for s in starts)
        last_before = next(s for s in reversed(starts) if s.date() < change)
        first_after = next(s for s in starts if s.astimezone(zone).date() == after)
        offsets = {s.astimezone(zone).utcoffset() for s in (last_before, first_after)}
        assert len(offsets) == 2, "the UTC offset differs either side of the change"
        elapsed = first_after.astimezone(UTC) - last_before.astimezone(UTC)  # an hour more or less than a week
        assert abs(elapsed - timedelta(days=7)) == timedelta(hours=1)
    finally:
        await bot.close()


async def test_a_moved_meeting_gets_a_higher_sequence_and_a_new_last_modified(webbot: WebBot) -> None:
    d = webbot.driver
    mid = number_after("meeting", (await d.say("olga", f"schedule {SEED} 2026-12-10")).text)
    before = {str(e["uid"]): e for e in events(await webbot.feed())}[f"meeting-{mid}-study@circlebot"]
    assert int(before["sequence"]) == 0
    assert local(before, "last-modified") == webbot.clock.now()
    webbot.clock.advance(timedelta(hours=3))
    moved_at = webbot.clock.now()
    await d.say("olga", f"move {mid} 2026-12-11 18:30")
    after = {str(e["uid"]): e for e in events(await webbot.feed())}[f"meeting-{mid}-study@circlebot"]
    assert int(after["sequence"]) == 1
    assert local(after, "last-modified") == moved_at
    assert local(after).astimezone(LONDON) == datetime(2026, 12, 11, 18, 30, tzinfo=LONDON)
    webbot.clock.advance(timedelta(hours=1))
    await d.say("olga", f"move {mid} 2026-12-17")
    again = {str(e["uid"]): e for e in events(await webbot.feed())}[f"meeting-{mid}-study@circlebot"]
    assert int(again["sequence"]) == 2


async def test_a_cancelled_meeting_stays_in_the_feed_as_cancelled(webbot: WebBot) -> None:
    d = webbot.driver
    mid = number_after("meeting", (await d.say("olga", f"schedule {SEED} 2026-12-10")).text)
    await d.say("olga", "skip 2026-12-17")  # a skipped date is no meeting: not in the feed
    await d.say("olga", f"unschedule {mid}")
    got = events(await webbot.feed())
    assert [(str(e["uid"]), str(e["status"]), int(e["sequence"])) for e in got] == [
        (f"meeting-{mid}-study@circlebot", "CANCELLED", 1)]


async def test_a_feed_answers_304_to_its_etag_and_changes_when_a_meeting_does(webbot: WebBot) -> None:
    assert webbot.app.web is not None
    path = webbot.path(webbot.app.web.feed_url(webbot.slug))
    first = await webbot.client.get(path)
    etag = first.headers["ETag"]
    assert first.headers["X-Robots-Tag"].startswith("noindex")
    assert (await webbot.client.get(path, headers={"If-None-Match": etag})).status == 304
    await webbot.driver.say("olga", f"schedule {SEED} 2026-12-10")
    changed = await webbot.client.get(path, headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    assert len(events(Calendar.from_ical(await changed.read()))) == 1


async def test_an_unknown_token_is_404(webbot: WebBot) -> None:
    for path in ("/c/not-a-real-token-at-all-0000000/calendar.ics", "/c/x/calendar.ics", "/m/abc/calendar.ics"):
        resp = await webbot.client.get(path)
        assert resp.status == 404, path


def test_export_ics_writes_the_calendar_the_feed_serves(tmp_path: Path) -> None:
    """`circlebot export ics` against the database a bot served: the same events (UIDs, times, SEQUENCE,
    STATUS, summaries, descriptions with the page's links)."""
    import asyncio

    settings = make_settings(tmp_path, web={"port": 8999}, circles=[circle_config(syllabus=[])])
    config = tmp_path / "circlebot.toml"
    config.write_text(f'database = "{settings.database}"\nreadings = "{REPO / "readings"}"\n'
                      '[web]\nport = 8999\n'
                      '[[circles]]\nslug = "study"\nname = "Test study circle"\ntimezone = "Europe/London"\n'
                      'meets = {weekdays = ["thursday"], time = "19:00"}\n'
                      'organisers = {console = ["olga"]}\n', encoding="utf-8")

    async def serve() -> bytes:
        bot = await start_web_bot(settings, FakeClock(datetime.now(UTC)))
        try:
            soon = (datetime.now(UTC) + timedelta(days=20)).date()
            first = number_after("meeting", (await bot.driver.say("olga", f"schedule {SEED} {soon} 19:00")).text)
            await bot.driver.say("olga", f"schedule {SEED} next")
            await bot.driver.say("olga", f"move {first} {soon + timedelta(days=1)} 18:00")
            await bot.driver.say("olga", "unschedule 2")
            assert bot.app.web is not None
            resp = await bot.client.get(bot.path(bot.app.web.feed_url("study")))
            return await resp.read()
        finally:
            await bot.close()

    served = Calendar.from_ical(asyncio.run(serve()))
    out = subprocess.run([sys.executable, "-m", "circlebot", "export", "ics", "--config", str(config)],
                         capture_output=True, timeout=60, check=True)
    exported = Calendar.from_ical(out.stdout)

    def key(cal: Calendar) -> list[tuple[str, ...]]:
        return [(*(str(e[k]) for k in ("uid", "sequence", "status", "summary", "description", "url")),
                 str(e.decoded("dtstart")), str(e.decoded("last-modified"))) for e in events(cal)]

    assert key(exported) == key(served)
    assert sorted(str(e["status"]) for e in events(exported)) == ["CANCELLED", "CONFIRMED"]
    assert all(str(e["url"]).startswith("http://127.0.0.1:8999/c/") for e in events(exported))

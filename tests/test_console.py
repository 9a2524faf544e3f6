"""`circlebot run` as a user starts it: a subprocess in a terminal (pty), driven line by line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pexpect
import pytest

REPO = Path(__file__).resolve().parent.parent
SEED = "bolivia-2003-first-balance-sheet"


def config(tmp_path: Path) -> Path:
    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('database = "data/circlebot.sqlite3"', f'database = "{tmp_path / "bot.sqlite3"}"')
    text = text.replace('readings = "readings"', f'readings = "{REPO / "readings"}"')
    path = tmp_path / "circlebot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def spawn(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    environ = dict(os.environ, TZ="Asia/Kathmandu", PYTHONUNBUFFERED="1", **(env or {}))  # no host zone leaks in
    return pexpect.spawn(sys.executable, ["-m", "circlebot", "run", "--config", str(config(tmp_path)), *args],
                         env=environ, cwd=str(tmp_path), encoding="utf-8", codec_errors="replace", timeout=20,
                         dimensions=(50, 200))


@pytest.mark.timeout(60)
def test_walk_through_in_the_terminal(tmp_path: Path) -> None:
    bot = spawn(tmp_path)
    try:
        bot.expect("you are in Bolivia 2003 reading circle")
        # the syllabus planned the first meeting, and its reading went out at once (it is less than 7 days away)
        bot.expect(r"Reading for meeting #1, \w+ \d+ \w+ 20\d\d, 19:00 GMT \(Europe/London\)")
        bot.sendline(f"schedule {SEED}")
        bot.expect(r"Scheduled meeting #2: .*A revolutionary party was missing.* on \w+ \d+ \w+ 20\d\d, 19:00 GMT")
        bot.sendline("/as alice")
        bot.expect("You are now 'alice'")
        bot.sendline("rsvp yes")
        bot.expect("alice: yes for meeting #1")
        bot.sendline("schedule x")
        bot.expect("`schedule` is for the organisers")
        bot.sendline("/as organiser")
        bot.sendline('poll "Next reading?" "More Bolivia" "Something else"')
        bot.expect(r"1\. More Bolivia")
        bot.expect("Poll #1 is open on console")
        bot.sendline("/as bob")
        bot.sendline("vote 1 2")
        bot.expect("counted: Something else")
        bot.sendline('poll "oops')
        bot.expect("quote is not closed")
        bot.sendline("upcoming")
        bot.expect(r"RSVPs: 1 yes, 0 maybe, 0 no")
        bot.sendline("/quit")
        bot.expect(pexpect.EOF)
    finally:
        bot.close(force=True)
    assert bot.exitstatus == 0, bot.before


@pytest.mark.timeout(60)
def test_state_survives_a_restart(tmp_path: Path) -> None:
    bot = spawn(tmp_path)
    bot.expect("you are in")
    bot.sendline(f"schedule {SEED} 2027-01-07")
    bot.expect("Scheduled meeting #2")
    bot.sendeof()
    bot.expect(pexpect.EOF)
    bot.close()
    again = spawn(tmp_path)
    try:
        again.expect("you are in")
        again.sendline("upcoming")
        again.expect(r"#1 .*A revolutionary party was missing.*reading sent")
        again.expect(r"#2 Thu 7 Jan 2027, 19:00 GMT")
        again.sendline("/quit")
        again.expect(pexpect.EOF)
    finally:
        again.close(force=True)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("locale", ["en_US.UTF-8", "C.UTF-8", "C"])
def test_a_byte_that_is_not_utf8_is_replaced_and_answered(tmp_path: Path, locale: str) -> None:
    bot = spawn(tmp_path, env={"LANG": locale, "LC_ALL": locale})
    try:
        bot.expect("you are in")
        os.write(bot.child_fd, "questions add Café or ".encode("latin-1") + b"\xff\xfe?\r")
        bot.expect("Question added")
        bot.expect(r"\d+\. Caf\ufffd or \ufffd\ufffd\?")
        bot.sendline("circle")
        bot.expect("Lives on: console")  # the bot is still there
        bot.sendline("/quit")
        bot.expect(pexpect.EOF)
    finally:
        bot.close(force=True)
    assert bot.exitstatus == 0, bot.before


@pytest.mark.timeout(60)
def test_errors_go_to_a_log_file_and_the_chat_shows_only_the_apology(tmp_path: Path) -> None:
    import io
    import re
    import sqlite3

    log_file = tmp_path / "circlebot.log"  # beside the database
    bot = spawn(tmp_path)
    bot.logfile_read = seen = io.StringIO()
    try:
        bot.expect("you are in")
        assert f"log: {log_file}" in seen.getvalue(), seen.getvalue()  # said at start
        with sqlite3.connect(tmp_path / "bot.sqlite3") as db:  # the database breaks under the bot
            db.execute("DROP TABLE rsvps")
        bot.sendline("rsvp yes")
        bot.expect(r"something went wrong on my side \(error `([0-9a-f]{8})`\)")
        error_id = bot.match[1]
        bot.sendline("circle")
        bot.expect("Lives on: console")  # the bot carries on
        bot.sendline("/quit")
        bot.expect(pexpect.EOF)
    finally:
        bot.close(force=True)
    shown = seen.getvalue()
    assert "Traceback" not in shown and "ERROR" not in shown, shown
    logged = log_file.read_text(encoding="utf-8")
    assert re.search(rf"error {error_id} in command 'rsvp yes'.*\nTraceback", logged), logged


@pytest.mark.timeout(60)
def test_post_numbers_go_on_after_a_restart_and_commands_keep_their_backticks(tmp_path: Path) -> None:
    bot = spawn(tmp_path)
    try:
        bot.expect(r"\[bolivia-2003 #1\] 📖 Reading for meeting #1")
        bot.sendline('poll "First?" "A" "B"')
        bot.expect(r"\[bolivia-2003 #2\] 📊 Poll #1: First\?")
        bot.sendline(f"reading {SEED}")
        bot.expect("`questions` during a meeting on it")  # the command stays recognisable as one
        bot.sendline("/quit")
        bot.expect(pexpect.EOF)
    finally:
        bot.close(force=True)
    again = spawn(tmp_path)
    try:
        again.expect("you are in")
        again.sendline('poll "Second?" "A" "B"')
        again.expect(r"\[bolivia-2003 #(\d+)\] 📊 Poll #2: Second\?")
        assert int(again.match[1]) == 3, again.match[0]
        again.sendline("/quit")
        again.expect(pexpect.EOF)
    finally:
        again.close(force=True)


def test_a_bad_config_stops_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[circles]]\nslug = "x"\nname = "X"\nmeets = {weekdays = ["thu"], time = "25:00"}\nfoo = 1\n')
    child = pexpect.spawn(sys.executable, ["-m", "circlebot", "run", "--config", str(bad)], encoding="utf-8",
                          timeout=20)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert "circles[0].meets.time" in (child.before or "") and "foo: unknown key" in (child.before or "")


def test_the_console_script_is_installed() -> None:
    assert shutil.which("circlebot", path=str(Path(sys.executable).parent)) is not None


async def test_terminal_escapes_typed_by_a_user_never_reach_the_terminal() -> None:
    import io
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from circlebot.adapters.console import ConsoleAdapter
    from circlebot.core.domain import ChannelRef, PollSpec

    out = io.StringIO()
    console = ConsoleAdapter([("study", "Study", ZoneInfo("UTC"))], stdin=io.StringIO(""), stdout=out,
                             clock=lambda: datetime(2026, 11, 24, tzinfo=UTC))
    await console.start_poll(ChannelRef("console", "study"),
                             PollSpec(1, "Q\x1b[2J\x1b]0;pwned\x07?", ("A\x1b[31m", "B"), False, False, None))
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "Q�[2J�]0;pwned�?" in text and "1. A�[31m" in text


@pytest.mark.timeout(60)
def test_the_banner_links_the_circles_page_and_its_calendar_serves_the_meetings(tmp_path: Path) -> None:
    """`make run` with the example config: the web server takes a free port on 127.0.0.1, the banner shows
    the circle's page, its calendar has the meeting the syllabus planned, and `circlebot links` prints the
    same addresses."""
    import re
    import subprocess
    import urllib.request

    from icalendar import Calendar

    bot = spawn(tmp_path)
    try:
        bot.expect(r"The circle's page: (http://127\.0\.0\.1:\d+/c/[A-Za-z0-9_-]{32}) \(its calendar: (\S+)\)")
        page, feed = bot.match.group(1), bot.match.group(2)
        assert feed == page + "/calendar.ics"
        bot.expect("Reading for meeting #1")
        with urllib.request.urlopen(feed, timeout=10) as resp:  # loopback
            assert resp.headers["Content-Type"].startswith("text/calendar")
            cal = Calendar.from_ical(resp.read())
        summaries = [str(e["summary"]) for e in cal.walk("VEVENT")]
        assert summaries and "A revolutionary party was missing" in summaries[0]
        bot.sendline("/quit")
        bot.expect(pexpect.EOF)
    finally:
        bot.close(force=True)
    assert bot.exitstatus == 0, bot.before
    out = subprocess.run([sys.executable, "-m", "circlebot", "links", "--config", str(config(tmp_path))],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert re.search(rf"page: +{re.escape(page)}\n +calendar: +{re.escape(feed)}", out), out

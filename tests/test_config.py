"""Config validation: every error at once, with its key path; secrets only by environment variable name."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from circlebot.config import ConfigError, Lead, load

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "circlebot.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_example_config_is_valid() -> None:
    s = load(REPO / "config.example.toml")
    c = s.circles[0]
    assert c.slug == "bolivia-2003" and c.syllabus == ("bolivia-2003-first-balance-sheet",)
    assert s.database == REPO / "data" / "circlebot.sqlite3"  # relative to the file
    assert s.console_enabled


def test_every_error_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    p = write(tmp_path, """
timezone = "Mars/Olympus"
colour = "red"
[[circles]]
slug = "Bad Slug"
name = ""
token = "s3cret"
[circles.meets]
time = "7pm"
duration = "forever"
[circles.where]
discord_channels = [123]
telegram = true
[[circles]]
slug = "ok"
name = "OK"
meets = { cron = "0 25 * * *" }
[matrix]
homeserver = "https://m.example.org"
user_id = "@bot:example.org"
access_token = "syt_abc"
""")
    with pytest.raises(ConfigError) as info:
        load(p)
    problems = "\n".join(info.value.problems)
    for expected in [
        "timezone: unknown IANA time zone 'Mars/Olympus'",
        "colour: unknown key",
        "circles[0].slug: 'Bad Slug' is not a slug",
        "circles[0].name: String should have at least 1 character",
        "circles[0].token: secrets never go in the config file",
        "circles[0].meets.time: expected a local time like \"19:00\", got '7pm'",
        "circles[0].meets.duration: expected a duration",
        "circles[0].where.telegram: unknown key",
        "circles[1].meets.cron: hour: 25 is out of range 0-23",
        "matrix.access_token: secrets never go in the config file",
    ]:
        assert expected in problems, f"{expected!r} not in:\n{problems}"
    assert "s3cret" not in str(info.value) and "syt_abc" not in str(info.value)


def test_toml_syntax_errors_say_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"TOML syntax: .*line 2"):
        load(write(tmp_path, 'database = "x"\ncolour = = 1\n'))


def test_no_circles_and_duplicate_slugs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no circles"):
        load(write(tmp_path, 'database = "x.sqlite3"\n'))
    two = '[[circles]]\nslug = "a"\nname = "A"\nmeets = {weekdays = ["mon"], time = "18:00"}\n'
    with pytest.raises(ConfigError, match="two circles share the slug 'a'"):
        load(write(tmp_path, two + two))


def test_weekday_names_and_durations_are_forgiving(tmp_path: Path) -> None:
    s = load(write(tmp_path, '[[circles]]\nslug = "a"\nname = "A"\n'
                   'meets = {weekdays = ["Thu", "saturday"], time = "9:30", duration = "1h30m"}\n'
                   'timeline = {assignment = "10d", reminder = 120}\n'))
    m = s.circles[0].meets
    assert m.weekdays == ("thursday", "saturday") and m.time is not None and m.time.hour == 9
    assert m.duration.total_seconds() == 5400
    assert s.circles[0].timeline.reminder == Lead(0, timedelta(minutes=120))  # a number is minutes
    assert s.circles[0].timeline.assignment == Lead(10, timedelta(0))  # days are calendar days


def test_check_config_command_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "circlebot", "check-config", str(REPO / "config.example.toml")],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK: 1 circle, 1 reading" in ok.stdout, ok
    bad = write(tmp_path, '[[circles]]\nslug = "a"\nname = "A"\nmeets = {weekdays = ["funday"], time = "18:00"}\n'
                'syllabus = ["missing-reading"]\n')
    res = subprocess.run([sys.executable, "-m", "circlebot", "check-config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "circles[0].meets.weekdays[0]: expected a weekday" in res.stderr, res.stderr


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 19 * * 8", "circles[0].meets.cron: day of week: 8 is not a day; use 0-7 (0 and 7 are Sunday) or mon-sun"),
    ("0 19 * * funday", "circles[0].meets.cron: day of week: 'funday' is not a day"),
    ("0 19 * * fri-mon", "circles[0].meets.cron: day of week: the range 'fri-mon' goes backwards"),
    ("0 19 * *", "circles[0].meets.cron: expected 5 fields (minute hour day-of-month month day-of-week)"),
    ("0 25 * * *", "circles[0].meets.cron: hour: 25 is out of range 0-23"),
    ("0 19 31 2 *", "circles[0].meets.cron: '0 19 31 2 *' never happens"),
    ("0 19 L * *", "circles[0].meets.cron: day of month: 'L' is not a number"),
    ("@reboot", "circles[0].meets.cron: '@reboot' is not a meeting time"),
])
def test_a_bad_cron_is_refused_naming_the_key(tmp_path: Path, cron: str, expected: str) -> None:
    p = write(tmp_path, f'[[circles]]\nslug = "a"\nname = "A"\nmeets = {{cron = "{cron}"}}\n')
    with pytest.raises(ConfigError) as info:
        load(p)
    assert any(expected in p for p in info.value.problems), info.value.problems


def test_starting_must_be_one_of_the_circles_weekdays(tmp_path: Path) -> None:
    base = '[[circles]]\nslug = "a"\nname = "A"\n'
    s = load(write(tmp_path, base + 'meets = {weekdays = ["thu"], time = "19:00", every_weeks = 2, '
                   'starting = 2026-12-03}\n'))
    assert str(s.circles[0].meets.starting) == "2026-12-03"
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, base + 'meets = {weekdays = ["thu", "sat"], time = "19:00", starting = 2026-12-04}\n'))
    assert ("circles[0].meets.starting: 2026-12-04 is a Friday, and the circle meets on Thursday and Saturday; "
            "give the date of the first meeting") in info.value.problems, info.value.problems
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, base + 'meets = {cron = "0 19 * * thu", starting = 2026-12-03}\n'))
    assert any("circles[0].meets: 'starting' works with 'weekdays' + 'time'" in p for p in info.value.problems)
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, base + 'meets = {weekdays = ["thu"], time = "19:00", starting = "soon"}\n'))
    assert any(p.startswith("circles[0].meets.starting: ") for p in info.value.problems), info.value.problems


@pytest.mark.parametrize("key", ["reminder", "assignment"])
@pytest.mark.parametrize("value", ['"0m"', "0", '"0d"'])
def test_a_lead_time_of_zero_is_refused(tmp_path: Path, key: str, value: str) -> None:
    p = write(tmp_path, '[[circles]]\nslug = "a"\nname = "A"\nmeets = {weekdays = ["thu"], time = "19:00"}\n'
              f'timeline = {{{key} = {value}}}\n')
    with pytest.raises(ConfigError) as info:
        load(p)
    assert any(p.startswith(f"circles[0].timeline.{key}: a post 0 minutes before the meeting") for p in
               info.value.problems), info.value.problems


def test_a_channel_or_room_in_two_circles_is_an_error_naming_both(tmp_path: Path) -> None:
    def circle(slug: str, where: str) -> str:
        return (f'[[circles]]\nslug = "{slug}"\nname = "{slug.upper()}"\n'
                f'meets = {{weekdays = ["mon"], time = "18:00"}}\nwhere = {{{where}}}\n')

    p = write(tmp_path, circle("a", 'discord_channels = ["123456789012345678"], matrix_rooms = ["!r:x.org"]')
              + circle("b", 'discord_channels = ["123456789012345678"]')
              + circle("c", 'matrix_rooms = ["!r:x.org"]'))
    with pytest.raises(ConfigError) as e:
        load(p)
    text = str(e.value)
    assert ("circles[1].where.discord_channels: Discord channel '123456789012345678' is also in circle 'a' "
            "(circles[0]); a channel belongs to one circle") in text, text
    assert "circles[2].where.matrix_rooms: Matrix room '!r:x.org' is also in circle 'a' (circles[0])" in text, text
    res = subprocess.run([sys.executable, "-m", "circlebot", "run", "--config", str(p)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "is also in circle 'a'" in res.stderr, res


def test_check_config_reports_a_bad_syllabus_slug_beside_other_errors(tmp_path: Path) -> None:
    bad = write(tmp_path, f'readings = "{REPO / "readings"}"\n[[circles]]\nslug = "a"\nname = "A"\n'
                'meets = {weekdays = ["funday"], time = "18:00"}\nsyllabus = ["missing-reading"]\n')
    res = subprocess.run([sys.executable, "-m", "circlebot", "check-config", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "circles[0].meets.weekdays[0]: expected a weekday" in res.stderr, res.stderr
    assert "circles[0].syllabus: no reading 'missing-reading'" in res.stderr, res.stderr


def test_the_database_is_a_sqlite_file_or_a_postgresql_url_without_its_password(tmp_path: Path) -> None:
    circle = '[[circles]]\nslug = "a"\nname = "A"\nmeets = {weekdays = ["mon"], time = "18:00"}\n'
    s = load(write(tmp_path, 'database = "postgresql://bot@db.example.org:5433/circles"\n'
                   'database_password_env = "CIRCLEBOT_DB_PASSWORD"\n' + circle))
    assert s.database == "postgresql://bot@db.example.org:5433/circles" and s.on_postgresql
    assert s.database_password_env == "CIRCLEBOT_DB_PASSWORD"
    with pytest.raises(ConfigError, match=r"password never goes in the config file.*database_password_env") as info:
        load(write(tmp_path, 'database = "postgresql://bot:hunter22@db/circles"\n' + circle))
    assert "hunter22" not in str(info.value)
    with pytest.raises(ConfigError, match="user, host and database name"):
        load(write(tmp_path, 'database = "postgresql://bot@db"\n' + circle))
    with pytest.raises(ConfigError, match=r"SQLite file path or a postgresql:// URL"):
        load(write(tmp_path, 'database = "mysql://bot@db/x"\n' + circle))


def test_the_matrix_crypto_store_is_beside_the_database_or_where_the_config_says(tmp_path: Path) -> None:
    circle = '[[circles]]\nslug = "a"\nname = "A"\nmeets = {weekdays = ["mon"], time = "18:00"}\n'
    matrix = '[matrix]\nhomeserver = "https://m.example.org"\nuser_id = "@b:example.org"\naccess_token_env = "T"\n'
    s = load(write(tmp_path, 'database = "data/bot.sqlite3"\n' + matrix + circle))
    assert s.matrix is not None and s.matrix.encryption  # on by default
    assert s.matrix.store_path == tmp_path / "data" / "bot-matrix-store"
    s = load(write(tmp_path, matrix + 'store_path = "keys/store"\nencryption = false\n' + circle))
    assert s.matrix is not None and s.matrix.store_path == tmp_path / "keys" / "store" and not s.matrix.encryption
    s = load(write(tmp_path, 'database = "postgresql://bot@db/circles"\n' + matrix + circle))
    assert s.matrix is not None and s.matrix.store_path == tmp_path / "circlebot-matrix-store"  # beside the config


@pytest.mark.parametrize("command", [["export", "ics"], ["export", "csv"], ["links"]])
def test_a_command_given_a_circle_the_config_lacks_names_the_circles_it_has(
        command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from circlebot.cli import main

    assert main([*command, "--config", str(REPO / "config.example.toml"), "--circle", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no circle 'nope' in the config; circles: " in err
    assert load(REPO / "config.example.toml").circles[0].slug in err.split("circles: ", 1)[1]


@pytest.mark.parametrize("command", [["export", "ics"], ["export", "csv"], ["links"]])
def test_every_command_that_opens_the_database_reads_the_password_the_config_names(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from circlebot.cli import main

    text = (REPO / "config.example.toml").read_text(encoding="utf-8")
    config = tmp_path / "circlebot.toml"
    config.write_text('database_password_env = "CIRCLEBOT_TEST_UNSET_PASSWORD"\n' + text.replace(
        'readings = "readings"', f'readings = "{REPO / "readings"}"'), encoding="utf-8")
    monkeypatch.delenv("CIRCLEBOT_TEST_UNSET_PASSWORD", raising=False)
    assert main([*command, "--config", str(config)]) == 2
    assert ("the config says the database password is in the environment variable "
            "CIRCLEBOT_TEST_UNSET_PASSWORD, but it is not set" in capsys.readouterr().err)


def test_the_discord_members_intent_is_off_unless_asked_for_and_a_switch(tmp_path: Path) -> None:
    """`[discord] members_intent` (listing a server's members, for the organisers by role): off by default; a
    value that is not true or false is refused naming the key."""
    circle = '[[circles]]\nslug = "a"\nname = "A"\nmeets = {weekdays = ["mon"], time = "18:00"}\n'
    s = load(write(tmp_path, '[discord]\nguilds = ["1"]\n' + circle))
    assert s.discord is not None and s.discord.members_intent is False
    s = load(write(tmp_path, '[discord]\nmembers_intent = true\n' + circle))
    assert s.discord is not None and s.discord.members_intent is True
    with pytest.raises(ConfigError, match=r"discord\.members_intent: Input should be a valid boolean"):
        load(write(tmp_path, '[discord]\nmembers_intent = "all of them"\n' + circle))

"""Meeting times stay on the local wall clock across daylight-saving changes, whatever the host's zone."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from circlebot.config import validate
from circlebot.core.recurrence import local_to_utc, occurrence_on, occurrences, rule_text
from conftest import circle_config


def circle(tmp_path: Path, zone: str, **meets: object):  # type: ignore[no-untyped-def]
    c = circle_config(timezone=zone, meets={"duration": "90m", **meets})
    s = validate({"circles": [c]}, tmp_path / "c.toml")
    return s.circles[0], ZoneInfo(zone)


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        ("Europe/London", date(2026, 3, 29), date(2026, 10, 25)),
        ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
    ],
)
def test_a_weekly_meeting_keeps_its_local_time_across_both_changes(
    tmp_path: Path, zone: str, before: date, after: date
) -> None:
    c, tz = circle(tmp_path, zone, weekdays=["sunday"], time="19:00")
    starts = list(itertools.islice(occurrences(c, tz, datetime(2026, 1, 1, tzinfo=UTC)), 52))
    locals_ = [s.astimezone(tz) for s in starts]
    assert all((t.hour, t.minute) == (19, 0) for t in locals_)
    assert before in [t.date() for t in locals_] and after in [t.date() for t in locals_]
    offsets = {t.utcoffset() for t in locals_}
    assert len(offsets) == 2  # both standard and summer time were crossed
    gaps = {(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(starts)}
    assert gaps == {167.0, 168.0, 169.0}  # a fixed 7-day interval would have drifted by an hour


def test_a_time_that_does_not_exist_happens_an_hour_later_on_the_clock() -> None:
    tz = ZoneInfo("Europe/London")
    start = local_to_utc(date(2026, 3, 29), datetime(2000, 1, 1, 1, 30).time(), tz)
    assert start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert start.astimezone(tz).strftime("%H:%M %Z") == "02:30 BST"


def test_a_time_that_happens_twice_resolves_to_the_first() -> None:
    tz = ZoneInfo("America/New_York")
    start = local_to_utc(date(2026, 11, 1), datetime(2000, 1, 1, 1, 30).time(), tz)
    assert start == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not 01:30 EST
    assert start.astimezone(tz).strftime("%H:%M %Z") == "01:30 EDT"


def test_cron_rules_are_local_too(tmp_path: Path) -> None:
    c, tz = circle(tmp_path, "Europe/London", cron="0 19 * * sun")
    starts = list(itertools.islice(occurrences(c, tz, datetime(2026, 3, 20, tzinfo=UTC)), 3))
    shown = [s.astimezone(tz).strftime("%d %H:%M %Z") for s in starts]
    assert shown == ["22 19:00 GMT", "29 19:00 BST", "05 19:00 BST"]


def test_fortnightly_and_occurrence_on(tmp_path: Path) -> None:
    c, tz = circle(tmp_path, "Europe/Berlin", weekdays=["tue"], time="18:00", every_weeks=2)
    starts = list(itertools.islice(occurrences(c, tz, datetime(2026, 1, 1, tzinfo=UTC)), 3))
    assert [s.astimezone(tz).date() for s in starts] == [date(2026, 1, 6), date(2026, 1, 20), date(2026, 2, 3)]
    assert occurrence_on(c, tz, date(2026, 1, 13)) is None
    assert occurrence_on(c, tz, date(2026, 1, 20)) == datetime(2026, 1, 20, 17, 0, tzinfo=UTC)
    assert rule_text(c, tz) == "every 2 weeks on Tuesday at 18:00 (Europe/Berlin), 1 h 30 min"


def test_the_host_zone_never_matters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    c, tz = circle(tmp_path, "Europe/London", weekdays=["thu"], time="19:00")
    after = datetime(2026, 11, 24, tzinfo=UTC)
    expected = next(occurrences(c, tz, after))
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        assert next(occurrences(c, tz, after)) == expected == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        time.tzset()


def weekdays_of(tmp_path: Path, expr: str) -> list[str]:
    """The local weekdays a cron rule meets on in a fortnight (from Monday 30 Nov 2026)."""
    c, tz = circle(tmp_path, "Europe/London", cron=expr)
    starts = occurrences(c, tz, datetime(2026, 11, 29, 23, 59, tzinfo=UTC))
    days = [s.astimezone(tz) for s in itertools.takewhile(lambda s: s < datetime(2026, 12, 7, tzinfo=UTC), starts)]
    return [f"{d:%a}" for d in days]


@pytest.mark.parametrize(("expr", "days"), [
    ("0 19 * * 4", ["Thu"]),
    ("0 19 * * 0", ["Sun"]),
    ("0 19 * * 7", ["Sun"]),
    ("0 19 * * 1", ["Mon"]),
    ("0 19 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ("0 19 * * 1,3,5", ["Mon", "Wed", "Fri"]),
    ("0 19 * * 1-5/2", ["Mon", "Wed", "Fri"]),
    ("0 19 * * */2", ["Tue", "Thu", "Sat", "Sun"]),  # 0, 2, 4, 6
    ("0 19 * * 5-7", ["Fri", "Sat", "Sun"]),
    ("0 19 * * 0,6", ["Sat", "Sun"]),
    ("0 19 * * THU", ["Thu"]),
    ("0 19 * * mon-wed", ["Mon", "Tue", "Wed"]),
    ("0 19 * * fri-sun", ["Fri", "Sat", "Sun"]),
    ("0 19 * * *", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ("@weekly", ["Sun"]),
])
def test_cron_weekdays_mean_what_crontab_means(tmp_path: Path, expr: str, days: list[str]) -> None:
    assert weekdays_of(tmp_path, expr) == days


def test_cron_day_of_month_and_weekday_both_given_meet_on_either(tmp_path: Path) -> None:
    """crontab(5): when both fields are restricted, a day matching either one runs."""
    c, tz = circle(tmp_path, "Europe/London", cron="0 19 13 * fri")
    starts = itertools.islice(occurrences(c, tz, datetime(2026, 11, 1, tzinfo=UTC)), 6)
    assert [f"{s.astimezone(tz):%a %d %b}" for s in starts] == [
        "Fri 06 Nov", "Fri 13 Nov", "Fri 20 Nov", "Fri 27 Nov", "Fri 04 Dec", "Fri 11 Dec"]
    c, tz = circle(tmp_path, "Europe/London", cron="0 19 1 * mon")
    starts = itertools.islice(occurrences(c, tz, datetime(2026, 11, 25, tzinfo=UTC)), 3)
    assert [f"{s.astimezone(tz):%a %d %b}" for s in starts] == ["Mon 30 Nov", "Tue 01 Dec", "Mon 07 Dec"]


@pytest.mark.parametrize(("zone", "at"), [
    ("Europe/London", "01:30"), ("Europe/London", "00:30"), ("Europe/London", "02:15"),
    ("America/New_York", "01:30"), ("America/New_York", "02:30"), ("America/New_York", "03:00"),
])
def test_cron_and_weekday_rules_agree_through_both_changes(tmp_path: Path, zone: str, at: str) -> None:
    """A year of Sunday meetings (every 2026 change is on a Sunday): one meeting each, resolved the same way."""
    hour, minute = (int(x) for x in at.split(":"))
    by_cron, tz = circle(tmp_path, zone, cron=f"{minute} {hour} * * 0")
    by_day, _ = circle(tmp_path, zone, weekdays=["sunday"], time=at)
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert list(itertools.islice(occurrences(by_cron, tz, after), 53)) == list(
        itertools.islice(occurrences(by_day, tz, after), 53))


@pytest.mark.parametrize(("zone", "day", "expr", "expected"), [
    ("Europe/London", date(2026, 10, 25), "30 1 * * *", ["00:30 UTC"]),  # 01:30 BST only, not 01:30 GMT too
    ("Europe/London", date(2026, 10, 25), "*/30 1 * * *", ["00:00 UTC", "00:30 UTC"]),  # first 01:00, 01:30
    ("Europe/London", date(2026, 3, 29), "30 1 * * *", ["01:30 UTC"]),  # 02:30 BST
    ("Europe/London", date(2026, 3, 29), "30 1,2 * * *", ["01:30 UTC"]),  # 01:30 (gap) is 02:30: one meeting
    ("America/New_York", date(2026, 11, 1), "30 1 * * *", ["05:30 UTC"]),  # 01:30 EDT
    ("America/New_York", date(2026, 3, 8), "30 2 * * *", ["07:30 UTC"]),  # 03:30 EDT
])
def test_cron_on_the_day_of_a_change(tmp_path: Path, zone: str, day: date, expr: str, expected: list[str]) -> None:
    c, tz = circle(tmp_path, zone, cron=expr)
    start = local_to_utc(day, datetime(2000, 1, 1).time(), tz)
    starts = itertools.takewhile(lambda s: s.astimezone(tz).date() == day,
                                 occurrences(c, tz, start - timedelta(seconds=1)))
    assert [f"{s:%H:%M} UTC" for s in starts] == expected


def test_a_fortnightly_circle_chooses_its_fortnight_with_starting(tmp_path: Path) -> None:
    after = datetime(2026, 11, 24, tzinfo=UTC)
    for first, expected in [("2026-12-03", ["Thu 03 Dec", "Thu 17 Dec", "Thu 31 Dec"]),
                            ("2026-12-10", ["Thu 10 Dec", "Thu 24 Dec", "Thu 07 Jan"])]:
        c, tz = circle(tmp_path, "Europe/London", weekdays=["thu"], time="19:00", every_weeks=2, starting=first)
        starts = itertools.islice(occurrences(c, tz, after), 3)
        assert [f"{s.astimezone(tz):%a %d %b}" for s in starts] == expected
    assert rule_text(c, tz) == "every 2 weeks on Thursday at 19:00 (Europe/London), from Thu 10 Dec 2026, 1 h 30 min"


def test_starting_is_the_first_meeting_and_its_week_is_the_first_week(tmp_path: Path) -> None:
    c, tz = circle(tmp_path, "Europe/London", weekdays=["tue", "thu"], time="19:00", every_weeks=2,
                   starting="2026-12-03")
    starts = itertools.islice(occurrences(c, tz, datetime(2026, 11, 1, tzinfo=UTC)), 4)
    assert [f"{s.astimezone(tz):%a %d %b}" for s in starts] == ["Thu 03 Dec", "Tue 15 Dec", "Thu 17 Dec", "Tue 29 Dec"]
    weekly, _ = circle(tmp_path, "Europe/London", weekdays=["thu"], time="19:00", starting="2027-01-07")
    assert next(occurrences(weekly, tz, datetime(2026, 11, 1, tzinfo=UTC))).date() == date(2027, 1, 7)
    assert occurrence_on(weekly, tz, date(2026, 12, 31)) is None

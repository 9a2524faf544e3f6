"""Meeting times stay on the local wall clock across daylight-saving changes, whatever the host's zone."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from circlebot.config import validate
from circlebot.recurrence import local_to_utc, occurrence_on, occurrences, rule_text
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

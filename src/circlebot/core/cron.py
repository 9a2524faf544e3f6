"""crontab(5) expressions as meeting rules, with APScheduler as the engine that finds matching times.

APScheduler 3's ``CronTrigger.from_crontab`` numbers weekdays from Monday = 0, so ``"0 19 * * 4"`` fires on
Fridays and ``7`` is refused (agronholm/apscheduler#286, #1102; it will not change in 3.x). Here each field is
read as crontab(5) defines it: numbers, names (``jan``-``dec``, ``sun``-``sat``, any case), ``*``, ranges
``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``; in the day-of-week field 0 and 7 are Sunday; when both
day-of-month and day-of-week are restricted (neither starts with ``*``) a day matching either one counts; and
the macros ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``, ``@hourly``.
Each field becomes an explicit list of values for APScheduler's ``CronTrigger``.

The triggers run on a clock without daylight saving (UTC), so they yield *wall-clock* times; turning a wall
time into an instant in the circle's zone (gaps, repeated hours) is recurrence's job, the same rule as for
weekday rules.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab: 0 (and 7) is Sunday
_ELEMENT = re.compile(r"^(?:(?P<all>\*)|(?P<first>[0-9a-z]+)(?:-(?P<last>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?$", re.I)
_NEVER_WITHIN = timedelta(days=366 * 8)  # a leap day falls within any 8 years, a 29 February rule included


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value low + i
    hint: str = ""

    def value(self, word: str, *, range_end: bool = False) -> int:
        if word.isdigit():
            n = int(word)
            if not self.low <= n <= self.high:
                if self.hint:
                    raise ValueError(f"{self.label}: {n} is not a day; use {self.hint}")
                raise ValueError(f"{self.label}: {n} is out of range {self.low}-{self.high}")
            return n
        if word.lower() in self.names:
            n = self.low + self.names.index(word.lower())
            return 7 if range_end and self.names is _DAYS and n == 0 else n  # "fri-sun" is 5-7
        kind = "day" if self.names is _DAYS else "month" if self.names else "number"
        raise ValueError(f"{self.label}: {word!r} is not a {kind}" + (f"; use {self.hint}" if self.hint else ""))

    def expand(self, text: str) -> list[int]:
        """Every value the field's text selects, in order."""
        values: set[int] = set()
        for element in text.split(","):
            m = _ELEMENT.match(element)
            if m is None:
                raise ValueError(f"{self.label}: {element!r} is not crontab syntax (use numbers, names, *, a-b, "
                                 "*/n, a-b/n and commas)")
            step = int(m["step"]) if m["step"] else 1
            if step == 0:
                raise ValueError(f"{self.label}: a step of 0 in {element!r}; steps start at 1")
            if m["all"]:
                first, last = self.low, self.high
            else:
                first = self.value(m["first"])
                if m["last"] is None and m["step"]:
                    raise ValueError(f"{self.label}: a step needs a range or *: write {m['first']}-{self.high}/"
                                     f"{step} or */{step}, not {element!r}")
                last = first if m["last"] is None else self.value(m["last"], range_end=True)
                if last < first:
                    raise ValueError(f"{self.label}: the range {element!r} goes backwards; crontab ranges go "
                                     "from low to high (write it as two ranges with a comma)")
            values.update(range(first, last + 1, step))
        return sorted(values)


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day of month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_WEEKDAY = _Field("day of week", 0, 7, _DAYS, hint="0-7 (0 and 7 are Sunday) or mon-sun")
_APS_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler's names, Monday first


@dataclass(frozen=True)
class CronRule:
    """A parsed crontab expression: the wall-clock times it selects, found by APScheduler's triggers."""

    expression: str
    triggers: tuple[CronTrigger, ...]

    def wall_times(self, start: datetime) -> Iterator[datetime]:
        """Naive wall-clock times the rule selects, at or after the naive `start`, in order, without end."""
        yield from _unique(heapq.merge(*(_walk(t, start) for t in self.triggers)))


def _walk(trigger: CronTrigger, start: datetime) -> Iterator[datetime]:
    nxt = trigger.get_next_fire_time(None, start.replace(tzinfo=UTC))
    while nxt is not None:
        yield nxt.replace(tzinfo=None)
        nxt = trigger.get_next_fire_time(None, nxt + timedelta(seconds=1))


def _unique(times: Iterator[datetime]) -> Iterator[datetime]:
    last: datetime | None = None
    for t in times:
        if t != last:
            yield t
        last = t


def _csv(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


@functools.lru_cache(maxsize=1024)
def parse(expression: str) -> CronRule:
    """Read a crontab expression; ValueError with a message naming the field at fault."""
    from apscheduler.triggers.cron import CronTrigger

    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ValueError(f"{text!r} is not a meeting time; use five fields or one of {', '.join(MACROS)}")
        text = MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day-of-month month day-of-week), like \"0 19 * * thu\"; "
                         f"got {len(fields)} in {expression!r}")
    minute, hour, day, month = (f.expand(t) for f, t in zip((_MINUTE, _HOUR, _DAY, _MONTH), fields, strict=False))
    weekdays = sorted({_APS_WEEKDAYS.index(_DAYS[d % 7]) for d in _WEEKDAY.expand(fields[4])})
    common = {"minute": _csv(minute), "hour": _csv(hour), "month": _csv(month), "timezone": UTC}
    by_day = {"day": _csv(day), "day_of_week": "*"}
    by_weekday = {"day": "*", "day_of_week": ",".join(_APS_WEEKDAYS[w] for w in weekdays)}
    if fields[2].startswith("*"):
        kinds = [by_weekday]
    elif fields[4].startswith("*"):
        kinds = [by_day]
    else:  # both restricted: crontab runs on a day matching either
        kinds = [by_day, by_weekday]
    rule = CronRule(expression, tuple(CronTrigger(**common, **k) for k in kinds))
    probe = datetime(2026, 1, 1)
    first = next(rule.wall_times(probe), None)
    if first is None or first - probe > _NEVER_WITHIN:
        raise ValueError(f"{expression!r} never happens (no such date); check the day of month and month")
    return rule

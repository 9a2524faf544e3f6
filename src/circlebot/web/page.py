"""A circle's read-only page: when it meets, its coming and past meetings with their readings (title, author,
part or sections, reading time, discussion questions), RSVP and attendance counts, the results of closed polls
that are not secret, and a chart of attendance over time (SVG drawn on the server: no script needed).

Rendered with Jinja2, autoescaped: everything a member or a reading file wrote is text. No member is named
unless `[web] show_member_names` allows it; the reading's text is not published (it belongs to its publisher)
unless `[web] publish_reading_text` allows it. Times are in the circle's zone; a short script adds the
reader's own time where the browser runs scripts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from circlebot.config import CircleSettings, WebSettings
from circlebot.core.domain import RsvpAnswer
from circlebot.core.recurrence import rule_text
from circlebot.core.router import Router
from circlebot.web.entries import Entry, circle_entries

COMING_SHOWN = 12  # coming meetings listed on the page (all of them are in the feed)
PAST_SHOWN = 20  # past meetings listed on the page, the latest first
CHART_BARS = 30  # past meetings in the attendance chart
_LINK = re.compile(r"^https?://[^\s\"'<>]+$")

_ENV = Environment(loader=PackageLoader("circlebot.web", "templates"), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    tick: str


@dataclass(frozen=True, slots=True)
class Chart:
    """The attendance chart's geometry, in SVG user units."""

    bars: tuple[Bar, ...]
    width: int
    height: int
    left: int
    top: int
    base: int
    most: int
    description: str


def chart(points: Sequence[tuple[datetime, int]], zone: Any) -> Chart:
    """Bars of check-ins per meeting, oldest first; every fifth meeting (and the last) labelled with its date."""
    width, height, left, top, bottom = 600, 180, 24, 10, 20
    base = height - bottom
    most = max((n for _, n in points), default=0) or 1
    step = (width - left) / max(len(points), 1)
    bars = []
    for i, (when, n) in enumerate(points):
        local = when.astimezone(zone)
        h = (base - top) * n / most
        tick = f"{local:%-d %b}" if i % 5 == 0 or i == len(points) - 1 else ""
        bar = min(step * 0.7, 40.0)
        bars.append(Bar(round(left + i * step + (step - bar) / 2, 1), round(base - h, 1), round(bar, 1),
                        round(h, 1), n, f"{local:%a %-d %b %Y}", tick))
    values = ", ".join(f"{b.label}: {b.value}" for b in bars)
    return Chart(tuple(bars), width, height, left, top, base, most, f"Check-ins per meeting, oldest first: {values}.")


def when(dt: datetime, zone: Any) -> str:
    local = dt.astimezone(zone)
    return f"{local:%A %-d %B %Y, %H:%M} {local.tzname()}"


def _counts(rsvp: dict[RsvpAnswer, int] | None) -> str:
    if not rsvp or not any(rsvp.values()):
        return "No RSVPs yet."
    return (f"RSVPs: {rsvp[RsvpAnswer.YES]} coming, {rsvp[RsvpAnswer.MAYBE]} maybe, "
            f"{rsvp[RsvpAnswer.NO]} not coming.")


def _text(entry: Entry) -> list[str]:
    r = entry.reading
    if r is None:
        return []
    if entry.part is not None:
        blocks = ([r.intro] if entry.part.intro else []) + [f"{s.title}\n\n{s.body}" for s in entry.part.sections]
    else:
        blocks = [r.intro, *(f"{s.title}\n\n{s.body}" for s in r.sections)]
    return [p.strip() for b in blocks for p in re.split(r"\n\s*\n", b) if p.strip()]


async def _names(bot: Router, circle: str) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Who said they are coming (yes) and who checked in, by meeting: only read when names may be shown."""
    coming: dict[int, list[str]] = {}
    came: dict[int, list[str]] = {}
    for r in await bot.store.db.fetchall(
            "SELECT r.meeting_id, m.name, m.user_id FROM rsvps r JOIN members m ON m.id = r.member_id "
            "JOIN meetings mt ON mt.id = r.meeting_id WHERE mt.circle = ? AND r.answer = 'yes' ORDER BY r.at",
            (circle,)):
        coming.setdefault(int(r[0]), []).append(r[1] or r[2])
    for r in await bot.store.db.fetchall(
            "SELECT c.meeting_id, m.name, m.user_id FROM checkins c JOIN members m ON m.id = c.member_id "
            "JOIN meetings mt ON mt.id = c.meeting_id WHERE mt.circle = ? ORDER BY c.at", (circle,)):
        came.setdefault(int(r[0]), []).append(r[1] or r[2])
    return coming, came


async def render_page(bot: Router, circle: CircleSettings, web: WebSettings, now: datetime, feed_url: str) -> bytes:
    """The page's HTML."""
    zone = bot.zone(circle)
    entries = await circle_entries(bot.store, bot.readings, circle, zone, now, web.calendar_weeks)
    coming_all = [e for e in entries if e.ends_at > now]
    coming_e = coming_all[:COMING_SHOWN]
    past_all = [e for e in entries if e.ends_at <= now and e.status == "scheduled"]
    past_e = past_all[::-1][:PAST_SHOWN]
    ids = [e.meeting_id for e in (*coming_e, *past_e) if e.meeting_id is not None]
    rsvps = await bot.store.rsvp_counts(ids)
    checkins = await bot.store.checkin_counts([e.meeting_id for e in past_all if e.meeting_id is not None])
    coming_names, came_names = await _names(bot, circle.slug) if web.show_member_names else ({}, {})
    stored = await bot.store.meetings_by_id(ids)

    async def view(e: Entry, past: bool) -> dict[str, Any]:
        r = e.reading
        questions: list[str] = []
        if e.meeting_id is not None and e.status == "scheduled" and e.meeting_id in stored:
            questions = await bot.meeting_questions(stored[e.meeting_id], circle)
        if past:
            n = checkins.get(e.meeting_id or 0, 0)
            counts = f"{n} came."
            names = ", ".join(came_names.get(e.meeting_id or 0, []))
            names = f"Came: {names}." if names else ""
        else:
            counts = _counts(rsvps.get(e.meeting_id or 0)) if e.status == "scheduled" else ""
            names = ", ".join(coming_names.get(e.meeting_id or 0, []))
            names = f"Coming: {names}." if names else ""
        source = r.source if r is not None and r.source and _LINK.match(r.source) else None
        return {
            "anchor": e.anchor, "status": e.status, "iso": e.starts_at.isoformat().replace("+00:00", "Z"),
            "when": when(e.starts_at, zone), "title": e.title, "author": r.author if r else "",
            "publisher": r.publisher if r else "", "minutes": e.minutes,
            "read": e.part.title if e.part is not None else "",
            "sections": [s.title for s in r.sections] if r is not None and e.part is None else [],
            "questions": questions, "counts": counts, "names": names, "source": source,
            "text": _text(e) if web.publish_reading_text else [],
        }

    polls = []
    for p in await bot.store.polls(circle.slug, limit=25):
        if not p.closed or p.secret:
            continue
        results = await bot.polls.tally(p)
        winners = set(results.winners())
        assert p.closed_at is not None
        polls.append({"question": p.question, "closed": when(p.closed_at, zone), "voters": results.voters,
                      "answers": [{"text": a, "count": n, "won": i in winners}
                                  for i, (a, n) in enumerate(zip(p.answers, results.counts, strict=True))]})
    points = [(e.starts_at, checkins.get(e.meeting_id or 0, 0)) for e in past_all[-CHART_BARS:]]
    html = await asyncio.to_thread(  # off the event loop: the bot keeps answering meanwhile
        _ENV.get_template("circle.html").render,
        circle=circle, rule=rule_text(circle, zone), zone=zone.key,
        feed_url=feed_url, webcal_url=re.sub(r"^https?://", "webcal://", feed_url),
        coming=[await view(e, False) for e in coming_e], later=len(coming_all) - len(coming_e),
        past=[await view(e, True) for e in past_e], earlier=len(past_all) - len(past_e), polls=polls,
        chart=chart(points, zone),
    )
    return html.encode("utf-8")

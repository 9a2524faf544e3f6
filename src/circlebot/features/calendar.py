"""The web's links in chat: `calendar` (a member's own feed, answered privately: their RSVP in each title, an
alarm at the lead they choose, a new link on demand) and `links` (the circle's page and feed; organisers'
`links rotate` retires them)."""

from __future__ import annotations

from datetime import timedelta

from circlebot.config import parse_duration
from circlebot.core.commands import FLAG, Command, Param, ParamType, Reply
from circlebot.core.context import Context
from circlebot.core.weblinks import MemberFeed, WebLinks

MAX_ALARM = timedelta(days=7)
NO_WEB = ("This bot has no web server, so there are no calendar or page links; an admin can turn it on with a "
          "[web] section in the config.")


def _alarm(text: str) -> int:
    """An alarm lead in minutes: "30m", "2h", "1d", a number of minutes; "off" (or 0) for none."""
    t = text.strip().lower()
    if t in ("off", "none", "no", "0"):
        return 0
    try:
        lead = parse_duration(int(t) if t.isdigit() else t)
    except ValueError:
        raise ValueError(f"expected how long before each meeting, like \"30m\", \"2h\" or \"1d\", or \"off\"; "
                         f"got {text[:20]!r}") from None
    if not timedelta(minutes=1) <= lead <= MAX_ALARM:
        raise ValueError(f"an alarm goes off between 1 minute and 7 days before, got {text[:20]!r}")
    return int(lead.total_seconds() // 60)


ALARM = ParamType("lead", _alarm)


def _lead(minutes: int) -> str:
    if not minutes:
        return "no alarm"
    d, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    parts = [f"{d} d" if d else "", f"{h} h" if h else "", f"{m} min" if m else ""]
    return "an alarm " + " ".join(p for p in parts if p) + " before each meeting"


def _links(ctx: Context) -> WebLinks | None:
    return ctx.bot.web_links


async def calendar(ctx: Context, alarm: int | None, rotate: bool) -> Reply:
    links = _links(ctx)
    if links is None:
        return Reply(NO_WEB, private=True)
    slug = ctx.circle.slug
    feed: MemberFeed
    if rotate:
        feed = await links.rotate_member(slug, ctx.member_id)
        note = "Your old link no longer works. "
    elif alarm is not None:
        feed = await links.set_alarm(slug, ctx.member_id, alarm)
        note = f"Changed to {_lead(feed.alarm_minutes)}. "
    else:
        feed = await links.member_feed(slug, ctx.member_id)
        note = ""
    hint = ctx.syntax.prefix
    return Reply(f"{note}Your own calendar of {ctx.circle.name}, with your RSVP in each title and "
                 f"{_lead(feed.alarm_minutes)}: {feed.url}\n"
                 "Subscribe to it in your calendar app (Google Calendar: Other calendars, From URL; Apple Calendar: "
                 "File, New Calendar Subscription; Thunderbird: New Calendar, On the Network). It is yours: keep it "
                 f"to yourself. `{hint}calendar --alarm 2h` changes the alarm (`--alarm off`: none); "
                 f"`{hint}calendar --rotate` replaces the link.", private=True)


async def links_show(ctx: Context) -> str:
    links = _links(ctx)
    if links is None:
        return NO_WEB
    await links.current()  # another process may have rotated them
    page, feed = links.page_url(ctx.circle.slug), links.feed_url(ctx.circle.slug)
    return (f"{ctx.circle.name} on the web: its page {page}\nIts calendar (subscribe in your calendar app): {feed}\n"
            f"`{ctx.syntax.prefix}calendar` gives you a calendar of your own, with your RSVPs.")


async def links_rotate(ctx: Context) -> str:
    links = _links(ctx)
    if links is None:
        return NO_WEB
    page = await links.rotate_circle(ctx.circle.slug)
    return (f"New links for {ctx.circle.name}: the old page and calendar addresses, and every member's own "
            f"calendar link, no longer work. The page: {page}\nThe calendar: {links.feed_url(ctx.circle.slug)}\n"
            f"Members get a new link of their own with `{ctx.syntax.prefix}calendar`.")


COMMANDS = [
    Command(("calendar",), "Your own calendar feed of the circle's meetings, with your RSVPs (answered privately).",
            calendar,
            (Param("alarm", ALARM, "how long before each meeting the alarm goes off (\"30m\", \"2h\", \"off\")",
                   required=False, option=True),
             Param("rotate", FLAG, "a new link (the old one stops working)", option=True)),
            private=True, examples=("calendar", "calendar --alarm 2h", "calendar --rotate")),
    Command(("links",), "The circle's web page and calendar feed.", links_show),
    Command(("links", "rotate"), "New links for the circle's page and calendars; the old ones stop working.",
            links_rotate, organiser=True),
]

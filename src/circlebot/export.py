"""`circlebot export ics`: a circle's calendar as a file, the same calendar its live feed serves (`web/`): every
meeting past and planned, built with the `icalendar` library.

UIDs are stable (`Meeting.uid`: the planned meeting's UID once the syllabus stores it, else
`meeting-<id>-<circle>@circlebot`), so a calendar app that imports or subscribes to the file
again updates the events instead of duplicating them; a cancelled meeting stays in the file as CANCELLED so
calendars remove it.
"""

from __future__ import annotations

from datetime import datetime

from circlebot.config import CircleSettings, Settings, WebSettings
from circlebot.readings import Collection
from circlebot.store import Store
from circlebot.web.calendar import build_calendar
from circlebot.web.entries import circle_entries
from circlebot.web.links import Links, base_url


async def to_ics(store: Store, readings: Collection, settings: Settings, circle: CircleSettings,
                 now: datetime) -> bytes:
    """The circle's calendar, with its page's links where the web server is configured."""
    web = settings.web or WebSettings(enabled=False)
    page = None
    if web.enabled and (base := await base_url(store, web)) is not None:
        page = f"{base}/c/{await Links(store).circle(circle.slug, now)}"
    entries = await circle_entries(store, readings, circle, settings.zone_of(circle), now, web.calendar_weeks)
    return build_calendar(circle, entries, now, page_url=page)

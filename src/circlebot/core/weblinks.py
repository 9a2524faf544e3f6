"""What the core knows of the web server: the links it serves (a circle's page and feed, a member's own feed),
so commands can hand them out and rotate them. The web package provides it; None without a web server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MemberFeed:
    """A member's own calendar feed: its address, and the alarm's lead in minutes (0: no alarm)."""

    url: str
    alarm_minutes: int


class WebLinks(Protocol):
    async def current(self) -> None:
        """Read the links again if another process changed them (before `page_url` answers a command)."""

    def page_url(self, circle: str) -> str | None:
        """A circle's page."""

    def feed_url(self, circle: str) -> str | None:
        """A circle's calendar feed."""

    async def rotate_circle(self, circle: str) -> str:
        """Retire a circle's page and feed links and its members' own feed links; the new page address."""

    async def member_feed(self, circle: str, member_id: int) -> MemberFeed:
        """A member's own feed (made on first use)."""

    async def rotate_member(self, circle: str, member_id: int) -> MemberFeed:
        """Retire a member's own feed link; the new one."""

    async def set_alarm(self, circle: str, member_id: int, minutes: int) -> MemberFeed:
        """Set the lead of the alarm in a member's own feed (0: none)."""

"""What a handler gets: the `Context` of one command, the `Bot` it may use, and how a feature declares the
handler of an inbound event (`EventHandler`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, PollLimits
from circlebot.core.clock import Clock
from circlebot.core.commands import CommandTable, Syntax
from circlebot.core.domain import ChannelRef, Event, Invocation, MessageRef, Post, UserRef
from circlebot.core.polls import Polls
from circlebot.core.text import Text
from circlebot.core.weblinks import WebLinks
from circlebot.readings import Collection
from circlebot.store import Store
from circlebot.store.db import Pending


class Bot(Protocol):
    """The part of the core a feature's handlers may use (the router is one)."""

    settings: Settings
    store: Store
    readings: Collection
    clock: Clock
    commands: CommandTable
    polls: Polls
    adapters: dict[str, ChatAdapter]  # the running platforms (a feature may ask what one can do)
    web_links: WebLinks | None  # the web server's links (None: no web server)

    def syntax(self, platform: str) -> Syntax:
        """How commands are written on a platform."""

    def locations(self, circle: CircleSettings) -> list[ChannelRef]:
        """Every channel of a circle on the platforms that are running."""

    def poll_limits(self, circle: CircleSettings) -> list[tuple[str, PollLimits]]:
        """What each running platform of a circle allows in a poll."""

    async def changed(self, circle: CircleSettings | None = None) -> None:
        """Meetings or polls changed: the timeline re-plans."""

    async def post_to_circle(self, circle: CircleSettings, post: Post) -> list[MessageRef]:
        """Say something in every running location of a circle (a place freed for someone on the waitlist)."""


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a command's handler needs about one invocation."""

    bot: Bot
    circle: CircleSettings
    zone: ZoneInfo
    user: UserRef
    member_id: int
    organiser: bool
    now: datetime
    invocation: Invocation
    prefix: str

    @property
    def store(self) -> Store:
        return self.bot.store

    @property
    def readings(self) -> Collection:
        return self.bot.readings

    @property
    def syntax(self) -> Syntax:
        """How the asker types commands: hints in answers are written with it."""
        return self.bot.syntax(self.invocation.channel.platform)


@dataclass(frozen=True, slots=True)
class EventHandler:
    """A feature's handler for one type of inbound event other than a command (an RSVP from a button, a vote
    in a native poll). `handle(bot, event)` returns what to tell the member, for platforms whose buttons can
    answer, or None. With `batch`, `handle(bot, events)` takes every event of the type in a batch at once (a
    sync page of votes stored in one transaction), a single event as a one-item list, and its answer is not
    shown.

    `quick(bot, event)`, if given, is tried first for a single event: a plain function that, when it can
    handle the event at once with what is cached, queues its write and returns it (`Pending`), which the router
    awaits with no coroutine of the feature's in between (a vote from a gateway: the hottest path); None
    hands the event to `handle`. It sees the event as the platform gave it (not cleaned), so it acts only on
    exact matches with cached values."""

    event: type[Event]
    handle: Callable[[Bot, Any], Awaitable[Text | str | None]]
    batch: bool = False
    quick: Callable[[Bot, Any], Pending | None] | None = None

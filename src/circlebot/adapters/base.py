"""The adapter boundary: what every platform adapter implements, and helpers they share."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from circlebot.domain import ChannelRef, Event, Invocation, MessageRef, PollResults, PollSpec, Post

Dispatch = Callable[[Event | Sequence[Event]], Awaitable[str | None]]
"""Hands events to the core: one, or a batch (votes in a batch are stored in one transaction). For an RSVP or
check-in it returns what to tell the member, for platforms whose buttons can answer."""

TIME_MARK = re.compile(r"<t:(-?\d{1,12}):([tTdDfFR])>")


@dataclass(frozen=True, slots=True)
class PollLimits:
    """What a platform's native polls allow; the core refuses a poll that breaks any circle platform's limits."""

    question_chars: int = 1000
    answers: int = 20
    answer_chars: int = 200
    min_hours: float = 0
    max_hours: float = 24 * 365


class ChatAdapter(Protocol):
    """One chat platform. The core hands it `dispatch`; it never gets a reference to the core itself.

    An adapter may also have a `ready: asyncio.Event`, set once it can send; the core waits for it before
    the timeline sends what fell due while the bot was down. And a `syntax: commands.Syntax` when its users
    type commands otherwise than `prefix` + text (Discord's slash commands), for usage and help. And a
    `dedup_window: timedelta`, how long the platform recognises a repeated idempotency key (see `send`); an
    adapter without one cannot recognise a resend at all.
    """

    platform: str
    prefix: str
    poll_limits: PollLimits

    async def run(self, dispatch: Dispatch) -> None:
        """Connect and serve until cancelled (or, for the console, until the user quits)."""

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Post into a channel or room.

        With an idempotency `key` (the core derives it from the post and the location), sending again with the
        same key within the adapter's `dedup_window` returns the message already posted (and restores its
        controls) instead of posting twice: Matrix transaction ids, Discord nonces."""

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        """Answer an invocation; `private` answers reach only the asker where the platform can."""

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        """Start a native poll (or the closest thing the platform has)."""

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        """End the native poll at `ref`, showing `text` (the results) where the platform can."""


def idempotency_token(key: str, part: str, length: int) -> str:
    """A platform's idempotency value for one piece (`part`: a chunk, a reaction) of the send keyed `key`:
    the same inputs give the same token, in any process; hex, `length` characters (Discord nonces take 25)."""
    return hashlib.sha256(f"{key}\x1f{part}".encode()).hexdigest()[:length]


def render_times(text: str, zone: ZoneInfo) -> str:
    """Replace Discord-style ``<t:UNIX:F>`` marks with the time in `zone`, named, for platforms without them."""

    def one(m: re.Match[str]) -> str:
        local = datetime.fromtimestamp(int(m[1]), UTC).astimezone(zone)
        style = m[2]
        if style in "dD":
            return f"{local:%a %-d %b %Y}"
        if style in "tT":
            return f"{local:%H:%M} {local.tzname()}"
        return f"{local:%a %-d %b %Y, %H:%M} {local.tzname()} ({zone.key})"

    return TIME_MARK.sub(one, text)


def poll_rules(poll: PollSpec, secret_note: str | None = None) -> str:
    """How a poll works, in a few words: "pick one; closes <t:…:F>" (a secret poll adds `secret_note`)."""
    rules = ["pick several" if poll.multi else "pick one"]
    if poll.secret and secret_note:
        rules.append(secret_note)
    if poll.closes_at:
        rules.append(f"closes {time_mark(poll.closes_at)}")
    return "; ".join(rules)


def time_mark(dt: datetime, style: str = "F") -> str:
    """A time as core posts write it: Discord's mark, rendered by the others with `render_times`."""
    return f"<t:{int(dt.timestamp())}:{style}>"


_MD_STRIP = [
    (re.compile(r"\*\*(.+?)\*\*", re.S), r"\1"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", re.S), r"\1"),
    (re.compile(r"`([^`\n]+)`"), r"\1"),
    (re.compile(r"^#{1,6}\s+", re.M), ""),
    (re.compile(r"\[([^\]]+)\]\(([^)]+)\)"), r"\1 (\2)"),
]


def plain_text(markdown: str) -> str:
    """The light Markdown core posts use, as plain text for a terminal."""
    out = markdown
    for pattern, repl in _MD_STRIP:
        out = pattern.sub(repl, out)
    return out

"""Drivers: one way per platform to talk to the whole bot as its users do.

A feature scenario (see scenarios.py) only uses a driver's `say`, `vote` and `clock`, so the same scenario
runs through the core's test adapter here and through the real Matrix and Discord adapters.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from circlebot.adapters.render import named_markdown, plain_text
from circlebot.app import App
from circlebot.core.adapter import Dispatch, PollLimits
from circlebot.core.commands import Syntax
from circlebot.core.domain import (
    ChannelRef,
    FileUpload,
    Invocation,
    MessageRef,
    PollResults,
    PollSpec,
    Post,
    UserRef,
    VoteCast,
)


class FakeClock:
    """The time the core sees; tests move it instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)


class Unsendable(Exception):
    """The platform's own client refuses this input before the bot sees it (a Discord slash command with a
    required option missing, a word where a number goes, a value outside the option's choices)."""


@dataclass(frozen=True)
class Answer:
    """What a user saw in reply to a command."""

    text: str
    private: bool
    files: tuple[tuple[str, bytes], ...] = ()  # (name, bytes) of each file handed over with the answer

    def __contains__(self, part: str) -> bool:
        return part in self.text


class Driver(Protocol):
    organiser: str
    clock: FakeClock
    app: App

    async def say(self, user: str, text: str) -> Answer: ...

    async def vote(self, user: str, poll_id: int, answers: list[int]) -> None: ...

    def posts(self) -> list[str]: ...

    async def pinged(self, post: str) -> set[str]:
        """The names of the users the bot's post with this text (as `posts` shows it) notified."""

    async def directs(self, user: str) -> list[str]:
        """What the bot sent `user` by direct message on its own (not answers to commands)."""

    async def refuse_directs(self, user: str) -> None:
        """`user` stops taking direct messages from the bot (Discord: blocked; Matrix: left the room)."""

    async def fail_directs(self, user: str) -> None:
        """Direct messages to `user` fail for a while, as in an outage (Discord: 503 Service Unavailable;
        Matrix: the homeserver is down); `mend_directs` ends it."""

    async def mend_directs(self, user: str) -> None:
        """Direct messages to `user` go through again."""


class PlatformDown(ConnectionError):
    """The test platform is unreachable (RecordingAdapter.down)."""


@dataclass
class RecordingAdapter:
    """The core's test adapter: a console-like platform that records everything the bot says.

    Like Matrix and Discord it recognises a repeated idempotency key within `dedup_window` and returns the
    message already posted; pass the same `keys` to a restarted adapter to keep that memory across processes.
    While `down` is set every send fails (direct messages too), as a platform in an outage does; direct messages
    to the users in `failing` fail the same way."""

    zone: ZoneInfo
    platform: str = "console"
    prefix: str = ""
    poll_limits: PollLimits = field(default_factory=PollLimits)
    dedup_window: timedelta = timedelta(hours=1)
    ready: asyncio.Event | None = None
    syntax: Syntax | None = None
    down: bool = False
    sent: list[tuple[ChannelRef, Post, MessageRef]] = field(default_factory=list)
    keys: dict[str, MessageRef] = field(default_factory=dict)
    attempts: list[tuple[ChannelRef, str | None]] = field(default_factory=list)
    replies: list[tuple[Invocation, Post, bool]] = field(default_factory=list)
    files: list[tuple[Invocation, FileUpload, bool]] = field(default_factory=list)
    polls: dict[int, MessageRef] = field(default_factory=dict)
    started: list[PollSpec] = field(default_factory=list)
    ended: dict[MessageRef, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    direct_interval: float = 0.0
    directs: list[tuple[UserRef, Post]] = field(default_factory=list)  # direct messages sent
    refusing: set[str] = field(default_factory=set)  # user ids who do not take direct messages
    failing: set[str] = field(default_factory=set)  # user ids whose direct messages fail (an outage)

    def render(self, post: Post) -> str:
        return plain_text(named_markdown(post.content, self.zone, self.prefix))

    async def serve(self, dispatch: Dispatch) -> None:
        await asyncio.Event().wait()

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        self.attempts.append((where, key))
        if self.down:
            raise PlatformDown(f"{self.platform} is down")
        if key is not None and key in self.keys:
            return self.keys[key]
        ref = MessageRef(where, f"m{next(self._ids)}")
        self.sent.append((where, post, ref))
        if key is not None:
            self.keys[key] = ref
        return ref

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        self.replies.append((to, post, private))

    async def send_file(self, to: Invocation, file: FileUpload, post: Post, *, private: bool = False) -> None:
        self.replies.append((to, post, private))
        self.files.append((to, file, private))

    async def send_direct(self, user: UserRef, post: Post, *, key: str | None = None) -> MessageRef:
        from circlebot.core.adapter import DirectRefused

        where = ChannelRef(self.platform, f"dm:{user.id}")
        self.attempts.append((where, key))
        if user.id in self.refusing:
            raise DirectRefused(f"{user.id} does not take direct messages")
        if self.down or user.id in self.failing:
            raise PlatformDown(f"{self.platform} is down")
        if key is not None and key in self.keys:
            return self.keys[key]
        self.directs.append((user, post))
        ref = MessageRef(where, f"m{next(self._ids)}")
        if key is not None:
            self.keys[key] = ref
        return ref

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        ref = await self.send(where, Post(f"Poll #{poll.id}: {poll.question}"))
        self.started.append(poll)
        self.polls[poll.id] = ref
        return ref

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        self.ended[ref] = text


class CoreDriver:
    """Drives the core directly through the recording adapter (tier 2: real SQLite, injected clock)."""

    organiser = "olga"

    def __init__(self, app: App, adapter: RecordingAdapter, clock: FakeClock, circle: str) -> None:
        self.app = app
        self.adapter = adapter
        self.clock = clock
        self.channel = ChannelRef("console", circle)

    async def say(self, user: str, text: str) -> Answer:
        before, files_before = len(self.adapter.replies), len(self.adapter.files)
        inv = Invocation(UserRef("console", user, user), self.channel, self.clock.now(), text=text)
        await self.app.dispatch(inv)
        new = self.adapter.replies[before:]
        assert len(new) == 1, f"expected one answer to {text!r}, got {len(new)}"
        _, post, private = new[0]
        files = tuple((f.name, f.data) for _, f, _ in self.adapter.files[files_before:])
        return Answer(self.adapter.render(post), private, files)

    async def vote(self, user: str, poll_id: int, answers: list[int]) -> None:
        """Vote the platform's native way: here, a VoteCast on the poll's message (answers are 1-based)."""
        await self.app.dispatch(
            VoteCast(UserRef("console", user, user), tuple(a - 1 for a in answers), self.clock.now(),
                     message=self.adapter.polls[poll_id])
        )

    def posts(self) -> list[str]:
        return [self.adapter.render(p) for _, p, _ in self.adapter.sent] + list(self.adapter.ended.values())

    async def directs(self, user: str) -> list[str]:
        return [self.adapter.render(p) for u, p in self.adapter.directs if u.id == user]

    async def refuse_directs(self, user: str) -> None:
        self.adapter.refusing.add(user)

    async def fail_directs(self, user: str) -> None:
        self.adapter.failing.add(user)

    async def mend_directs(self, user: str) -> None:
        self.adapter.failing.discard(user)

    async def pinged(self, post: str) -> set[str]:
        found = [p for _, p, _ in self.adapter.sent if self.adapter.render(p) == post]
        assert found, f"the bot posted no {post!r}"
        return {u.id for u in found[0].mentions} if found[0].notify else set()


def number_after(marker: str, text: str) -> int:
    """The number after `marker#` in a bot answer, e.g. number_after("meeting", "Scheduled meeting #3")."""
    m = re.search(rf"{marker} #(\d+)", text, re.I)
    assert m, f"no {marker} number in {text!r}"
    return int(m[1])

"""The adapter boundary: what every platform adapter implements (here in the core, which sends through it and
imports no adapter), and the idempotency tokens adapters derive from a send's key.

Rendering (a post's `Text` as each platform writes it) lives in `circlebot.adapters.render`."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import asyncpg

from circlebot.core.commands import Syntax
from circlebot.core.domain import (
    ChannelRef,
    Event,
    FileUpload,
    Invocation,
    MessageRef,
    PollResults,
    PollSpec,
    Post,
    UserRef,
)
from circlebot.core.text import Text

Dispatch = Callable[[Event | Sequence[Event]], Awaitable[Text | str | None]]
"""Hands events to the core: one, or a batch (votes in a batch are stored in one transaction). For an RSVP or
check-in it returns what to tell the member, for platforms whose buttons can answer. Raises `NotStored` when
what the events change could not be stored (the database failed): the adapter offers them again later."""


# PostgreSQL: the connection is gone or refused, the server is short of a resource (disk, connections), or
# a transaction met another (a deadlock, a serialization failure): the same write may go through later
_POSTGRES_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError, asyncpg.OperatorInterventionError,
)


def storage_failed(error: BaseException) -> bool:
    """Whether an error means the database could not be written (locked, disk full, I/O error): worth offering
    the same events again later, unlike a bug in handling them."""
    if isinstance(error, sqlite3.OperationalError | OSError) and not isinstance(error, TimeoutError):
        return True
    return isinstance(error, _POSTGRES_FAILURES)


class NotStored(Exception):
    """The core could not store what an event changes (a vote, an RSVP, a check-in, a poll's end) because the
    database failed. Nothing of it was acknowledged: the adapter must offer the event again later (Matrix keeps
    its sync position; Discord keeps the votes queued) instead of treating it as handled."""


class PlatformRefused(Exception):
    """The platform refused a post for a reason a person can fix (a permission the bot lacks). The message
    says what failed and what to do, in words for the organiser who asked."""


@dataclass(frozen=True, slots=True)
class PollLimits:
    """What a platform's native polls allow; the core refuses a poll that breaks any circle platform's limits."""

    question_chars: int = 1000
    answers: int = 20
    answer_chars: int = 200
    min_hours: float = 0
    max_hours: float = 24 * 365


class PlatformState(Protocol):
    """An adapter's own records, kept in the bot's database under its platform's name (`Store.adapter_state`).

    Items are by namespace and key; one that names its meeting, or its poll's message on this platform, is
    removed 30 days after that meeting ended or that poll closed (one that names neither, 30 days after it was
    written). Settings (a sync token, the DM rooms) are kept for good."""

    async def get(self, namespace: str, key: str) -> str | None: ...

    async def put(self, namespace: str, key: str, value: str, *, meeting_id: int | None = None,
                  poll_message: str | None = None) -> None: ...

    async def delete(self, namespace: str, key: str) -> None: ...

    async def setting(self, key: str) -> str | None: ...

    async def set_setting(self, key: str, value: str) -> None: ...

    async def items(self, namespace: str) -> list[tuple[str, str]]:
        """Every item of `namespace`: (key, value) pairs in key order."""
        ...


@dataclass(frozen=True, slots=True)
class OpenPoll:
    """An open poll's message on one platform: what an adapter needs to read its votes back."""

    poll_id: int
    circle: str
    message: MessageRef
    answers: int
    secret: bool
    opener: UserRef | None = None  # who opened it, when that is someone on this platform


class Lookups(Protocol):
    """The narrow view of the bot every adapter gets, besides `dispatch`: its own state, and a few read-only
    look-ups, all for its own platform. It never gets the store or the core."""

    @property
    def state(self) -> PlatformState:
        """This platform's own records (`PlatformState`)."""

    async def open_polls(self) -> list[OpenPoll]:
        """Every open poll's message on this platform, in the circles that live on it."""

    async def choices(self, kind: str, channel: ChannelRef, typed: str) -> list[tuple[str, str | int]]:
        """Up to 25 (label, value) pairs for an option of `kind` ("reading", "meeting", "poll") typed so far
        (autocomplete)."""


class ChatAdapter(Protocol):
    """One chat platform. The core hands it `dispatch` and its view of the bot (`Lookups`); it never gets a
    reference to the core itself. The optional capabilities are declared too, with the value that means "not
    this one": `ready` None, `syntax` None, `dedup_window` zero."""

    platform: str
    prefix: str
    poll_limits: PollLimits

    @property
    def ready(self) -> asyncio.Event | None:
        """Set once the adapter can send: the core waits for it before the timeline sends what fell due while
        the bot was down. None: the adapter can send as soon as it serves (the console)."""

    @property
    def syntax(self) -> Syntax | None:
        """How its users type commands where that is not `prefix` + text (Discord's slash commands), for usage
        and help. None: `prefix` + text."""

    @property
    def dedup_window(self) -> timedelta:
        """How long the platform recognises a repeated idempotency key (see `send`); zero: it cannot recognise
        a resend at all, so an interrupted post is not sent again."""

    async def serve(self, dispatch: Dispatch) -> None:
        """Connect and serve until cancelled (or, for the console, until the user quits)."""

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Post into a channel or room.

        With an idempotency `key` (the core derives it from the post and the location), sending again with the
        same key within the adapter's `dedup_window` returns the message already posted (and restores its
        controls) instead of posting twice: Matrix transaction ids, Discord nonces."""

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        """Answer an invocation; `private` answers reach only the asker where the platform can."""

    async def send_file(self, to: Invocation, file: FileUpload, post: Post, *, private: bool = False) -> None:
        """Answer an invocation with a file and `post` beside it, the platform's way: an attachment (Discord),
        an uploaded `m.file` (Matrix), a file written to disk whose path is shown (the console); `private` as
        for `reply`."""

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        """Start a native poll (or the closest thing the platform has)."""

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        """End the native poll at `ref`, showing `text` (the results) where the platform can."""


class DirectRefused(Exception):
    """The member does not take direct messages from the bot (Discord's 50007, a Matrix direct room they left):
    not worth trying again; the core switches that member's direct messages off."""


@runtime_checkable
class DirectMessages(Protocol):
    """An adapter that can message one member directly (Discord DMs, Matrix direct rooms). Optional: the core
    checks for it (`isinstance(adapter, DirectMessages)`). The core sends at most one direct message per
    `direct_interval` seconds on a platform, well below the rates that get bots flagged for spam."""

    direct_interval: float

    async def send_direct(self, user: UserRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Send `post` to `user` alone; raises `DirectRefused` when the member does not take direct messages.
        `key` as for `ChatAdapter.send`."""


@runtime_checkable
class PowerLevels(Protocol):
    """An adapter whose rooms rank their members by power level (Matrix). Optional: the core checks for it, to
    find the organisers a circle's config gives by level (`matrix_power_level`) rather than one by one."""

    async def members_ranked(self, where: ChannelRef, level: int) -> list[UserRef]:
        """The members joined to the room `where` whose power level there is at least `level` (a room version
        12+ creator ranks above every level), the bot itself excepted."""


@runtime_checkable
class RoleHolders(Protocol):
    """An adapter whose servers make organisers by role or by a server permission (Discord: `discord_roles`,
    `discord_manage_server`). Optional: the core checks for it, to find those organisers, whom the config does
    not name one by one."""

    async def organisers_by_role(self, where: ChannelRef, roles: Sequence[str], manage_server: bool
                                 ) -> list[UserRef]:
        """The members of the server of channel `where` who hold one of `roles` now, or (with
        `manage_server`) may manage the server; people only, the bot itself excepted. As complete as the
        platform lets the bot know (see the adapter)."""


@dataclass(frozen=True, slots=True)
class MeetingEvent:
    """A circle's next meeting as a platform's own calendar event mirrors it (Discord's scheduled events)."""

    meeting_id: int
    name: str
    description: str
    starts_at: datetime
    ends_at: datetime


@runtime_checkable
class MeetingMirror(Protocol):
    """An adapter that mirrors each circle's next meeting as the platform's own event (optional; the core
    checks for it and for `mirrors_meetings`, the admin's choice)."""

    mirrors_meetings: bool

    async def mirror_meeting(self, circle: str, channels: Sequence[ChannelRef], event: MeetingEvent | None,
                             cancelled: frozenset[int]) -> None:
        """Make the platform's event show `event` (None: no next meeting): create it, move it, or replace the
        one of another meeting (cancelled, as the platform says it, if that meeting's id is in `cancelled`;
        removed otherwise: it ended, or another meeting comes first now)."""


def idempotency_token(key: str, part: str, length: int) -> str:
    """A platform's idempotency value for one piece (`part`: a chunk, a reaction) of the send keyed `key`:
    the same inputs give the same token, in any process; hex, `length` characters (Discord nonces take 25)."""
    return hashlib.sha256(f"{key}\x1f{part}".encode()).hexdigest()[:length]


def connection(adapter: ChatAdapter) -> tuple[int, bool]:
    """An adapter's (reconnects so far, connected now), for `/readyz` and `/metrics`. An adapter may keep
    `connected` and `reconnects` attributes (Matrix, Discord); one without them is connected once it is `ready`
    (or, with no `ready`, always: the console)."""
    ready = adapter.ready
    up = getattr(adapter, "connected", None)
    if up is None:
        up = ready is None or ready.is_set()
    return int(getattr(adapter, "reconnects", 0)), bool(up)

"""What the parts of the Matrix adapter share: its state and the methods they call on each other (`Host`),
and the small values they pass around (a configured room, a command's handle, a room's standing)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from cachetools import LRUCache
from nio import AsyncClient

from circlebot.adapters.matrix import polls
from circlebot.config import MatrixSettings
from circlebot.core.adapter import Dispatch, Lookups, PlatformState
from circlebot.core.domain import ChannelRef, Control, MessageRef, Post

#: A room creator in room version 12+ has "infinite" power; this is above any power level a room can set.
CREATOR_LEVEL = 2**53


@dataclass(frozen=True, slots=True)
class MatrixRoom:
    """A configured room: which circle lives there, and the zone its times are shown in."""

    circle: str
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class Handle:
    """What the adapter needs to answer a command: where it was and its event."""

    room_id: str
    event_id: str
    thread_root: str | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    creators: frozenset[str]
    users: Mapping[str, int]
    default: int
    redact: int = 50  # the level that may end someone else's poll (MSC3381: "allowed to redact")

    def level(self, user: str) -> int:
        return CREATOR_LEVEL if user in self.creators else self.users.get(user, self.default)


@dataclass(slots=True)
class PendingVotes:
    """Poll responses gathered while reading a stretch of timeline; dispatched together (latest wins)."""

    responses: list[tuple[str, polls.PollResponse]] = field(default_factory=list)


class Host(Protocol):
    """What the adapter's parts (sync, rooms, direct, votes, reactions, commands, send) share: the adapter's
    state, and the methods one part calls on another. `MatrixAdapter` is all of them together."""

    settings: MatrixSettings
    prefix: str
    user_id: str
    cache_size: int
    client: AsyncClient
    ready: asyncio.Event
    connected: bool  # the last sync reached the homeserver (/readyz, /metrics)
    reconnects: int  # syncs that reached it again after an outage
    _lookups: Lookups
    _rooms: dict[str, MatrixRoom]
    _token: str | None
    _password: str | None
    _zone: ZoneInfo
    _sync_timeout_ms: int
    _backoff: tuple[float, float]
    _dispatch: Dispatch | None = None
    _seen: OrderedDict[str, None]
    _commands: OrderedDict[str, None]
    _waiters: dict[str, asyncio.Future[None]]
    _standing: dict[str, Standing]
    _names: LRUCache[tuple[str, str], str]
    _dms: dict[str, str]
    _dm_rooms: set[str]
    _dm_left: set[str]  # members who left their direct room with the bot: no direct message (reminder) goes to them
    _dm_locks: dict[str, asyncio.Lock]
    _direct_lock: asyncio.Lock  # one update of the bot's m.direct account data at a time
    _dm_checked: set[str]  # direct rooms decided for encryption since the start (crypto._encrypt_direct_room)
    _poll_ends: LRUCache[str, int | None]
    _controls: LRUCache[str, tuple[int | None, frozenset[Control]] | None]
    _responses: LRUCache[str, tuple[str, str]]
    _ending: dict[str, polls.PollEnd]
    _warned_encrypted: set[str]
    _ignored_invites: LRUCache[str, None]
    _crypto_dir: Path | None
    _recovery_key: str | None
    _undecrypted: dict[str, Any]  # event id -> crypto.Undecrypted
    undecryptable_grace: float

    @property
    def _state(self) -> PlatformState:
        """Per-post and per-poll items (controls, reactions, poll ends), cleaned up with their meeting or poll;
        settings (the sync token, DM rooms, handled commands), kept."""
        return self._lookups.state

    # sync.py
    def _done(self, event_id: str) -> None: ...
    async def _process_room(self, room_id: str, events: Sequence[dict[str, Any]]) -> None: ...

    # commands.py
    async def _load_handled(self) -> None: ...
    async def _on_message(self, room_id: str, src: Mapping[str, Any]) -> None: ...

    # rooms.py
    async def _check_rooms(self) -> None: ...
    async def _on_invite(self, room_id: str, state: Sequence[Any] = ()) -> None: ...
    def _note_state(self, room_id: str, src: Mapping[str, Any]) -> None: ...
    def _warn_encrypted(self, room_id: str) -> None: ...
    async def _room_standing(self, room_id: str) -> Standing: ...
    async def _display_name(self, room_id: str, user_id: str) -> str: ...

    # direct.py
    async def _load_dms(self) -> None: ...
    def _forget_dm_room(self, room_id: str) -> None: ...
    async def _dm_room(self, user_id: str) -> str: ...
    async def _join_direct(self, room_id: str, state: Sequence[Any]) -> bool: ...
    async def _mark_direct(self, *pairs: tuple[str, str]) -> None: ...

    # votes.py
    async def _read_back_open_polls(self) -> None: ...
    async def _note_poll_end(self, end: polls.PollEnd) -> None: ...
    async def _flush_votes(self, pending: PendingVotes) -> None: ...
    async def _on_foreign_end(self, room_id: str, src: Mapping[str, Any]) -> None: ...
    async def _on_response_redacted(self, room_id: str, event_id: str) -> None: ...

    # reactions.py
    async def _on_reaction(self, room_id: str, src: Mapping[str, Any]) -> None: ...
    async def _on_redaction(self, room_id: str, src: Mapping[str, Any]) -> None: ...
    async def _offer_controls(self, where: ChannelRef, ref: MessageRef, post: Post, key: str | None) -> None: ...
    async def _get_json(self, path: str) -> dict[str, Any]: ...

    # crypto.py
    @property
    def encrypting(self) -> bool: ...
    async def _open_store(self) -> None: ...
    async def _make_store_dir(self) -> None: ...
    async def _key_chores(self) -> None: ...
    async def _seal(self, room_id: str, kind: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]: ...
    def _readable(self, event: Any) -> Any: ...
    async def _know_room(self, room_id: str) -> Any: ...
    async def _load_members(self, room: Any) -> None: ...
    async def _has_device_keys(self, user_id: str) -> bool | None: ...
    async def _encrypted_room(self, room_id: str) -> Any: ...
    async def _on_undecryptable(self, room_id: str, src: Mapping[str, Any]) -> None: ...
    async def _retry_undecrypted(self) -> None: ...
    async def _load_undecrypted(self) -> None: ...
    async def _ensure_cross_signed(self) -> None: ...
    def _saved_session(self) -> Mapping[str, str] | None: ...
    def _save_session(self) -> None: ...
    def _forget_session(self) -> None: ...

    # send.py
    def _zone_of(self, room_id: str) -> ZoneInfo: ...
    async def _send_event(self, room_id: str, kind: str, content: dict[str, Any], txn: str | None = None) -> str: ...
    async def _send_post(self, room_id: str, post: Post, zone: ZoneInfo, relates: dict[str, Any] | None = None,
                         extra: Mapping[str, Any] | None = None, key: str | None = None) -> list[str]: ...
    async def _react(self, room_id: str, event_id: str, key: str, txn: str | None = None) -> str: ...

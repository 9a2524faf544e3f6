"""The Matrix adapter: circlebot in Matrix rooms, through matrix-nio.

What it does, in the order events flow:

* Syncs with a filter that asks for up to 100 timeline events per room, and back-fills with ``/messages`` when
  a sync is ``limited``, so a burst of votes or commands is never cut short. The sync token is kept in the
  store (``adapter_state``) after each sync is handled: a restart neither replays old commands nor misses what
  came while the bot was down. The very first start (no token) reads no history at all.
* Joins configured rooms when invited (others only with ``accept_invites``); ignores events from before its
  own join, its own events and every ``m.notice``.
* Commands start with the prefix (``!``); the text after it goes to the core as ``Invocation(text=...)``, with
  the sender's room power level in ``Authority`` (room creators of room version 12+ rank above any level).
* Answers are ``m.notice`` replies (``m.in_reply_to`` the command) with an HTML ``formatted_body`` (user text
  escaped) and a plain ``body``; reminders (``Post.notify``) are ``m.text`` with ``m.mentions``. Long posts are
  split. Private answers go to a direct-message room with the asker; the command gets a 📨 reaction.
* Polls are MSC3381 native polls (see :mod:`circlebot.adapters.matrix_polls`); votes are read from the
  timeline, and at every start from the relations of each open poll, so votes cast while the bot was down
  count.
* RSVP by ✅ ❔ ❌ reactions on a meeting post (removing the reaction removes the RSVP), check-in by a reaction
  on the questions post; the bot puts the reaction keys there itself.
* When the homeserver goes away the sync loop retries with backoff (capped) and carries on from its token.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
from cachetools import LRUCache
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinedRoomsResponse,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncError,
    SyncResponse,
)
from nio.api import Api, MessageDirection, RelationshipType, RoomPreset
from nio.responses import RoomEventRelationsResponse

from circlebot.adapters import matrix_polls as polls
from circlebot.adapters.render import named_markdown, plain_text, split_text, to_html
from circlebot.config import MatrixSettings, Settings
from circlebot.core.adapter import Dispatch, NotStored, PollLimits, idempotency_token, storage_failed
from circlebot.core.domain import (
    Authority,
    ChannelRef,
    CheckInCast,
    Control,
    Invocation,
    MessageRef,
    PollEndCast,
    PollReadBack,
    PollResults,
    PollSpec,
    Post,
    RsvpAnswer,
    RsvpCast,
    UserRef,
    VoteCast,
)
from circlebot.core.text import Text, named_time
from circlebot.store import AdapterState, Store

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PLATFORM = "matrix"
#: A room creator in room version 12+ has "infinite" power; this is above any power level a room can set.
CREATOR_LEVEL = 2**53
#: Events are limited to 65,536 bytes as a whole; keep the content well under it.
MAX_CONTENT_BYTES = 60_000
CHUNK_CHARS = 8000
RSVP_KEYS = {"✅": RsvpAnswer.YES, "❔": RsvpAnswer.MAYBE, "❓": RsvpAnswer.MAYBE, "❌": RsvpAnswer.NO}
RSVP_OFFERED = ("✅", "❔", "❌")
CHECK_IN_KEY = "🙋"
PRIVATE_MARK = "📨"
#: Where a private answer sent by DM says which command it answers (a namespaced key; clients ignore it).
REPLY_TO_KEY = "ci.circlebot.reply_to"
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 100},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}
_OLD_ROOM_VERSIONS = frozenset(str(v) for v in range(1, 12))
_SEEN_MAX = 20_000
STOP_GRACE = 10.0  # seconds a stopping bot may take to finish the sync in hand
_COMMANDS_KEPT = 300  # more than one sync plus its back-fill can replay in one room
_BACKFILL_PAGES = 200


class MatrixError(RuntimeError):
    """A Matrix request failed: nio's error value, turned into an exception at the adapter's edge."""


class FatalMatrixError(MatrixError):
    """A failure that retrying cannot fix (a rejected access token): the adapter stops."""


def _check(resp: object, ok: type[_T], what: str) -> _T:
    if isinstance(resp, ok):
        return resp
    status = getattr(resp, "status_code", None)
    message = getattr(resp, "message", None)
    raise MatrixError(f"{what} failed: {status or type(resp).__name__} {message or ''}".rstrip())


def client_config() -> AsyncClientConfig:
    """nio's defaults retry a dead connection forever and sleep on every 429. circlebot's own loops retry
    with backoff during an outage, so a single request must give up after a few quick tries."""
    return AsyncClientConfig(
        max_limit_exceeded=3,  # honour the server's retry_after three times, then report the error
        max_timeouts=2,  # two quick retries replace a pooled connection that died with a server restart
        backoff_factor=0.2,
        max_timeout_retry_wait_time=2,
        request_timeout=30,
        store_sync_tokens=False,
        encryption_enabled=False,
    )


def _ts(ms: object) -> datetime:
    """An event's ``origin_server_ts`` (milliseconds) as a time; one that is not a usable number (a server's
    mistake, or a forged event) is taken as now."""
    if isinstance(ms, int | float) and not isinstance(ms, bool):
        try:
            return datetime.fromtimestamp(ms / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A command typed in a room: the text after the prefix."""

    event_id: str
    sender: str
    text: str
    at: datetime
    thread_root: str | None = None


def parse_command(src: Mapping[str, Any], prefix: str) -> CommandEvent | None:
    """The command in a raw ``m.room.message`` event, or None when there is none (not text, no prefix, an edit,
    or an event that is not well formed)."""
    content = _dict(src.get("content"))
    body, event_id, sender = content.get("body"), src.get("event_id"), src.get("sender")
    if content.get("msgtype") != "m.text" or not isinstance(body, str) or not body.startswith(prefix):
        return None
    if not isinstance(event_id, str) or not isinstance(sender, str):
        return None
    rel = _dict(content.get("m.relates_to"))
    if rel.get("rel_type") == "m.replace":  # an edit: the command ran when it was first sent
        return None
    text = body[len(prefix):].strip()
    if not text:
        return None
    thread = rel.get("event_id") if rel.get("rel_type") == "m.thread" else None
    return CommandEvent(event_id, sender, text, _ts(src.get("origin_server_ts")),
                        thread if isinstance(thread, str) else None)


@dataclass(frozen=True, slots=True)
class ReactionEvent:
    """A reaction (``m.annotation``) on an event: `key` without emoji variation selectors."""

    event_id: str
    sender: str
    target: str
    key: str
    at: datetime


def parse_reaction(src: Mapping[str, Any]) -> ReactionEvent | None:
    """The reaction in a raw ``m.reaction`` event, or None when it is not a well-formed one."""
    rel = _dict(_dict(src.get("content")).get("m.relates_to"))
    target, key, event_id, sender = rel.get("event_id"), rel.get("key"), src.get("event_id"), src.get("sender")
    if rel.get("rel_type") != "m.annotation" or not all(isinstance(x, str) for x in (target, key, event_id, sender)):
        return None
    return ReactionEvent(str(event_id), str(sender), str(target), str(key).replace("\ufe0f", ""),
                         _ts(src.get("origin_server_ts")))


def parse_redaction(src: Mapping[str, Any]) -> tuple[str, datetime] | None:
    """The event a raw ``m.room.redaction`` removes (room v11 puts it in the content), and when."""
    redacts = _dict(src.get("content")).get("redacts") or src.get("redacts")
    return (redacts, _ts(src.get("origin_server_ts"))) if isinstance(redacts, str) else None


@dataclass(frozen=True, slots=True)
class MatrixRoom:
    """A configured room: which circle lives there, and the zone its times are shown in."""

    circle: str
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class _Handle:
    """What the adapter needs to answer a command: where it was and its event."""

    room_id: str
    event_id: str
    thread_root: str | None = None


@dataclass(frozen=True, slots=True)
class _Standing:
    creators: frozenset[str]
    users: Mapping[str, int]
    default: int
    redact: int = 50  # the level that may end someone else's poll (MSC3381: "allowed to redact")

    def level(self, user: str) -> int:
        return CREATOR_LEVEL if user in self.creators else self.users.get(user, self.default)


@dataclass(slots=True)
class _PendingVotes:
    """Poll responses gathered while reading a stretch of timeline; dispatched together (latest wins)."""

    responses: list[tuple[str, polls.PollResponse]] = field(default_factory=list)


class MatrixAdapter:
    """circlebot on Matrix. Construct it with the rooms of every circle; `serve` connects and serves until cancelled."""

    platform = PLATFORM
    cache_size = 10_000  # entries per in-memory cache (display names, reacted-to posts, poll ends, responses)
    poll_limits = PollLimits(question_chars=340, answers=20, answer_chars=340)
    # Synapse keeps a transaction id's event for 24 hours (per device); an hour less leaves room for clocks
    dedup_window = timedelta(hours=23)

    def __init__(
        self,
        settings: MatrixSettings,
        store: Store,
        rooms: Mapping[str, MatrixRoom],
        *,
        access_token: str | None = None,
        password: str | None = None,
        default_zone: ZoneInfo | None = None,
        sync_timeout_ms: int = 30_000,
        backoff: tuple[float, float] = (0.5, 30.0),
        config: AsyncClientConfig | None = None,
    ) -> None:
        if not (access_token or password):
            raise ValueError("the Matrix adapter needs an access token or a password")
        self.settings = settings
        self.prefix = settings.prefix
        self.user_id = settings.user_id
        self._store = store
        self._rooms = dict(rooms)
        self._token = access_token
        self._password = password
        self._zone = default_zone or ZoneInfo("UTC")
        self._sync_timeout_ms = sync_timeout_ms
        self._backoff = backoff
        self.client = AsyncClient(settings.homeserver, settings.user_id, device_id=settings.device_id,
                                  config=config or client_config())
        self.ready = asyncio.Event()
        self._dispatch: Dispatch | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._commands: OrderedDict[str, None] = OrderedDict()
        self._waiters: dict[str, asyncio.Future[None]] = {}
        # Memory is bounded: every cache below keeps at most `cache_size` entries (least recently used go
        # first) and falls back to the store or the homeserver for what it no longer holds.
        size = self.cache_size
        self._standing: dict[str, _Standing] = {}  # configured rooms only
        self._names: LRUCache[tuple[str, str], str] = LRUCache(size)
        self._dms: dict[str, str] = {}
        self._dm_rooms: set[str] = set()
        self._dm_locks: dict[str, asyncio.Lock] = {}
        self._poll_ends: LRUCache[str, int | None] = LRUCache(size)
        self._controls: LRUCache[str, tuple[int | None, frozenset[Control]] | None] = LRUCache(size)
        self._responses: LRUCache[str, tuple[str, str]] = LRUCache(size)  # response event -> (room, poll start)
        self._ending: dict[str, polls.PollEnd] = {}  # an end from Element being decided by the core
        self._warned_encrypted: set[str] = set()
        self._ignored_invites: LRUCache[str, None] = LRUCache(size)

    @property
    def _state(self) -> AdapterState:
        """Per-post and per-poll items (controls, reactions, poll ends), cleaned up with their meeting or poll."""
        return self._store.adapter_state(PLATFORM)

    # running ---------------------------------------------------------------------------------------
    async def serve(self, dispatch: Dispatch) -> None:
        """Log in, then sync and handle events until cancelled; an outage is retried with backoff."""
        self._dispatch = dispatch
        try:
            await self._retrying("log in", self._login)
            await self._load_dms()
            await self._load_handled()
            token = await self._store.get_state(PLATFORM, "sync_token")
            first = True
            delay = self._backoff[0]
            while True:
                try:
                    resp = await self._sync(token, 0 if first else self._sync_timeout_ms)
                    step = asyncio.create_task(self._step(resp, token, first), name="matrix-handle-sync")
                    try:
                        await asyncio.shield(step)
                    except asyncio.CancelledError:
                        # Stopping: finish the sync in hand (answers sent, token saved) so nothing runs twice
                        # and no write is cut in half; then stop.
                        await asyncio.wait({step}, timeout=STOP_GRACE)
                        step.cancel()
                        raise
                    token, first = resp.next_batch, False
                    self.ready.set()
                    delay = self._backoff[0]
                except FatalMatrixError:
                    raise
                except (MatrixError, aiohttp.ClientError, TimeoutError) as e:
                    log.warning("matrix: cannot reach the homeserver (%s); retrying in %.1f s", e, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                except NotStored as e:
                    # The database failed: the sync position stays where it was, so the events not stored come
                    # again with the next sync (those handled already are skipped).
                    log.warning("matrix: could not store what a sync brought (%s); keeping the sync position and "
                                "retrying in %.1f s", e, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                except Exception:
                    # A bug, not an outage: the events handled so far are marked, so the retry moves past it.
                    log.exception("matrix: handling a sync failed; retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
        finally:
            for fut in self._waiters.values():
                fut.cancel()
            self._waiters.clear()
            await self.client.close()

    async def _step(self, resp: SyncResponse, since: str | None, first: bool) -> None:
        """Handle one sync response, then keep its token."""
        await self._handle_sync(resp, since)
        await self._store.set_state(PLATFORM, "sync_token", resp.next_batch)
        if first:
            await self._after_first_sync()

    async def _retrying(self, what: str, step: Callable[[], Awaitable[None]]) -> None:
        delay = self._backoff[0]
        while True:
            try:
                await step()
                return
            except FatalMatrixError:
                raise
            except (MatrixError, aiohttp.ClientError, TimeoutError) as e:
                log.warning("matrix: %s failed (%s); retrying in %.1f s", what, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])

    async def _login(self) -> None:
        if self._token:
            self.client.restore_login(self.user_id, self.settings.device_id, self._token)
            return
        resp = await self.client.login(self._password, device_name="circlebot")
        if not isinstance(resp, LoginResponse):
            status = getattr(resp, "status_code", "")
            if status in ("M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_PARAM"):
                raise FatalMatrixError(f"the homeserver refused the bot's password login ({status})")
            _check(resp, LoginResponse, "log in")

    async def _sync(self, token: str | None, timeout_ms: int) -> SyncResponse:
        resp = await self.client.sync(timeout=timeout_ms, sync_filter=SYNC_FILTER, since=token)
        if isinstance(resp, SyncError) and resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise FatalMatrixError(f"the homeserver refused the bot's access token ({resp.status_code})")
        return _check(resp, SyncResponse, "sync")

    async def _after_first_sync(self) -> None:
        joined = set(_check(await self.client.joined_rooms(), JoinedRoomsResponse, "list joined rooms").rooms)
        for room_id in self._rooms:
            if room_id not in joined:
                log.warning("matrix: not in the configured room %s yet; invite %s to it", room_id, self.user_id)
                continue
            resp = await self.client.room_get_state_event(room_id, "m.room.encryption")
            if isinstance(resp, RoomGetStateEventResponse) and resp.content.get("algorithm"):
                self._warn_encrypted(room_id)
        await self._read_back_open_polls()

    def _warn_encrypted(self, room_id: str) -> None:
        if room_id in self._warned_encrypted:
            return
        self._warned_encrypted.add(room_id)
        log.warning("matrix: room %s is end-to-end encrypted; circlebot cannot read encrypted rooms and will not "
                    "see anything said there. Use a room without encryption for the circle.", room_id)

    # waiting (for tests and benchmarks) -------------------------------------------------------------
    async def processed(self, event_id: str) -> None:
        """Wait until the event `event_id` has been handled (its command answered, its vote stored)."""
        if event_id in self._seen:
            return
        fut = self._waiters.get(event_id)
        if fut is None:
            fut = self._waiters[event_id] = asyncio.get_running_loop().create_future()
        await asyncio.shield(fut)

    def _done(self, event_id: str) -> None:
        self._seen[event_id] = None
        while len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        fut = self._waiters.pop(event_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    # reading a sync --------------------------------------------------------------------------------
    async def _handle_sync(self, resp: SyncResponse, since: str | None) -> None:
        for room_id, invited in resp.rooms.invite.items():
            await self._on_invite(room_id, invited.invite_state)
        for room_id in resp.rooms.leave:
            self._forget_dm_room(room_id)
        for room_id, info in resp.rooms.join.items():
            for ev in info.state:
                self._note_state(room_id, _source(ev))
            events = [s for s in (_source(e) for e in info.timeline.events) if s]
            if since is None:  # the very first start: history, not commands
                for src in events:
                    self._note_state(room_id, src)
                    if (eid := src.get("event_id")) and isinstance(eid, str):
                        self._done(eid)
                continue
            if info.timeline.limited and info.timeline.prev_batch:
                events = await self._backfill(room_id, info.timeline.prev_batch, since) + events
            await self._process_room(room_id, _after_own_join(events, self.user_id))

    async def _on_invite(self, room_id: str, state: Sequence[Any] = ()) -> None:
        if room_id not in self._rooms and not self.settings.accept_invites and await self._direct_from_member(state):
            resp = await self.client.join(room_id)
            if isinstance(resp, JoinResponse):  # a member's direct room: they may vote unseen from it
                sender = next(str(e.sender) for e in state if getattr(e, "state_key", None) == self.user_id)
                self._dms[sender] = room_id
                self._dm_rooms.add(room_id)
                await self._store.set_state(PLATFORM, "dm_rooms", json.dumps(self._dms))
                log.info("matrix: joined the direct room %s opened by %s", room_id, sender)
                return
        if room_id in self._rooms or self.settings.accept_invites:
            resp = await self.client.join(room_id)
            if isinstance(resp, JoinResponse):
                log.info("matrix: joined %s on invitation", room_id)
            elif room_id not in self._ignored_invites:  # e.g. the invitation was withdrawn; not retried
                self._ignored_invites[room_id] = None
                log.warning("matrix: could not join %s: %s %s", room_id, getattr(resp, "status_code", ""),
                            getattr(resp, "message", ""))
        elif room_id not in self._ignored_invites:
            self._ignored_invites[room_id] = None
            log.info("matrix: ignoring an invitation to %s, which is not a configured room", room_id)

    async def _direct_from_member(self, state: Sequence[Any]) -> bool:
        """Whether an invitation is to a direct room, from someone who is in one of the circles' rooms."""
        mine = next((e for e in state if getattr(e, "state_key", None) == self.user_id
                     and getattr(e, "membership", None) == "invite"), None)
        content = getattr(mine, "content", None)
        if mine is None or not isinstance(content, dict) or content.get("is_direct") is not True:
            return False
        sender = str(getattr(mine, "sender", ""))
        if sender in self._dms:
            return False  # one direct room a member: the one the bot knows stays
        for room_id in self._rooms:
            resp = await self.client.room_get_state_event(room_id, "m.room.member", sender)
            if isinstance(resp, RoomGetStateEventResponse) and resp.content.get("membership") == "join":
                return True
        return False

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]]:
        """The events a limited sync left out, oldest first: ``/messages`` backwards from the sync's start to
        the previous sync token."""
        older: list[dict[str, Any]] = []
        start = prev_batch
        for _ in range(_BACKFILL_PAGES):
            resp = _check(
                await self.client.room_messages(room_id, start=start, end=since, direction=MessageDirection.back,
                                                limit=100),
                RoomMessagesResponse, f"back-fill {room_id}",
            )
            older.extend(s for s in (_source(e) for e in resp.chunk) if s)
            if not resp.chunk or not resp.end or resp.end == start:
                break
            start = resp.end
        else:
            log.warning("matrix: back-filling %s stopped after %d pages", room_id, _BACKFILL_PAGES)
        log.info("matrix: a sync of %s was limited; back-filled %d event(s)", room_id, len(older))
        older.reverse()
        return older

    def _note_state(self, room_id: str, src: Mapping[str, Any]) -> None:
        """Keep the caches that state events invalidate (power levels, names, encryption) current."""
        kind = src.get("type")
        if "state_key" not in src:
            return
        if kind in ("m.room.power_levels", "m.room.create"):
            self._standing.pop(room_id, None)
        elif kind == "m.room.member":
            content = src.get("content") or {}
            name = content.get("displayname")
            key = src.get("state_key")
            if isinstance(key, str) and isinstance(name, str) and content.get("membership") == "join":
                self._names[(room_id, key)] = name
            if (isinstance(key, str) and content.get("membership") in ("leave", "ban") and room_id in self._dm_rooms
                    and self._dms.get(key) == room_id):
                self._forget_dm_room(room_id)
        elif kind == "m.room.encryption" and room_id in self._rooms:
            self._warn_encrypted(room_id)

    async def _process_room(self, room_id: str, events: Sequence[dict[str, Any]]) -> None:
        pending = _PendingVotes()
        for src in events:
            eid = src.get("event_id")
            if not isinstance(eid, str) or eid in self._seen:
                continue
            if "state_key" in src:
                self._note_state(room_id, src)
                self._done(eid)
                continue
            kind = src.get("type")
            sender = src.get("sender")
            if sender == self.user_id:
                if (end := polls.parse_end(src)) is not None:
                    await self._note_poll_end(end)
                self._done(eid)
                continue
            if kind in polls.RESPONSE_TYPES:
                response = polls.parse_response(src)
                if response is not None:
                    pending.responses.append((room_id, response))
                    continue  # done once stored
                self._done(eid)
                continue
            if pending.responses:
                await self._flush_votes(pending)
            try:
                if kind == "m.room.message":
                    await self._on_message(room_id, src)
                elif kind == "m.reaction":
                    await self._on_reaction(room_id, src)
                elif kind == "m.room.redaction":
                    await self._on_redaction(room_id, src)
                elif kind == "m.room.encrypted" and room_id in self._rooms:
                    self._warn_encrypted(room_id)
                elif kind in polls.END_TYPES and room_id in self._rooms:
                    await self._on_foreign_end(room_id, src)
            except (MatrixError, aiohttp.ClientError, TimeoutError, NotStored):
                raise  # the homeserver is away, or the database: the event is not marked, the sync comes again
            except Exception as e:
                if storage_failed(e):  # the adapter's own records (a reaction, a command) could not be kept
                    raise NotStored(str(e)) from e
                log.exception("matrix: could not handle event %s in %s; skipped", eid, room_id)
            self._done(eid)
        if pending.responses:
            await self._flush_votes(pending)

    # commands --------------------------------------------------------------------------------------
    async def _on_message(self, room_id: str, src: Mapping[str, Any]) -> None:
        command = parse_command(src, self.prefix)
        if command is None or (room_id not in self._rooms and room_id not in self._dm_rooms):
            return
        event_id, sender = command.event_id, command.sender
        if self._dispatch is None or event_id in self._commands:
            return
        await self._remember_command(event_id)
        authority = Authority()
        if room_id in self._rooms:
            try:
                authority = Authority(power_level=(await self._room_standing(room_id)).level(sender))
            except MatrixError as e:
                log.warning("matrix: cannot read the power levels of %s (%s)", room_id, e)
        inv = Invocation(
            user=UserRef(PLATFORM, sender, await self._display_name(room_id, sender)),
            channel=ChannelRef(PLATFORM, room_id),
            at=command.at,
            text=command.text,
            authority=authority,
            handle=_Handle(room_id, event_id, command.thread_root),
            direct=room_id not in self._rooms,
        )
        await self._dispatch(inv)

    async def _on_foreign_end(self, room_id: str, src: Mapping[str, Any]) -> None:
        """Someone ended one of our polls in their client: it counts if they may redact others' events."""
        end = polls.parse_end(src)
        if end is None or self._dispatch is None:
            return
        standing = await self._room_standing(room_id)
        level = standing.level(end.sender)
        if level >= standing.redact:  # clients honour this end (MSC3381): if the core closes the poll, it stands
            self._ending[end.start_id] = end
        user = UserRef(PLATFORM, end.sender, await self._display_name(room_id, end.sender))
        try:
            await self._dispatch(PollEndCast(user, _ts(end.ts), MessageRef(ChannelRef(PLATFORM, room_id),
                                                                           end.start_id),
                                             Authority(power_level=level)))
        finally:
            self._ending.pop(end.start_id, None)

    async def _remember_command(self, event_id: str) -> None:
        """Note a command as handled before running it. The sync token is saved after a whole sync is handled;
        if the bot stops in between, the sync comes again and this keeps its commands from running twice."""
        self._commands[event_id] = None
        while len(self._commands) > _COMMANDS_KEPT:
            self._commands.popitem(last=False)
        await self._store.set_state(PLATFORM, "handled_commands", json.dumps(list(self._commands)))

    async def _load_handled(self) -> None:
        value = await self._store.get_state(PLATFORM, "handled_commands")
        self._commands = OrderedDict.fromkeys(json.loads(value)) if value else OrderedDict()

    async def _room_standing(self, room_id: str) -> _Standing:
        """Who outranks whom in a room: power levels, and the creators of a room version 12+ above them all."""
        cached = self._standing.get(room_id)
        if cached is not None:
            return cached
        state = _check(await self.client.room_get_state(room_id), RoomGetStateResponse, f"read the state of {room_id}")
        creators: set[str] = set()
        content: Mapping[str, Any] = {}
        for ev in state.events:
            if ev.get("type") == "m.room.create" and ev.get("state_key") == "":
                create = ev.get("content") or {}
                if str(create.get("room_version", "1")) not in _OLD_ROOM_VERSIONS:  # MSC4289
                    creators.add(str(ev.get("sender")))
                    creators.update(u for u in create.get("additional_creators", []) if isinstance(u, str))
            elif ev.get("type") == "m.room.power_levels" and ev.get("state_key") == "":
                content = ev.get("content") or {}
        users = {str(u): v for u, v in (content.get("users") or {}).items() if isinstance(v, int)}
        default = content.get("users_default", 0)
        redact = content.get("redact", 50)
        standing = _Standing(frozenset(creators), users, default if isinstance(default, int) else 0,
                             redact if isinstance(redact, int) else 50)
        self._standing[room_id] = standing
        return standing

    async def _get_json(self, path: str) -> dict[str, Any]:
        resp = await self.client.send("GET", path, headers={"Authorization": f"Bearer {self.client.access_token}"})
        try:
            body = await resp.json(content_type=None)
        finally:
            resp.release()
        if resp.status != 200 or not isinstance(body, dict):
            raise MatrixError(f"GET {path.split('?')[0]} failed: {resp.status}")
        return body

    async def _display_name(self, room_id: str, user_id: str) -> str:
        name = self._names.get((room_id, user_id))
        if name is not None:
            return name
        resp = await self.client.room_get_state_event(room_id, "m.room.member", user_id)
        name = ""
        if isinstance(resp, RoomGetStateEventResponse):
            value = resp.content.get("displayname")
            name = value if isinstance(value, str) else ""
        self._names[(room_id, user_id)] = name
        return name

    # votes -----------------------------------------------------------------------------------------
    async def _note_poll_end(self, end: polls.PollEnd) -> None:
        known = await self._poll_end(end.start_id)
        if known is None or end.ts < known:
            self._poll_ends[end.start_id] = end.ts
            await self._state.put("poll_end", end.start_id, str(end.ts), poll_message=end.start_id)

    async def _poll_end(self, start_id: str) -> int | None:
        if start_id not in self._poll_ends:
            value = await self._state.get("poll_end", start_id)
            self._poll_ends[start_id] = int(value) if value else None
        return self._poll_ends.get(start_id)

    async def _flush_votes(self, pending: _PendingVotes) -> None:
        """Store gathered responses: per poll and user only the latest counts; those after the end are ignored."""
        by_poll: dict[tuple[str, str], list[polls.PollResponse]] = {}
        for room_id, r in pending.responses:
            by_poll.setdefault((room_id, r.start_id), []).append(r)
        casts: list[VoteCast] = []
        for (room_id, start_id), responses in by_poll.items():
            end = await self._poll_end(start_id)
            for r in responses:
                self._responses[r.event_id] = (room_id, start_id)
            for r in polls.latest_per_user(responses, end).values():
                name = self._names.get((room_id, r.sender), "")
                casts.append(VoteCast(UserRef(PLATFORM, r.sender, name), r.answers, _ts(r.ts),
                                      message=MessageRef(ChannelRef(PLATFORM, room_id), start_id)))
        try:
            await self._cast(casts)  # NotStored: not marked, so the sync comes again with them
            for _, r in pending.responses:
                self._done(r.event_id)
        finally:
            pending.responses.clear()

    async def _cast(self, casts: Sequence[VoteCast]) -> None:
        if self._dispatch is not None and casts:
            await self._dispatch(list(casts))  # a batch: the core stores the lot in one transaction

    async def _read_back_open_polls(self) -> None:
        """Count the votes of every open poll from its relations: what came while the bot was away counts."""
        for circle in sorted({r.circle for r in self._rooms.values()}):
            for poll in await self._store.polls(circle, open_only=True, limit=100):
                for ref in await self._store.poll_messages(poll.id):
                    if ref.channel.platform == PLATFORM:
                        try:
                            await self._read_back(ref.channel.id, ref.id)
                        except MatrixError as e:
                            log.warning("matrix: cannot read back the votes of poll %d (%s)", poll.id, e)

    async def _read_back(self, room_id: str, start_id: str) -> None:
        """Set the poll's Matrix ballots to what its relations hold now: each user's latest response before its
        end. Synapse drops a redacted response from the relations, so a redaction gives back the one before."""
        events: list[dict[str, Any]] = []
        since: str | None = None
        complete = False
        for _ in range(_BACKFILL_PAGES):
            method, path = Api.room_get_event_relations(self.client.access_token, room_id, start_id,
                                                        RelationshipType.reference, None, MessageDirection.back,
                                                        since, None, 100)
            resp = _check(await self.client._send(RoomEventRelationsResponse, method, path,
                                                  response_data=(room_id, start_id)),
                          RoomEventRelationsResponse, f"read the relations of {start_id}")
            events.extend(s for s in (_source(e) for e in resp.events) if s)
            if not resp.next_batch:
                complete = True
                break
            since = resp.next_batch
        events.reverse()
        for src in events:
            end = polls.parse_end(src)
            if end is not None and end.sender == self.user_id:
                await self._note_poll_end(end)
        responses = [r for src in events if (r := polls.parse_response(src)) is not None]
        for r in responses:
            self._responses[r.event_id] = (room_id, start_id)
        ref = MessageRef(ChannelRef(PLATFORM, room_id), start_id)
        latest = polls.latest_per_user(responses, await self._poll_end(start_id))
        ballots = tuple(VoteCast(UserRef(PLATFORM, r.sender, self._names.get((room_id, r.sender), "")), r.answers,
                                 _ts(r.ts), message=ref) for r in latest.values())
        log.info("matrix: read back %d response(s) to poll %s", len(responses), start_id)
        if not complete:  # too many to read back: count what was read, withdraw nothing
            log.warning("matrix: read back only the latest %d responses to poll %s", len(responses), start_id)
            await self._cast(ballots)
        elif self._dispatch is not None:
            await self._dispatch(PollReadBack(ref, ballots, datetime.now(UTC), timed=True))

    async def _on_response_redacted(self, room_id: str, event_id: str) -> None:
        """If the redacted event was a poll response, read the poll back: the user's previous response counts
        again (as MSC3381 and Element have it), or none if it was their only one."""
        known = self._responses.get(event_id)
        if known is not None:
            await self._read_back(*known)
            return
        resp = await self.client.room_get_event(room_id, event_id)  # not remembered: is it a response at all?
        if not isinstance(resp, RoomGetEventResponse) or resp.event.source.get("type") not in polls.RESPONSE_TYPES:
            return
        room = self._rooms.get(room_id)
        if room is None:
            return
        for poll in await self._store.polls(room.circle, open_only=True, limit=100):
            for ref in await self._store.poll_messages(poll.id):
                if ref.channel == ChannelRef(PLATFORM, room_id):
                    await self._read_back(room_id, ref.id)

    # reactions -------------------------------------------------------------------------------------
    async def _post_controls(self, event_id: str) -> tuple[int | None, frozenset[Control]] | None:
        if event_id in self._controls:
            return self._controls[event_id]
        value = await self._state.get("controls", event_id)
        parsed: tuple[int | None, frozenset[Control]] | None = None
        if value:
            data = json.loads(value)
            parsed = (data.get("meeting"), frozenset(Control(c) for c in data.get("controls", [])))
        self._controls[event_id] = parsed
        return parsed

    async def _on_reaction(self, room_id: str, src: Mapping[str, Any]) -> None:
        reaction = parse_reaction(src)
        if reaction is None:
            return
        target, key, sender, at = reaction.target, reaction.key, reaction.sender, reaction.at
        controls = await self._post_controls(target)
        if controls is None or self._dispatch is None:
            return
        meeting_id, kinds = controls
        user = UserRef(PLATFORM, sender, await self._display_name(room_id, sender))
        message = MessageRef(ChannelRef(PLATFORM, room_id), target)
        if Control.RSVP in kinds and key in RSVP_KEYS:
            await self._state.put("reaction", reaction.event_id,
                                  json.dumps({"target": target, "sender": sender, "key": key}), meeting_id=meeting_id)
            await self._dispatch(RsvpCast(user, RSVP_KEYS[key], at, meeting_id=meeting_id, message=message))
        elif Control.CHECK_IN in kinds and (Control.RSVP not in kinds or key == CHECK_IN_KEY):
            await self._dispatch(CheckInCast(user, at, meeting_id=meeting_id, message=message))

    async def _on_redaction(self, room_id: str, src: Mapping[str, Any]) -> None:
        redaction = parse_redaction(src)
        if redaction is None or self._dispatch is None:
            return
        redacts, at = redaction
        value = await self._state.get("reaction", redacts)
        if not value:
            await self._on_response_redacted(room_id, redacts)
            return
        data = json.loads(value)
        target, sender = str(data["target"]), str(data["sender"])
        controls = await self._post_controls(target)
        meeting_id = controls[0] if controls else None
        remaining = await self._rsvp_reactions_left(room_id, target, sender, redacts)
        user = UserRef(PLATFORM, sender, await self._display_name(room_id, sender))
        await self._dispatch(RsvpCast(user, remaining, at,
                                      meeting_id=meeting_id, message=MessageRef(ChannelRef(PLATFORM, room_id), target)))
        await self._state.delete("reaction", redacts)  # forgotten once its change is stored

    async def _rsvp_reactions_left(self, room_id: str, target: str, sender: str, gone: str) -> RsvpAnswer | None:
        """The answer of the user's latest RSVP reaction still on the post, if any."""
        path = (f"/_matrix/client/v1/rooms/{_q(room_id)}/relations/{_q(target)}/m.annotation/m.reaction"
                "?dir=b&limit=100")
        body = await self._get_json(path)
        for ev in body.get("chunk", []):  # newest first
            rel = (ev.get("content") or {}).get("m.relates_to") or {}
            key = str(rel.get("key", "")).replace("\ufe0f", "")
            if ev.get("sender") == sender and ev.get("event_id") != gone and key in RSVP_KEYS:
                return RSVP_KEYS[key]
        return None

    # sending ---------------------------------------------------------------------------------------
    def _zone_of(self, room_id: str) -> ZoneInfo:
        room = self._rooms.get(room_id)
        return room.zone if room else self._zone

    async def _send_event(self, room_id: str, kind: str, content: dict[str, Any], txn: str | None = None) -> str:
        """Send one event; with a transaction id, a repeat (same device, same id) returns the first event."""
        resp = await self.client.room_send(room_id, kind, content, tx_id=txn, ignore_unverified_devices=True)
        return _check(resp, RoomSendResponse, f"send {kind} to {room_id}").event_id  # type: ignore[no-any-return]

    def _contents(self, text: str, post: Post, relates: dict[str, Any] | None,
                  extra: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        notify = post.notify
        mentions = [u for u in post.mentions if u.platform == PLATFORM]
        out: list[dict[str, Any]] = []
        pending = split_text(text, CHUNK_CHARS) or [""]
        while pending:
            chunk = pending.pop(0)
            head_plain = head_html = ""
            if mentions and not out:
                head_plain = ", ".join(u.display for u in mentions) + ": "
                head_html = ", ".join(
                    f'<a href="https://matrix.to/#/{_html_attr(u.id)}">{_html_text(u.display)}</a>' for u in mentions
                ) + ": "
            content: dict[str, Any] = {
                "msgtype": "m.text" if notify else "m.notice",
                "body": head_plain + plain_text(chunk),
                "format": "org.matrix.custom.html",
                "formatted_body": head_html + to_html(chunk),
                "m.mentions": {"user_ids": [u.id for u in mentions]} if notify and mentions else {},
            }
            if relates:
                content["m.relates_to"] = relates
            if extra:
                content.update(extra)
            if len(json.dumps(content, ensure_ascii=False).encode()) > MAX_CONTENT_BYTES and len(chunk) > 100:
                pending[:0] = split_text(chunk, max(100, len(chunk) // 2))
                continue
            out.append(content)
        return out

    async def _send_post(self, room_id: str, post: Post, zone: ZoneInfo, relates: dict[str, Any] | None = None,
                         extra: Mapping[str, Any] | None = None, key: str | None = None) -> list[str]:
        if post.thread_of is not None and relates is None:
            relates = {"rel_type": "m.thread", "event_id": post.thread_of.id, "is_falling_back": True,
                       "m.in_reply_to": {"event_id": post.thread_of.id}}
        text = named_markdown(post.content, zone, self.prefix)
        return [await self._send_event(room_id, "m.room.message", c, _txn(key, f"chunk{i}"))
                for i, c in enumerate(self._contents(text, post, relates, extra))]

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Post into a room; a post with RSVP or check-in controls gets the reaction keys to click.

        With `key`, every event of the post (its chunks, its reactions) goes with a transaction id derived from
        it, so sending the post again after a crash returns the events already in the room and adds what was
        missing (Synapse remembers transaction ids for a day: `dedup_window`)."""
        ids = await self._send_post(where.id, post, self._zone_of(where.id), key=key)
        ref = MessageRef(where, ids[0])
        if post.controls:
            data = {"meeting": post.meeting_id, "controls": [c.value for c in post.controls]}
            await self._state.put("controls", ref.id, json.dumps(data), meeting_id=post.meeting_id)
            self._controls[ref.id] = (post.meeting_id, frozenset(post.controls))
            keys = [*(RSVP_OFFERED if Control.RSVP in post.controls else ()),
                    *((CHECK_IN_KEY,) if Control.CHECK_IN in post.controls else ())]
            for reaction in keys:
                await self._react(where.id, ref.id, reaction, _txn(key, f"react{reaction}"))
        return ref

    async def _react(self, room_id: str, event_id: str, key: str, txn: str | None = None) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self._send_event(room_id, "m.reaction", content, txn)

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        """Answer a command with a notice replying to it; a private answer goes by direct message."""
        handle = to.handle if isinstance(to.handle, _Handle) else None
        zone = self._zone_of(to.channel.id)
        if handle is None:
            await self._send_post(to.channel.id, post, zone)
            return
        if private and self._dms.get(to.user.id) != handle.room_id:
            dm = await self._dm_room(to.user.id)
            reply_to = {REPLY_TO_KEY: {"room_id": handle.room_id, "event_id": handle.event_id}}
            await self._send_post(dm, post, zone, extra=reply_to)
            await self._react(handle.room_id, handle.event_id, PRIVATE_MARK)
            return
        relates: dict[str, Any] = {"m.in_reply_to": {"event_id": handle.event_id}}
        if handle.thread_root:
            relates.update(rel_type="m.thread", event_id=handle.thread_root, is_falling_back=False)
        await self._send_post(handle.room_id, post, zone, relates=relates)

    async def _load_dms(self) -> None:
        value = await self._store.get_state(PLATFORM, "dm_rooms")
        self._dms = dict(json.loads(value)) if value else {}
        self._dm_rooms = set(self._dms.values())

    def _forget_dm_room(self, room_id: str) -> None:
        if room_id in self._dm_rooms:
            self._dm_rooms.discard(room_id)
            self._dms = {u: r for u, r in self._dms.items() if r != room_id}

    async def _dm_room(self, user_id: str) -> str:
        """The direct-message room with `user_id`, created (and remembered) on first use."""
        room = self._dms.get(user_id)
        if room is not None:
            return room
        lock = self._dm_locks.setdefault(user_id, asyncio.Lock())  # held only while a room is being opened
        try:
            async with lock:
                room = self._dms.get(user_id)
                if room is not None:
                    return room
                resp = _check(await self.client.room_create(is_direct=True, invite=[user_id],
                                                            preset=RoomPreset.trusted_private_chat),
                              RoomCreateResponse, "create a direct-message room")
                room = str(resp.room_id)
                self._dms[user_id] = room
                self._dm_rooms.add(room)
                await self._store.set_state(PLATFORM, "dm_rooms", json.dumps(self._dms))
                log.info("matrix: opened a direct-message room with %s", user_id)
                return room
        finally:
            if not lock.locked():
                self._dm_locks.pop(user_id, None)

    # polls -----------------------------------------------------------------------------------------
    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        """Start an MSC3381 poll (disclosed, or undisclosed for a secret poll)."""
        zone = self._zone_of(where.id)
        lines: list[Text | str] = [f"Poll #{poll.id}: {poll.question}"]
        lines += [f"{i}. {a}" for i, a in enumerate(poll.answers, 1)]
        rules = poll.rules("results are shown when it closes (hidden by your client, not by the server)")
        how = poll.vote_hint or f"{self.prefix}vote {poll.id} <n>"
        lines.append("(" + rules + f") Vote here, or with {how}")
        if poll.secret:
            lines.append(f"To vote unseen, send {how} to me in a direct message (invite me to a direct chat).")
        fallback = Text.join("\n", lines).render(time=lambda t: named_time(t, zone), command=lambda c: c.words)
        question = poll.question + (" (secret until it closes)" if poll.secret else "")
        content = polls.start_content(poll, question, poll.answers, fallback)
        return MessageRef(where, await self._send_event(where.id, polls.START_UNSTABLE, content))

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        """End the poll with its results; responses after the end no longer count."""
        if await self._poll_end(ref.id) is not None:
            return  # ended in Matrix already: the core posts the results
        ending = self._ending.get(ref.id)
        if ending is not None:  # ended in Element by an organiser whose end clients honour: it is the end
            await self._note_poll_end(ending)
            return
        body = plain_text(text)
        end_id = await self._send_event(ref.channel.id, polls.END_UNSTABLE, polls.end_content(ref.id, body))
        resp = await self.client.room_get_event(ref.channel.id, end_id)
        if isinstance(resp, RoomGetEventResponse):
            ts = resp.event.source.get("origin_server_ts")
            if isinstance(ts, int):
                await self._note_poll_end(polls.PollEnd(end_id, self.user_id, ref.id, ts))


# helpers --------------------------------------------------------------------------------------------
def _source(event: Any) -> dict[str, Any]:
    src = getattr(event, "source", None)
    return src if isinstance(src, dict) else {}


def _after_own_join(events: Sequence[dict[str, Any]], me: str) -> Sequence[dict[str, Any]]:
    """Drop what happened in a room before the bot joined it (history is not a command)."""
    cut = 0
    for i, src in enumerate(events):
        if src.get("type") == "m.room.member" and src.get("state_key") == me:
            content = src.get("content") or {}
            prev = ((src.get("unsigned") or {}).get("prev_content") or {}).get("membership")
            if content.get("membership") == "join" and prev != "join":
                cut = i + 1
    return events[cut:]


def _txn(key: str | None, part: str) -> str | None:
    """The transaction id of one event of the send keyed `key` (None: nio picks a random one)."""
    return None if key is None else "circlebot." + idempotency_token(key, part, 40)


def _q(part: str) -> str:
    return quote(part, safe="")


def _html_text(text: str) -> str:
    return html.escape(text, quote=False)


def _html_attr(text: str) -> str:
    return html.escape(text, quote=True)


def rooms_from_settings(settings: Settings) -> dict[str, MatrixRoom]:
    """Every configured Matrix room with its circle and the circle's zone."""
    return {room: MatrixRoom(c.slug, settings.zone_of(c)) for c in settings.circles for room in c.where.matrix_rooms}


def adapter_from_settings(settings: Settings, store: Store, env: Mapping[str, str] | None = None) -> MatrixAdapter:
    """Build the adapter from the config; the secret comes from the environment variable the config names."""
    m = settings.matrix
    if m is None:
        raise ValueError("there is no [matrix] table in the config")
    env = os.environ if env is None else env
    token = env.get(m.access_token_env) if m.access_token_env else None
    password = env.get(m.password_env) if m.password_env else None
    if not (token or password):
        names = " or ".join(n for n in (m.access_token_env, m.password_env) if n)
        raise ValueError(f"the Matrix credentials are missing: set the environment variable {names}")
    return MatrixAdapter(m, store, rooms_from_settings(settings), access_token=token, password=password,
                         default_zone=ZoneInfo(settings.timezone))


__all__ = [
    "CHECK_IN_KEY",
    "PRIVATE_MARK",
    "REPLY_TO_KEY",
    "RSVP_KEYS",
    "SYNC_FILTER",
    "FatalMatrixError",
    "MatrixAdapter",
    "MatrixError",
    "MatrixRoom",
    "adapter_from_settings",
    "client_config",
    "rooms_from_settings",
]


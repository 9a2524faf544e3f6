"""A loopback fake of Discord's REST API and gateway for tests.

The real, unmodified discord.py client runs against it.  The fake is an ``aiohttp.web`` server on
127.0.0.1 (random port) that speaks Discord's documented JSON payloads: login, the gateway (HELLO,
IDENTIFY/READY/GUILD_CREATE, heartbeats, RESUME with replay, RECONNECT), application commands,
messages (with ``nonce`` + ``enforce_nonce``), threads, polls and votes, interactions (slash commands,
autocomplete, components) with their callbacks and follow-ups, and 429 rate limits and 503 outages on demand.

discord.py is pointed at it only through its two documented process-wide knobs,
``discord.http.Route.BASE`` and ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``
(see :meth:`FakeDiscord.installed` and the :func:`fake_discord` fixture).

Typical use::

    from fakediscord import FakeDiscord, fake_discord_fixture, make_client, running_client  # noqa: F401

    async def test_x(fake_discord: FakeDiscord) -> None:
        guild = fake_discord.add_guild("Circle")
        chan = guild.add_text_channel("general")
        alice = fake_discord.add_member(guild, "alice", permissions=MANAGE_GUILD)
        client = make_client()
        async with running_client(fake_discord, client):
            await fake_discord.post_message(alice, chan, "hello")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import discord
import discord.gateway
import discord.http
import pytest_asyncio
import yarl
from aiohttp import WSMsgType, web

T = TypeVar("T")
JSON = dict[str, Any]

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = "/api/v10"
DEFAULT_TIMEOUT = 5.0
NONCE_MAX_CHARS = 25  # Create Message: "nonce? integer or string ... (up to 25 characters)"
NONCE_WINDOW = 300.0  # enforce_nonce: "checked for uniqueness in the past few minutes" (seconds; the fake's choice)

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
MANAGE_ROLES = 1 << 28
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
SEND_POLLS = 1 << 49
MANAGE_EVENTS = 1 << 33
CREATE_EVENTS = 1 << 44
ALL_PERMISSIONS = (1 << 51) - 1

#: What @everyone gets in a new fake guild.
DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
    | SEND_POLLS
)
#: What the bot's own managed role gets by default (on top of @everyone).
DEFAULT_BOT_PERMISSIONS = DEFAULT_EVERYONE_PERMISSIONS | MANAGE_MESSAGES | MANAGE_THREADS | MENTION_EVERYONE

# Gateway intents (https://discord.com/developers/docs/events/gateway#list-of-intents).
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_MESSAGE_CONTENT = 1 << 15
INTENT_GUILD_MESSAGE_POLLS = 1 << 24
INTENT_GUILD_SCHEDULED_EVENTS = 1 << 16
INTENT_DIRECT_MESSAGE_POLLS = 1 << 25
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Gateway opcodes.
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

# Interaction types and callback types.
INTERACTION_PING = 1
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_MESSAGE_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

CALLBACK_MESSAGE = 4
CALLBACK_DEFERRED_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE = 8
CALLBACK_MODAL = 9

FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

_OPTION_SUB_COMMAND = 1
_OPTION_SUB_COMMAND_GROUP = 2

_MENTION_USER = re.compile(r"<@!?(\d+)>")
_MENTION_ROLE = re.compile(r"<@&(\d+)>")

_GUILD_EVENTS = {
    "GUILD_CREATE",
    "GUILD_UPDATE",
    "GUILD_DELETE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "CHANNEL_PINS_UPDATE",
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
    "THREAD_LIST_SYNC",
    "THREAD_MEMBER_UPDATE",
}
_MEMBER_EVENTS = {"GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE", "THREAD_MEMBERS_UPDATE"}
_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
_REACTION_EVENTS = {
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
}
_POLL_EVENTS = {"MESSAGE_POLL_VOTE_ADD", "MESSAGE_POLL_VOTE_REMOVE"}
_CONTENT_FIELDS = ("content", "embeds", "attachments", "components", "poll")


def _now_iso() -> str:
    """Return the current UTC time in Discord's ISO 8601 form."""
    return datetime.now(UTC).isoformat()


def required_intent(event: str, data: JSON) -> int | None:
    """Return the intent bit Discord requires for a dispatch, or None if it is always sent."""
    in_guild = data.get("guild_id") is not None
    if event.startswith("GUILD_SCHEDULED_EVENT_"):
        return INTENT_GUILD_SCHEDULED_EVENTS
    if event in _GUILD_EVENTS:
        return INTENT_GUILDS
    if event in _MEMBER_EVENTS:
        return INTENT_GUILD_MEMBERS
    if event in _MESSAGE_EVENTS:
        return INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES
    if event in _REACTION_EVENTS:
        return INTENT_GUILD_MESSAGE_REACTIONS if in_guild else INTENT_DIRECT_MESSAGE_REACTIONS
    if event in _POLL_EVENTS:
        return INTENT_GUILD_MESSAGE_POLLS if in_guild else INTENT_DIRECT_MESSAGE_POLLS
    return None


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


class SnowflakeGenerator:
    """Generates increasing Discord-style snowflakes (timestamp in the top bits)."""

    def __init__(self) -> None:
        """Start with an empty counter."""
        self._last = 0

    def __call__(self) -> int:
        """Return a fresh snowflake, strictly greater than any returned before."""
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        value = max(value, self._last + 1)
        self._last = value
        return value

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """A fresh snowflake whose guild would be on this shard: (id >> 22) % shard_count == shard_id."""
        value = self()
        ms = value >> 22
        ms += (shard_id - ms) % shard_count
        value = max(value, ms << 22)
        self._last = value
        return value


@dataclass
class FakeUser:
    """A Discord user (a human or the bot)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def to_dict(self) -> JSON:
        """Return the user object payload."""
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }

    @property
    def mention(self) -> str:
        """Return ``<@id>``."""
        return f"<@{self.id}>"


@dataclass
class FakeRole:
    """A guild role; the @everyone role has the guild's id."""

    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def to_dict(self) -> JSON:
        """Return the role object payload."""
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }

    @property
    def mention(self) -> str:
        """Return ``<@&id>``."""
        return f"<@&{self.id}>"


@dataclass
class FakeChannel:
    """A guild text channel (type 0) or public thread (type 11)."""

    id: int
    guild_id: int
    name: str
    type: int = 0
    position: int = 0
    parent_id: int | None = None
    owner_id: int | None = None
    topic: str | None = None
    auto_archive_duration: int = 1440
    created_at: str = field(default_factory=_now_iso)

    @property
    def is_thread(self) -> bool:
        """True for thread channels (types 10, 11, 12)."""
        return self.type in (10, 11, 12)

    def to_dict(self) -> JSON:
        """Return the channel object payload."""
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.is_thread:
            data.update(
                owner_id=str(self.owner_id),
                message_count=0,
                member_count=1,
                total_message_sent=0,
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": self.created_at,
                    "locked": False,
                    "create_timestamp": self.created_at,
                },
            )
        else:
            data.update(position=self.position, permission_overwrites=[], nsfw=False, topic=self.topic)
        return data

    @property
    def mention(self) -> str:
        """Return ``<#id>``."""
        return f"<#{self.id}>"


@dataclass
class FakeMember:
    """A user's membership of a guild."""

    user: FakeUser
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=_now_iso)

    @property
    def id(self) -> int:
        """The user's id."""
        return self.user.id

    def to_dict(self, *, with_user: bool = True) -> JSON:
        """Return the guild member payload (optionally without ``user``, as in messages)."""
        data: JSON = {
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r) for r in self.roles],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.to_dict()
        return data


@dataclass
class FakeGuild:
    """A guild with roles, channels, threads and members."""

    id: int
    name: str
    owner_id: int
    _fake: FakeDiscord = field(repr=False)
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    threads: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    joined_at: str = field(default_factory=_now_iso)

    @property
    def everyone(self) -> FakeRole:
        """The @everyone role (same id as the guild)."""
        return self.roles[self.id]

    def add_role(self, name: str, permissions: int = 0) -> FakeRole:
        """Create a role (dispatches GUILD_ROLE_CREATE to connected clients)."""
        role = FakeRole(self._fake.snowflake(), self.id, name, permissions, position=len(self.roles))
        self.roles[role.id] = role
        self._fake.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(self.id), "role": role.to_dict()})
        return role

    def add_text_channel(self, name: str, *, topic: str | None = None) -> FakeChannel:
        """Create a text channel (dispatches CHANNEL_CREATE to connected clients)."""
        chan = FakeChannel(self._fake.snowflake(), self.id, name, 0, position=len(self.channels), topic=topic)
        self.channels[chan.id] = chan
        self._fake.dispatch("CHANNEL_CREATE", chan.to_dict())
        return chan

    def permissions_for(self, user_id: int) -> int:
        """Guild-level permissions of a member (owner and administrators get everything)."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        perms = self.everyone.permissions
        if member is not None:
            for rid in member.roles:
                role = self.roles.get(rid)
                if role is not None:
                    perms |= role.permissions
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def create_payload(self, *, include_all_members: bool) -> JSON:
        """The GUILD_CREATE payload.

        Without GUILD_PRESENCES Discord sends only the bot's own member (clients then chunk).
        """
        bot_id = self._fake.bot.id
        members = [m.to_dict() for m in self.members.values() if include_all_members or m.id == bot_id]
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "features": [],
            "roles": [r.to_dict() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "joined_at": self.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "members": members,
            "channels": [c.to_dict() for c in self.channels.values()],
            "threads": [t.to_dict() for t in self.threads.values()],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass
class FakePoll:
    """Server-side poll state of one message."""

    message_id: int
    channel_id: int
    guild_id: int | None
    question: JSON
    answers: list[JSON]
    allow_multiselect: bool
    layout_type: int
    expiry: datetime
    finalized: bool = False
    votes: dict[int, list[int]] = field(default_factory=dict)  # answer_id -> user ids in vote order

    def to_dict(self) -> JSON:
        """The message's ``poll`` object (with ``results``)."""
        return {
            "question": self.question,
            "answers": self.answers,
            "expiry": self.expiry.isoformat(),
            "allow_multiselect": self.allow_multiselect,
            "layout_type": self.layout_type,
            "results": {
                "is_finalized": self.finalized,
                "answer_counts": [
                    {"id": aid, "count": len(users), "me_voted": False} for aid, users in self.votes.items() if users
                ],
            },
        }


@dataclass
class RecordedRequest:
    """One REST request the fake received."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any
    status: int = 0
    authorized: bool = False
    files: dict[int, FakeUpload] = field(default_factory=dict)  # multipart `files[n]` parts, by n


@dataclass(frozen=True)
class FakeUpload:
    """One `files[n]` part of a multipart/form-data request (discord-api-docs, Reference, Uploading Files)."""

    filename: str
    content_type: str
    data: bytes


UPLOAD_LIMIT = 10 * 1024 * 1024  # "The default limit is 10 MiB" per file


@dataclass
class FakeInteraction:
    """An interaction the fake sent, with everything the client answered."""

    id: int
    token: str
    type: int
    payload: JSON
    channel_id: int | None
    guild_id: int | None
    user_id: int
    _fake: FakeDiscord = field(repr=False)
    callbacks: list[JSON] = field(default_factory=list)  # bodies of POST .../callback
    original: JSON | None = None  # the original response message (after type 4/5/7)
    original_edits: list[JSON] = field(default_factory=list)  # PATCH bodies on @original
    original_deleted: bool = False
    followups: list[JSON] = field(default_factory=list)  # follow-up messages (message objects)

    @property
    def responded(self) -> bool:
        """True once the client has answered the callback."""
        return bool(self.callbacks)

    @property
    def response(self) -> JSON | None:
        """The callback body ``{type, data}``, or None."""
        return self.callbacks[0] if self.callbacks else None

    async def wait_response(self, timeout: float = DEFAULT_TIMEOUT) -> JSON:  # noqa: ASYNC109
        """Wait for the interaction callback and return its body ``{"type": ..., "data": ...}``."""
        return await self._fake.wait_for(lambda: self.response, timeout=timeout)

    async def wait_followups(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> list[JSON]:  # noqa: ASYNC109
        """Wait until ``count`` follow-up messages exist and return them (message objects)."""
        return await self._fake.wait_for(
            lambda: list(self.followups) if len(self.followups) >= count else None, timeout=timeout
        )

    async def wait_original_edit(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> JSON:  # noqa: ASYNC109
        """Wait for ``count`` edits of the original response; return the original message."""
        await self._fake.wait_for(lambda: len(self.original_edits) >= count, timeout=timeout)
        assert self.original is not None
        return self.original


@dataclass
class _Conn:
    """One gateway websocket connection."""

    ws: web.WebSocketResponse
    path: str
    queue: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue)
    session: _Session | None = None


# events that, without a guild_id, are about a direct message (sent to shard 0 only)
_DM_EVENTS = frozenset({
    "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK", "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE", "MESSAGE_REACTION_REMOVE_ALL", "MESSAGE_REACTION_REMOVE_EMOJI", "CHANNEL_CREATE",
    "CHANNEL_UPDATE", "CHANNEL_DELETE", "CHANNEL_PINS_UPDATE", "TYPING_START", "MESSAGE_POLL_VOTE_ADD",
    "MESSAGE_POLL_VOTE_REMOVE",
})


@dataclass
class _Session:
    """A gateway session (survives disconnects until the client closes cleanly)."""

    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    history: list[JSON] = field(default_factory=list)
    conn: _Conn | None = None
    alive: bool = True


@dataclass
class _RateLimit:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    retry_after: float
    is_global: bool


class FakeDiscordError(Exception):
    """A REST error answered with a Discord error body."""

    def __init__(self, status: int, message: str, code: int = 0) -> None:
        """Build an error with HTTP status, message and Discord JSON error code."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


# --------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------

Handler = Callable[..., Awaitable[Any]]


class FakeDiscord:
    """Loopback fake of Discord (REST + gateway). See the module docstring."""

    def __init__(
        self,
        *,
        token: str = "fake-bot-token",
        bot_name: str = "circlebot",
        heartbeat_interval_ms: int = 41250,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        enabled_privileged_intents: int = PRIVILEGED_INTENTS,
    ) -> None:
        """Create the fake (not started): the application, its bot user and no guilds.

        ``enabled_privileged_intents`` mimics the developer-portal toggles: IDENTIFY asking for a
        privileged intent not in it is closed with 4014 (discord.py raises PrivilegedIntentsRequired).
        """
        self.snowflake = SnowflakeGenerator()
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.bot_permissions = bot_permissions
        self.enabled_privileged_intents = enabled_privileged_intents
        self.app_id = self.snowflake()
        self.bot = FakeUser(self.app_id, bot_name, None, bot=True)
        self.owner = FakeUser(self.snowflake(), "app-owner")
        self.users: dict[int, FakeUser] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.messages: dict[int, list[JSON]] = {}  # channel id -> messages in order
        self.message_index: dict[int, JSON] = {}  # message id -> message
        self.attachment_data: dict[int, bytes] = {}  # attachment id -> the uploaded bytes
        self.polls: dict[int, FakePoll] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.requests: list[RecordedRequest] = []
        self.unknown_requests: list[RecordedRequest] = []
        self.errors: list[str] = []  # internal errors of the fake (should stay empty)
        self.gateway_received: list[JSON] = []  # every frame clients sent on the gateway
        self.sessions: dict[str, _Session] = {}
        self.identify_count = 0
        self.vote_events = 0  # MESSAGE_POLL_VOTE_ADD/REMOVE dispatched so far
        self.resume_count = 0
        self.gateway_paths: list[str] = []  # URL path of every gateway connection, in order
        self._conns: list[_Conn] = []
        self._rate_limits: list[_RateLimit] = []
        self._outages: list[tuple[str, re.Pattern[str]]] = []
        self._nonces: dict[tuple[int, str], tuple[float, int]] = {}  # (author, nonce) -> (monotonic, message id)
        self.nonce_window = NONCE_WINDOW
        self.dm_channels: dict[int, int] = {}  # user id -> the bot's DM channel with them
        self.dm_recipients: dict[int, int] = {}  # DM channel id -> its user
        self.refusing_dms: set[int] = set()  # users who do not take DMs from the bot (50007)
        self._dm_retry_after = 0.01
        self.failing_dms: dict[int, int] = {}  # user id -> the status (503 or 429) their DMs are answered with
        self.recommended_shards = 1  # GET /gateway/bot's "shards"
        self.message_delay = 0.0  # seconds the fake takes to create a message (a slow platform)
        self.scheduled_events: dict[int, JSON] = {}  # guild scheduled event id -> the event object
        self._channel_cursor: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._gate = asyncio.Event()
        self._gate.set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._build_routes()

    # ---------------------------------------------------------------- lifecycle

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (as a yarl.URL)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """The ``resume_gateway_url`` sent in READY (a distinct path, so tests can see it used)."""
        return f"ws://127.0.0.1:{self.port}/resume-gateway"

    async def start(self) -> None:
        """Start the server on 127.0.0.1 with a random port."""
        app = web.Application(client_max_size=4 * UPLOAD_LIMIT)  # bodies with files, as Discord takes them
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_get("/resume-gateway", self._gateway_handler)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest_handler)
        app.router.add_route("*", "/{tail:.*}", self._rest_handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close every gateway connection and stop the server."""
        self._gate.set()
        for conn in list(self._conns):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeDiscord]:
        """Point discord.py's two process-wide knobs at this fake; restore them on exit."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ---------------------------------------------------------------- waiting

    def _bump(self) -> None:
        """Wake every waiter (state changed)."""
        ev = self._changed
        self._changed = asyncio.Event()
        ev.set()

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = DEFAULT_TIMEOUT) -> T:  # noqa: ASYNC109
        """Wait until ``predicate()`` returns something truthy; return it (TimeoutError after ``timeout``).

        The predicate may read fake state or client-side state (e.g. a list a handler appends to).
        """

        async def _loop() -> T:
            while True:
                ev = self._changed
                result = predicate()
                if result:
                    return result
                # Wake on fake-side changes at once; poll every 5 ms for client-side state.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), 0.005)

        return await asyncio.wait_for(_loop(), timeout)

    async def next_message(
        self,
        channel: FakeChannel | int,
        *,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> JSON:
        """Return the next not-yet-consumed message posted in ``channel`` (waiting for it).

        Each channel has a read cursor: successive calls return successive messages. With a
        ``predicate`` non-matching messages are skipped (and consumed).  Ephemeral interaction
        responses are not channel messages.
        """
        cid = _id(channel)

        def _find() -> JSON | None:
            msgs = self.messages.get(cid, [])
            pos = self._channel_cursor.get(cid, 0)
            while pos < len(msgs):
                msg = msgs[pos]
                pos += 1
                if predicate is None or predicate(msg):
                    self._channel_cursor[cid] = pos
                    return msg
            return None

        return await self.wait_for(_find, timeout=timeout)

    def channel_messages(self, channel: FakeChannel | int) -> list[JSON]:
        """All messages stored for a channel, oldest first."""
        return list(self.messages.get(_id(channel), []))

    async def wait_resumed(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> None:  # noqa: ASYNC109
        """Wait until ``count`` RESUMEs have been answered in total."""
        await self.wait_for(lambda: self.resume_count >= count, timeout=timeout)

    async def wait_identified(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> None:  # noqa: ASYNC109
        """Wait until ``count`` IDENTIFYs have been answered in total."""
        await self.wait_for(lambda: self.identify_count >= count, timeout=timeout)

    # ---------------------------------------------------------------- state factories

    def add_user(self, username: str, *, global_name: str | None = None, bot: bool = False) -> FakeUser:
        """Create a user (not a member of any guild)."""
        user = FakeUser(self.snowflake(), username, global_name, bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Study Circle", *, owner: FakeUser | None = None,
                  shard: tuple[int, int] | None = None) -> FakeGuild:
        """Create a guild with @everyone, the bot as member (with its managed role), and an owner; with
        ``shard=(shard_id, shard_count)``, its id puts it on that shard (Discord's sharding formula).

        If clients are connected they get GUILD_CREATE (a guild join) on the guild's shard.
        """
        gid = self.snowflake.on_shard(*shard) if shard is not None else self.snowflake()
        owner = owner or self.add_user(f"{name.lower().replace(' ', '-')}-owner")
        guild = FakeGuild(gid, name, owner.id, self)
        guild.roles[gid] = FakeRole(gid, gid, "@everyone", DEFAULT_EVERYONE_PERMISSIONS, 0)
        bot_role = FakeRole(self.snowflake(), gid, self.bot.username, self.bot_permissions, 1, managed=True)
        guild.roles[bot_role.id] = bot_role
        guild.members[owner.id] = FakeMember(owner, gid)
        guild.members[self.bot.id] = FakeMember(self.bot, gid, [bot_role.id])
        self.guilds[gid] = guild
        for session in self._live_sessions():
            self._send_to(session, "GUILD_CREATE", self._guild_create_for(guild, session))
        return guild

    def add_member(
        self,
        guild: FakeGuild,
        user: FakeUser | str,
        *,
        roles: list[FakeRole] | None = None,
        permissions: int | None = None,
        nick: str | None = None,
    ) -> FakeMember:
        """Add a user (or a new user with this name) to a guild.

        ``permissions`` creates a role ``perm:<username>`` with those bits and gives it to the member,
        so that member permissions always come from roles, as on Discord.  Dispatches GUILD_MEMBER_ADD.
        """
        if isinstance(user, str):
            user = self.add_user(user)
        role_ids = [r.id for r in roles or []]
        if permissions is not None:
            role = guild.add_role(f"perm:{user.username}", permissions)
            role_ids.append(role.id)
        member = FakeMember(user, guild.id, role_ids, nick)
        guild.members[user.id] = member
        self.dispatch("GUILD_MEMBER_ADD", {**member.to_dict(), "guild_id": str(guild.id)})
        return member

    def set_roles(self, member: FakeMember, roles: list[FakeRole]) -> None:
        """Give a member exactly these roles (an admin's change in Server Settings); dispatches
        GUILD_MEMBER_UPDATE (`guild_id`, `roles`, `user`, ...), which only sessions with GUILD_MEMBERS get."""
        member.roles = [r.id for r in roles]
        self.dispatch("GUILD_MEMBER_UPDATE", {**member.to_dict(), "guild_id": str(member.guild_id)})

    def remove_member(self, member: FakeMember) -> None:
        """A member leaves (or is kicked from) their guild; dispatches GUILD_MEMBER_REMOVE (`guild_id`, `user`),
        which only sessions with GUILD_MEMBERS get."""
        self.guilds[member.guild_id].members.pop(member.id, None)
        self.dispatch("GUILD_MEMBER_REMOVE", {"guild_id": str(member.guild_id), "user": member.user.to_dict()})

    def find_channel(self, channel_id: int) -> tuple[FakeGuild, FakeChannel] | None:
        """Find a channel or thread by id."""
        for guild in self.guilds.values():
            chan = guild.channels.get(channel_id) or guild.threads.get(channel_id)
            if chan is not None:
                return guild, chan
        return None

    def channel_permissions(self, guild: FakeGuild, channel: FakeChannel, user_id: int) -> int:
        """Permissions of a user in a channel (no overwrites in this fake)."""
        del channel
        return guild.permissions_for(user_id)

    def get_message(self, message_id: int) -> JSON:
        """The stored message (KeyError if unknown)."""
        return self.message_index[message_id]

    # ---------------------------------------------------------------- rate limits and assertions

    def rate_limit(
        self,
        method: str,
        path_regex: str,
        *,
        count: int = 1,
        retry_after: float = 0.05,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``count`` requests matching ``method`` and ``path_regex`` (fullmatch against
        the path without ``/api/v10``, e.g. ``r"/channels/\\d+/messages"``) with 429."""
        rl = _RateLimit(method.upper(), re.compile(path_regex), count, retry_after, is_global)
        self._rate_limits.append(rl)

    def outage(self, method: str = "*", path_regex: str = r".*") -> None:
        """Answer every request matching ``method`` (``*``: any) and ``path_regex`` with 503 Service
        Unavailable until :meth:`end_outage` (discord.py raises DiscordServerError on a 503 without retrying)."""
        self._outages.append((method.upper(), re.compile(path_regex)))

    def fail_dms(self, user: FakeUser | FakeMember | int, status: int = 503, retry_after: float = 0.01) -> None:
        """Answer every message to the user's DM channel with ``status`` until :meth:`mend_dms`: 503 Service
        Unavailable (Discord's "5xx: the server had an error processing your request"; discord.py raises
        DiscordServerError without retrying), or 429 with Discord's rate-limit body and headers (``Via`` set,
        so discord.py waits ``retry_after`` and tries again, up to its five tries, then raises)."""
        if status not in (429, 503):
            raise ValueError(f"fail_dms answers 429 or 503, not {status}")
        self.failing_dms[_id(user)] = status
        self._dm_retry_after = retry_after

    def mend_dms(self, user: FakeUser | FakeMember | int) -> None:
        """Take the user's DMs again."""
        self.failing_dms.pop(_id(user), None)

    def end_outage(self) -> None:
        """Answer normally again."""
        self._outages.clear()

    def find_requests(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path fullmatches ``path_regex``."""
        pat = re.compile(path_regex)
        return [r for r in self.requests if r.method == method.upper() and pat.fullmatch(r.path)]

    def assert_clean(self) -> None:
        """Assert the client hit no unknown route and the fake had no internal error."""
        assert not self.unknown_requests, [f"{r.method} {r.path}" for r in self.unknown_requests]
        assert not self.errors, self.errors

    # ---------------------------------------------------------------- gateway dispatch

    def _live_sessions(self) -> list[_Session]:
        return [s for s in self.sessions.values() if s.alive]

    @staticmethod
    def on_session_shard(session: _Session, guild_id: int | None) -> bool:
        """Whether a session gets a guild's events (``guild_id`` None: a direct message): a session that
        IDENTIFYed with ``shard: [shard_id, num_shards]`` gets the guilds with (guild_id >> 22) % num_shards ==
        shard_id, and direct messages only on shard 0 (discord-api-docs, Gateway: Sharding)."""
        if not session.shard or int(session.shard[1]) <= 1:
            return True
        shard_id, num_shards = int(session.shard[0]), int(session.shard[1])
        if guild_id is None:
            return shard_id == 0
        return (guild_id >> 22) % num_shards == shard_id

    def _filter_for(self, session: _Session, event: str, data: JSON) -> JSON | None:
        """Apply shards and intents: None if the session must not get the event, else the (maybe stripped)
        data."""
        if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"):
            if not self.on_session_shard(session, int(data["id"])):
                return None
        elif data.get("guild_id") is not None:
            if not self.on_session_shard(session, int(data["guild_id"])):
                return None
        elif event in _DM_EVENTS and not self.on_session_shard(session, None):
            return None  # a direct message's events (no guild) go to shard 0; READY and the like to every one
        need = required_intent(event, data)
        if need is not None and not session.intents & need:
            return None
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not session.intents & INTENT_MESSAGE_CONTENT:
            author_id = int(data.get("author", {}).get("id", 0))
            mentioned = any(int(u["id"]) == self.bot.id for u in data.get("mentions", []))
            if author_id != self.bot.id and data.get("guild_id") is not None and not mentioned:
                data = dict(data)
                for key in _CONTENT_FIELDS:
                    if key in data:
                        data[key] = "" if key == "content" else []
                data.pop("poll", None)
        return data

    def _send_to(self, session: _Session, event: str, data: JSON) -> None:
        """Sequence a dispatch for one session and send it (or keep it for a RESUME)."""
        filtered = self._filter_for(session, event, data)
        if filtered is None:
            return
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": filtered}
        session.history.append(frame)
        if session.conn is not None:
            session.conn.queue.put_nowait(frame)

    def dispatch(self, event: str, data: JSON) -> None:
        """Send a dispatch to every live session, filtered by its intents."""
        for session in self._live_sessions():
            self._send_to(session, event, data)
        self._bump()

    def _guild_create_for(self, guild: FakeGuild, session: _Session) -> JSON:
        return guild.create_payload(include_all_members=bool(session.intents & INTENT_GUILD_PRESENCES))

    async def force_reconnect(self) -> int:
        """Send RECONNECT (op 7) on every connected session and detach it at once.

        Dispatches made after this call are kept for the client's RESUME.  Returns how many
        sessions were told to reconnect.
        """
        n = 0
        for session in self._live_sessions():
            conn = session.conn
            if conn is None:
                continue
            conn.queue.put_nowait({"op": OP_RECONNECT, "d": None})
            session.conn = None
            conn.session = None
            n += 1
        self._bump()
        return n

    async def drop_connections(self, code: int = 4000) -> int:
        """Close every gateway socket from the server side (sessions stay resumable)."""
        n = 0
        for conn in list(self._conns):
            if conn.session is not None:
                conn.session.conn = None
                conn.session = None
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code)
            n += 1
        self._bump()
        return n

    async def invalidate_sessions(self, *, resumable: bool = False) -> None:
        """Send INVALID_SESSION (op 9) to every connected session."""
        for session in self._live_sessions():
            if session.conn is not None:
                session.conn.queue.put_nowait({"op": OP_INVALID_SESSION, "d": resumable})
            if not resumable:
                session.alive = False

    def hold_gateway(self) -> None:
        """New gateway connections wait (before HELLO) until :meth:`release_gateway`."""
        self._gate.clear()

    def release_gateway(self) -> None:
        """Let held gateway connections proceed."""
        self._gate.set()

    async def _writer(self, conn: _Conn) -> None:
        while True:
            frame = await conn.queue.get()
            if frame is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(json.dumps(frame))
            except Exception:
                return

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _gateway_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = _Conn(ws, request.path)
        self._conns.append(conn)
        self.gateway_paths.append(request.path)
        writer = self._spawn(self._writer(conn))
        try:
            await self._gate.wait()
            conn.queue.put_nowait({"op": OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                    self.gateway_received.append(frame)
                    await self._on_gateway_frame(conn, frame)
                except Exception as exc:
                    self.errors.append(f"gateway: {exc!r}")
        finally:
            session = conn.session
            if session is not None:
                session.conn = None
                if ws.close_code in (1000, 1001):
                    session.alive = False  # a clean close ends the session, as on Discord
            conn.queue.put_nowait(None)
            if conn in self._conns:
                self._conns.remove(conn)
            writer.cancel()
            self._bump()
        return ws

    async def _on_gateway_frame(self, conn: _Conn, frame: JSON) -> None:
        op = frame.get("op")
        d = frame.get("d")
        if op == OP_HEARTBEAT:
            conn.queue.put_nowait({"op": OP_HEARTBEAT_ACK})
        elif op == OP_IDENTIFY:
            await self._identify(conn, d)
        elif op == OP_RESUME:
            self._resume(conn, d)
        elif op == OP_REQUEST_MEMBERS:
            self._request_members(conn, d)
        self._bump()

    async def _identify(self, conn: _Conn, d: JSON) -> None:
        if d.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(d.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.enabled_privileged_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard = d.get("shard")
        if shard is not None and (len(shard) != 2 or not 0 <= int(shard[0]) < int(shard[1])):
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = _Session(secrets.token_hex(16), intents, shard)
        self.sessions[session.id] = session
        session.conn = conn
        conn.session = session
        self.identify_count += 1
        ready: JSON = {
            "v": 10,
            "user": {**self.bot.to_dict(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self.guilds
                       if self.on_session_shard(session, gid)],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "_trace": ["fakediscord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        self._send_to(session, "READY", ready)
        for guild in self.guilds.values():
            self._send_to(session, "GUILD_CREATE", self._guild_create_for(guild, session))

    def _resume(self, conn: _Conn, d: JSON) -> None:
        session = self.sessions.get(str(d.get("session_id")))
        if session is None or not session.alive or d.get("token") != self.token:
            conn.queue.put_nowait({"op": OP_INVALID_SESSION, "d": False})
            return
        seq = int(d.get("seq") or 0)
        if session.conn is not None:
            session.conn.session = None
        session.conn = conn
        conn.session = session
        for frame in session.history:
            if frame["s"] > seq:
                conn.queue.put_nowait(frame)
        self.resume_count += 1
        self._send_to(session, "RESUMED", {"_trace": ["fakediscord"]})

    def _request_members(self, conn: _Conn, d: JSON) -> None:
        session = conn.session
        if session is None:
            return
        guild = self.guilds.get(int(d["guild_id"]))
        members: list[JSON] = []
        not_found: list[str] = []
        if guild is not None and session.intents & INTENT_GUILD_MEMBERS:
            wanted = d.get("user_ids")
            query = (d.get("query") or "").lower()
            limit = int(d.get("limit") or 0)
            for m in guild.members.values():
                if wanted is not None and str(m.id) not in {str(u) for u in wanted}:
                    continue
                if query and not m.user.username.lower().startswith(query):
                    continue
                members.append(m.to_dict())
            if limit:
                members = members[:limit]
            if wanted is not None:
                found = {m["user"]["id"] for m in members}
                not_found = [str(u) for u in wanted if str(u) not in found]
        chunk: JSON = {
            "guild_id": str(d["guild_id"]),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        self._send_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ---------------------------------------------------------------- messages

    def _resolve_mentions(self, guild: FakeGuild | None, content: str, allowed: JSON | None) -> JSON:
        parse = set(allowed.get("parse", [])) if allowed is not None else {"users", "roles", "everyone"}
        allowed_users = {int(u) for u in (allowed or {}).get("users", [])}
        allowed_roles = {int(r) for r in (allowed or {}).get("roles", [])}
        users: list[JSON] = []
        for uid in dict.fromkeys(int(x) for x in _MENTION_USER.findall(content)):
            if ("users" in parse or uid in allowed_users) and uid in self.users:
                udata = self.users[uid].to_dict()
                if guild is not None and uid in guild.members:
                    udata["member"] = guild.members[uid].to_dict(with_user=False)
                users.append(udata)
        roles = [
            str(rid)
            for rid in dict.fromkeys(int(x) for x in _MENTION_ROLE.findall(content))
            if ("roles" in parse or rid in allowed_roles) and guild is not None and rid in guild.roles
        ]
        everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
        return {"mentions": users, "mention_roles": roles, "mention_everyone": everyone}

    def _validate_poll(self, poll: JSON) -> None:
        question = (poll.get("question") or {}).get("text") or ""
        answers = poll.get("answers") or []
        duration = float(poll.get("duration", 24))
        problems = []
        if not question or len(question) > 300:
            problems.append("question must be 1-300 characters")
        if not 1 <= len(answers) <= 10:
            problems.append("a poll needs 1-10 answers")
        for a in answers:
            text = (a.get("poll_media") or {}).get("text") or ""
            if not text or len(text) > 55:
                problems.append("answers must be 1-55 characters")
        if not 1 <= duration <= 768:
            problems.append("duration must be 1-768 hours")
        if problems:
            raise FakeDiscordError(400, "Invalid Form Body: " + "; ".join(problems), 50035)

    def create_message(
        self,
        channel: FakeChannel | int,
        author: FakeUser,
        body: JSON,
        *,
        ephemeral: bool = False,
        dispatch: bool = True,
        webhook_id: int | None = None,
        extra_flags: int = 0,
        files: Mapping[int, FakeUpload] | None = None,
    ) -> JSON:
        """Store a message from a payload like discord.py's (content, embeds, components, poll,
        allowed_mentions, message_reference, flags, attachments with their uploaded `files`) and dispatch
        MESSAGE_CREATE unless ephemeral."""
        cid = _id(channel)
        attachments = self._attachments(cid, body, files or {}, ephemeral=ephemeral)
        found = self.find_channel(cid)
        guild = found[0] if found else None
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        components = body.get("components") or []
        poll = body.get("poll")
        if not (content or embeds or components or poll or body.get("sticker_ids") or attachments):
            raise FakeDiscordError(400, "Cannot send an empty message", 50006)
        if len(content) > 2000:
            raise FakeDiscordError(400, "Invalid Form Body: content must be 2000 or fewer in length.", 50035)
        if poll is not None:
            self._validate_poll(poll)
        mid = self.snowflake()
        flags = int(body.get("flags") or 0) | extra_flags
        if ephemeral:
            flags |= FLAG_EPHEMERAL
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(cid),
            "author": author.to_dict(),
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "attachments": attachments,
            "embeds": embeds,
            "reactions": [],
            "pinned": False,
            "type": 0,
            "flags": flags,
            "components": components,
            "nonce": body.get("nonce"),
            **self._resolve_mentions(guild, content, body.get("allowed_mentions")),
        }
        if guild is not None:
            msg["guild_id"] = str(guild.id)
            if author.id in guild.members:
                msg["member"] = guild.members[author.id].to_dict(with_user=False)
        if webhook_id is not None:
            msg["webhook_id"] = str(webhook_id)
            msg["application_id"] = str(self.app_id)
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            msg["type"] = 19
            msg["message_reference"] = {
                "type": ref.get("type", 0),
                "message_id": str(ref["message_id"]),
                "channel_id": str(ref.get("channel_id") or cid),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
            referenced = self.message_index.get(int(ref["message_id"]))
            if referenced is None and ref.get("fail_if_not_exists", True):
                raise FakeDiscordError(400, "Invalid Form Body: Unknown message", 50035)
            msg["referenced_message"] = referenced
        if poll is not None:
            answers = [
                {"answer_id": i, "poll_media": a.get("poll_media", {})}
                for i, a in enumerate(poll.get("answers", []), start=1)
            ]
            state = FakePoll(
                message_id=mid,
                channel_id=cid,
                guild_id=guild.id if guild else None,
                question=poll.get("question", {}),
                answers=answers,
                allow_multiselect=bool(poll.get("allow_multiselect")),
                layout_type=int(poll.get("layout_type", 1)),
                expiry=datetime.now(UTC) + timedelta(hours=float(poll.get("duration", 24))),
            )
            self.polls[mid] = state
            msg["poll"] = state.to_dict()
        self.message_index[mid] = msg
        if not ephemeral:
            self.messages.setdefault(cid, []).append(msg)
            if dispatch:
                self.dispatch("MESSAGE_CREATE", msg)
        self._bump()
        return msg

    def _attachments(self, channel_id: int, body: JSON, files: Mapping[int, FakeUpload], *,
                     ephemeral: bool) -> list[JSON]:
        """The attachment objects of a message from its uploaded `files[n]` parts: each entry of the payload's
        `attachments` names its part by `id` (the placeholder n), with an optional filename and description;
        a part no entry names is attached too. An entry naming no part, or a part over the upload limit, is an
        error, as on Discord."""
        entries = [a for a in body.get("attachments") or [] if isinstance(a, Mapping)]
        named: set[int] = set()
        out: list[JSON] = []
        for entry in entries:
            try:
                n = int(entry.get("id"))
            except (TypeError, ValueError):
                raise FakeDiscordError(400, "Invalid Form Body: attachments: id must be a snowflake", 50035) from None
            upload = files.get(n)
            if upload is None:
                raise FakeDiscordError(400, f"Invalid Form Body: attachments: no files[{n}] uploaded", 50035)
            named.add(n)
            out.append(self._attachment(channel_id, upload, entry, ephemeral=ephemeral))
        out += [self._attachment(channel_id, u, {}, ephemeral=ephemeral) for n, u in sorted(files.items())
                if n not in named]
        return out

    def _attachment(self, channel_id: int, upload: FakeUpload, entry: Mapping[str, Any], *,
                    ephemeral: bool) -> JSON:
        if len(upload.data) > UPLOAD_LIMIT:
            raise FakeDiscordError(413, "Request entity too large", 40005)
        aid = self.snowflake()
        filename = str(entry.get("filename") or upload.filename)
        self.attachment_data[aid] = upload.data
        att: JSON = {
            "id": str(aid),
            "filename": filename,
            "size": len(upload.data),
            "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{aid}/{filename}",
            "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{aid}/{filename}",
            # Discord names the media type itself (discord.py sends every part as application/octet-stream)
            "content_type": mimetypes.guess_type(filename)[0] or upload.content_type,
        }
        if entry.get("description"):
            att["description"] = str(entry["description"])
        if ephemeral:
            att["ephemeral"] = True
        return att

    def edit_message(self, message_id: int, body: JSON, *, dispatch: bool = True,
                     files: Mapping[int, FakeUpload] | None = None) -> JSON:
        """Apply an edit (content, embeds, components, flags, allowed_mentions, attachments with newly
        uploaded `files`); dispatch MESSAGE_UPDATE."""
        msg = self.message_index[message_id]
        if "attachments" in body or files:
            ephemeral = bool(int(msg["flags"]) & FLAG_EPHEMERAL)
            kept = {str(a.get("id")) for a in body.get("attachments") or [] if isinstance(a, Mapping)}
            old = [a for a in msg.get("attachments") or [] if a["id"] in kept]
            new_entries = [a for a in body.get("attachments") or []
                           if isinstance(a, Mapping) and str(a.get("id")) not in {x["id"] for x in old}]
            msg["attachments"] = old + self._attachments(int(msg["channel_id"]), {"attachments": new_entries},
                                                         files or {}, ephemeral=ephemeral)
        if "poll" in body and body["poll"] is not None:
            raise FakeDiscordError(400, "Cannot edit a poll", 50035)
        for key in ("content", "embeds", "components"):
            if key in body:
                msg[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        if "flags" in body and body["flags"] is not None:
            msg["flags"] = (int(msg["flags"]) & (FLAG_EPHEMERAL | FLAG_LOADING)) | int(body["flags"])
        if "content" in body:
            guild = self.guilds.get(int(msg["guild_id"])) if msg.get("guild_id") else None
            msg.update(self._resolve_mentions(guild, msg["content"], body.get("allowed_mentions")))
        msg["edited_timestamp"] = _now_iso()
        if dispatch and not int(msg["flags"]) & FLAG_EPHEMERAL:
            self.dispatch("MESSAGE_UPDATE", msg)
        self._bump()
        return msg

    def _refresh_poll(self, message_id: int) -> JSON:
        msg = self.message_index[message_id]
        msg["poll"] = self.polls[message_id].to_dict()
        return msg

    async def post_message(
        self,
        user: FakeUser | FakeMember,
        channel: FakeChannel | int,
        content: str,
        **body: Any,
    ) -> JSON:
        """A user posts a message (MESSAGE_CREATE, filtered by each session's intents)."""
        author = user.user if isinstance(user, FakeMember) else user
        return self.create_message(channel, author, {"content": content, **body})

    # ---------------------------------------------------------------- polls (user side)

    async def vote(self, user: FakeUser | FakeMember, message: JSON | int, answer_id: int) -> None:
        """A user votes for an answer (dispatches MESSAGE_POLL_VOTE_ADD)."""
        self._vote(user, message, answer_id, add=True)

    async def unvote(self, user: FakeUser | FakeMember, message: JSON | int, answer_id: int) -> None:
        """A user removes a vote (dispatches MESSAGE_POLL_VOTE_REMOVE)."""
        self._vote(user, message, answer_id, add=False)

    def _vote(self, user: FakeUser | FakeMember, message: JSON | int, answer_id: int, *, add: bool) -> None:
        uid = _id(user)
        if uid == self.bot.id:
            raise ValueError("bots cannot vote")
        mid = _message_id(message)
        poll = self.polls[mid]
        if poll.finalized:
            raise ValueError("poll has ended")
        if answer_id not in {a["answer_id"] for a in poll.answers}:
            raise ValueError(f"unknown answer {answer_id}")
        voters = poll.votes.setdefault(answer_id, [])
        if add:
            if uid in voters:
                return
            if not poll.allow_multiselect:
                for other, users in poll.votes.items():
                    if other != answer_id and uid in users:
                        self._vote(user, mid, other, add=False)
            voters.append(uid)
        else:
            if uid not in voters:
                return
            voters.remove(uid)
        self._refresh_poll(mid)
        event: JSON = {
            "user_id": str(uid),
            "channel_id": str(poll.channel_id),
            "message_id": str(mid),
            "answer_id": answer_id,
        }
        if poll.guild_id is not None:
            event["guild_id"] = str(poll.guild_id)
        self.vote_events += 1
        self.dispatch("MESSAGE_POLL_VOTE_ADD" if add else "MESSAGE_POLL_VOTE_REMOVE", event)

    def end_poll(self, message: JSON | int) -> JSON:
        """End a poll now: finalize results and dispatch MESSAGE_UPDATE."""
        mid = _message_id(message)
        poll = self.polls[mid]
        if poll.finalized:
            raise FakeDiscordError(400, "This poll has already expired.", 520001)
        poll.finalized = True
        poll.expiry = datetime.now(UTC)
        msg = self._refresh_poll(mid)
        self.dispatch("MESSAGE_UPDATE", msg)
        return msg

    # ---------------------------------------------------------------- interactions (user side)

    def find_command(self, guild: FakeGuild | None, name: str, type_: int = 1) -> JSON:
        """The registered command with this top-level name (guild commands first, then global)."""
        candidates = list(self.guild_commands.get(guild.id, [])) if guild else []
        candidates += self.global_commands
        for cmd in candidates:
            if cmd["name"] == name and int(cmd.get("type", 1)) == type_:
                return cmd
        raise LookupError(f"command {name!r} is not registered (did the client sync its tree?)")

    def _interaction_base(
        self, itype: int, user: FakeUser | FakeMember, channel: FakeChannel | int, locale: str
    ) -> tuple[FakeInteraction, JSON]:
        found = self.find_channel(_id(channel))
        if found is None:
            raise LookupError(f"unknown channel {_id(channel)}")
        guild, chan = found
        uid = _id(user)
        member = guild.members.get(uid)
        if member is None:
            raise LookupError(f"user {uid} is not a member of guild {guild.id}")
        iid = self.snowflake()
        token = "itok-" + secrets.token_urlsafe(24)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.app_id),
            "type": itype,
            "token": token,
            "version": 1,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "channel_id": str(chan.id),
            "channel": {**chan.to_dict(), "permissions": str(self.channel_permissions(guild, chan, uid))},
            "member": {**member.to_dict(), "permissions": str(self.channel_permissions(guild, chan, uid))},
            "app_permissions": str(self.channel_permissions(guild, chan, self.bot.id)),
            "locale": locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        inter = FakeInteraction(iid, token, itype, payload, chan.id, guild.id, uid, self)
        self.interactions[iid] = inter
        return inter, payload

    def _send_interaction(self, inter: FakeInteraction) -> None:
        """Interactions go to one session only (the newest live one on the guild's shard), as Discord routes
        them."""
        gid = inter.payload.get("guild_id")
        live = [s for s in self._live_sessions() if self.on_session_shard(s, int(gid) if gid is not None else None)]
        target = live[-1] if live else None
        if target is None:
            raise RuntimeError("no gateway session to deliver the interaction to")
        self._send_to(target, "INTERACTION_CREATE", inter.payload)
        self._bump()

    def _build_options(
        self,
        guild: FakeGuild,
        schema: list[JSON],
        values: dict[str, Any],
        resolved: JSON,
        *,
        focused: str | None = None,
    ) -> list[JSON]:
        by_name = {o["name"]: o for o in schema}
        out: list[JSON] = []
        for name, value in values.items():
            opt = by_name.get(name)
            if opt is None:
                raise ValueError(f"option {name!r} is not in the registered command (has {sorted(by_name)})")
            otype = int(opt["type"])
            entry: JSON = {"name": name, "type": otype}
            if name == focused:
                entry["value"] = str(value)
                entry["focused"] = True
            else:
                entry["value"] = self._option_value(guild, otype, value, resolved)
            out.append(entry)
        if focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
            if missing:
                raise ValueError(f"required options missing: {missing}")
        elif focused not in values:
            raise ValueError(f"focused option {focused!r} needs a value in options")
        return out

    def _option_value(self, guild: FakeGuild, otype: int, value: Any, resolved: JSON) -> Any:
        if otype == 3:
            return str(value)
        if otype == 4:
            return int(value)
        if otype == 5:
            return bool(value)
        if otype == 10:
            return float(value)
        if otype in (6, 9) and isinstance(value, FakeUser | FakeMember | int) and not isinstance(value, bool):
            uid = _id(value)
            if uid in self.users:
                resolved.setdefault("users", {})[str(uid)] = self.users[uid].to_dict()
                if uid in guild.members:
                    member = guild.members[uid].to_dict(with_user=False)
                    member["permissions"] = str(guild.permissions_for(uid))
                    resolved.setdefault("members", {})[str(uid)] = member
                return str(uid)
        if otype in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_dict()
            return str(value.id)
        if otype == 7 and isinstance(value, FakeChannel):
            data = value.to_dict()
            data["permissions"] = str(guild.permissions_for(self.bot.id))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        raise ValueError(f"cannot encode {value!r} for option type {otype}")

    def _command_data(
        self,
        guild: FakeGuild,
        name: str,
        options: dict[str, Any] | None,
        focused: str | None,
    ) -> JSON:
        parts = name.split()
        cmd = self.find_command(guild, parts[0])
        data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": int(cmd.get("type", 1))}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        resolved: JSON = {}
        schema: list[JSON] = cmd.get("options") or []
        wrappers: list[JSON] = []
        for part in parts[1:]:
            sub = next((o for o in schema if o["name"] == part and o["type"] in (1, 2)), None)
            if sub is None:
                raise LookupError(f"no sub-command {part!r} in {name!r}")
            wrappers.append({"name": part, "type": sub["type"]})
            schema = sub.get("options") or []
        leaf = self._build_options(guild, schema, dict(options or {}), resolved, focused=focused)
        inner: list[JSON] = leaf
        for wrapper in reversed(wrappers):
            wrapper["options"] = inner
            inner = [wrapper]
        data["options"] = inner
        if resolved:
            data["resolved"] = resolved
        return data

    async def slash(
        self,
        user: FakeUser | FakeMember,
        channel: FakeChannel | int,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user runs a slash command; ``name`` may be a path (``"circle poll create"``).

        Options are typed by the registered command's schema: users/members, roles and channels
        are passed as FakeUser/FakeMember/FakeRole/FakeChannel (or ids) and put in ``resolved``.
        Dispatches INTERACTION_CREATE type 2; await ``inter.wait_response()`` for the answer.
        """
        inter, payload = self._interaction_base(INTERACTION_APPLICATION_COMMAND, user, channel, locale)
        payload["data"] = self._command_data(self.guilds[inter.guild_id or 0], name, options, None)
        self._send_interaction(inter)
        return inter

    async def autocomplete(
        self,
        user: FakeUser | FakeMember,
        channel: FakeChannel | int,
        name: str,
        focused: str,
        options: dict[str, Any],
        *,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user types in option ``focused`` (its partial text is ``options[focused]``).

        Dispatches INTERACTION_CREATE type 4; the answer is ``{"type": 8, "data": {"choices": [...]}}``.
        """
        inter, payload = self._interaction_base(INTERACTION_AUTOCOMPLETE, user, channel, locale)
        payload["data"] = self._command_data(self.guilds[inter.guild_id or 0], name, options, focused)
        self._send_interaction(inter)
        return inter

    async def click(
        self,
        user: FakeUser | FakeMember,
        message: JSON | int,
        custom_id: str,
        *,
        component_type: int = 2,
        values: list[str] | None = None,
        locale: str = "en-US",
    ) -> FakeInteraction:
        """A user clicks a button (or picks ``values`` in a select, component_type 3) on a message.

        Dispatches INTERACTION_CREATE type 3 with the full ``message``.
        """
        msg = self.message_index[_message_id(message)]
        inter, payload = self._interaction_base(INTERACTION_MESSAGE_COMPONENT, user, int(msg["channel_id"]), locale)
        data: JSON = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        payload["data"] = data
        payload["message"] = msg
        self._send_interaction(inter)
        return inter

    # ---------------------------------------------------------------- REST plumbing

    def _route(self, method: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$"
        self._routes.append((method, re.compile(regex), handler, auth))

    def _build_routes(self) -> None:
        r = self._route
        r("GET", "/users/@me", self._get_me)
        r("GET", "/users/{user_id}", self._get_user)
        r("POST", "/users/@me/channels", self._create_dm)
        r("GET", "/oauth2/applications/@me", self._get_app)
        r("GET", "/applications/@me", self._get_app)
        r("GET", "/gateway", self._get_gateway, auth=False)
        r("GET", "/gateway/bot", self._get_gateway_bot)
        r("GET", "/applications/{app}/commands", self._get_commands)
        r("PUT", "/applications/{app}/commands", self._put_commands)
        r("GET", "/applications/{app}/guilds/{guild_id}/commands", self._get_commands)
        r("PUT", "/applications/{app}/guilds/{guild_id}/commands", self._put_commands)
        r("GET", "/channels/{channel_id}", self._get_channel)
        r("GET", "/channels/{channel_id}/messages", self._get_messages)
        r("POST", "/channels/{channel_id}/messages", self._post_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self._get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self._patch_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self._delete_message)
        r("POST", "/channels/{channel_id}/messages/{message_id}/threads", self._post_thread)
        r("POST", "/channels/{channel_id}/polls/{message_id}/expire", self._expire_poll)
        r("GET", "/channels/{channel_id}/polls/{message_id}/answers/{answer_id}", self._get_voters)
        r("GET", "/guilds/{guild_id}", self._get_guild)
        r("GET", "/guilds/{guild_id}/channels", self._get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self._get_guild_roles)
        r("GET", "/guilds/{guild_id}/members", self._list_members)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member)
        r("GET", "/guilds/{guild_id}/scheduled-events", self._list_events)
        r("POST", "/guilds/{guild_id}/scheduled-events", self._create_event)
        r("GET", "/guilds/{guild_id}/scheduled-events/{event_id}", self._get_event)
        r("PATCH", "/guilds/{guild_id}/scheduled-events/{event_id}", self._modify_event)
        r("DELETE", "/guilds/{guild_id}/scheduled-events/{event_id}", self._delete_event)
        r("POST", "/interactions/{interaction_id}/{token}/callback", self._callback, auth=False)
        r("POST", "/webhooks/{app}/{token}", self._post_followup, auth=False)
        r("GET", "/webhooks/{app}/{token}/messages/{message_id}", self._get_webhook_message, auth=False)
        r("PATCH", "/webhooks/{app}/{token}/messages/{message_id}", self._patch_webhook_message, auth=False)
        r("DELETE", "/webhooks/{app}/{token}/messages/{message_id}", self._delete_webhook_message, auth=False)

    @staticmethod
    def _json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        """JSON with ``Content-Type: application/json`` exactly (discord.py compares it verbatim)."""
        resp = web.Response(status=status, body=json.dumps(data).encode(), headers=headers or {})
        resp.headers["Content-Type"] = "application/json"
        return resp

    @staticmethod
    async def _read_files(request: web.Request) -> dict[int, FakeUpload]:
        """The `files[n]` parts of a multipart body; each must carry a filename (Content-Disposition)."""
        if not request.headers.get("Content-Type", "").startswith("multipart/"):
            return {}
        out: dict[int, FakeUpload] = {}
        for name, value in (await request.post()).items():  # aiohttp keeps the parsed form: read once
            m = re.fullmatch(r"files\[(\d+)\]", name)
            if m is None:
                continue
            if not isinstance(value, web.FileField) or not value.filename:
                raise FakeDiscordError(400, f"Invalid Form Body: {name} needs a filename", 50035)
            out[int(m[1])] = FakeUpload(value.filename, value.content_type, value.file.read())
        return out

    @staticmethod
    async def _read_body(request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            form = await request.post()
            raw = form.get("payload_json")  # a part with Content-Type: application/json (as documented) is bytes
            if isinstance(raw, bytes | bytearray):
                raw = raw.decode()
            return json.loads(str(raw)) if raw is not None else {}
        text = await request.text()
        return json.loads(text) if text else None

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX) :]
        method = request.method.upper()
        try:
            body = await self._read_body(request)
        except Exception:
            body = None
        rec = RecordedRequest(method, path, dict(request.query), body)
        self.requests.append(rec)
        try:
            rec.files = await self._read_files(request)
            resp = await self._dispatch_rest(request, rec)
        except FakeDiscordError as exc:
            resp = self._json_response({"message": exc.message, "code": exc.code}, exc.status)
        except Exception as exc:  # a bug in the fake: never answer 5xx (discord.py would retry slowly)
            self.errors.append(f"{method} {path}: {exc!r}")
            resp = self._json_response({"message": f"fakediscord internal error: {exc!r}", "code": 0}, 400)
        rec.status = resp.status
        self._bump()
        return resp

    async def _dispatch_rest(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        for rmethod, regex, handler, needs_auth in self._routes:
            m = regex.match(rec.path)
            if m is None or rmethod != rec.method:
                continue
            rec.authorized = request.headers.get("Authorization") == f"Bot {self.token}"
            if needs_auth and not rec.authorized:
                return self._json_response({"message": "401: Unauthorized", "code": 0}, 401)
            for omethod, opattern in self._outages:
                if omethod in ("*", rec.method) and opattern.fullmatch(rec.path):
                    return self._json_response({"message": "503: Service Unavailable", "code": 0}, 503)
            for rl in self._rate_limits:
                if rl.remaining > 0 and rl.method == rec.method and rl.pattern.fullmatch(rec.path):
                    rl.remaining -= 1
                    return self._too_many(rl)
            params = {k: v for k, v in m.groupdict().items()}
            result = await handler(rec, **params)
            if isinstance(result, web.StreamResponse):
                return result
            if result is None:
                return web.Response(status=204)
            return self._json_response(result)
        self.unknown_requests.append(rec)
        return self._json_response({"message": "404: Not Found", "code": 0}, 404)

    def _too_many(self, rl: _RateLimit) -> web.Response:
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, int(rl.retry_after + 0.999))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + rl.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{rl.retry_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket",
            "X-RateLimit-Scope": "global" if rl.is_global else "user",
        }
        if rl.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": rl.retry_after,
            "global": rl.is_global,
        }
        return self._json_response(body, 429, headers)

    # ---------------------------------------------------------------- REST handlers: identity

    async def _get_me(self, rec: RecordedRequest) -> JSON:
        return {**self.bot.to_dict(), "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US"}

    async def _get_user(self, rec: RecordedRequest, user_id: str) -> JSON:
        user = self.users.get(int(user_id))
        if user is None:
            raise FakeDiscordError(404, "Unknown User", 10013)
        return user.to_dict()

    async def _get_app(self, rec: RecordedRequest) -> JSON:
        return {
            "id": str(self.app_id),
            "name": self.bot.username,
            "icon": None,
            "description": "circlebot test application",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "bot": self.bot.to_dict(),
            "owner": self.owner.to_dict(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
            "terms_of_service_url": None,
            "privacy_policy_url": None,
        }

    async def _get_gateway(self, rec: RecordedRequest) -> JSON:
        return {"url": self.gateway_url}

    async def _get_gateway_bot(self, rec: RecordedRequest) -> JSON:
        return {
            "url": self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
        }

    # ---------------------------------------------------------------- REST handlers: commands

    def _check_app(self, app: str) -> None:
        if app != str(self.app_id):
            raise FakeDiscordError(404, "Unknown Application", 10002)

    async def _get_commands(self, rec: RecordedRequest, app: str, guild_id: str | None = None) -> list[JSON]:
        self._check_app(app)
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.get(int(guild_id), [])

    async def _put_commands(self, rec: RecordedRequest, app: str, guild_id: str | None = None) -> list[JSON]:
        self._check_app(app)
        if guild_id is not None and int(guild_id) not in self.guilds:
            raise FakeDiscordError(404, "Unknown Guild", 10004)
        old = self.global_commands if guild_id is None else self.guild_commands.get(int(guild_id), [])
        old_ids = {(c["name"], int(c.get("type", 1))): c["id"] for c in old}
        new: list[JSON] = []
        for body in rec.json or []:
            name = body.get("name", "")
            ctype = int(body.get("type", 1))
            if not re.fullmatch(r"[-_\w]{1,32}", name) or (ctype == 1 and name != name.lower()):
                raise FakeDiscordError(400, f"Invalid Form Body: bad command name {name!r}", 50035)
            cmd = {
                "id": old_ids.get((name, ctype)) or str(self.snowflake()),
                "application_id": str(self.app_id),
                "version": str(self.snowflake()),
                "type": ctype,
                "name": name,
                "description": body.get("description", ""),
                "options": body.get("options", []),
                "default_member_permissions": (
                    None
                    if body.get("default_member_permissions") is None
                    else str(body["default_member_permissions"])  # Discord answers a string
                ),
                "dm_permission": body.get("dm_permission", True),
                "nsfw": body.get("nsfw", False),
                "contexts": body.get("contexts"),
                "integration_types": body.get("integration_types", [0]),
                "name_localizations": body.get("name_localizations"),
                "description_localizations": body.get("description_localizations"),
            }
            if guild_id is not None:
                cmd["guild_id"] = guild_id
            new.append(cmd)
        if guild_id is None:
            self.global_commands = new
        else:
            self.guild_commands[int(guild_id)] = new
        return new

    # ---------------------------------------------------------------- REST handlers: channels/messages

    def _channel(self, channel_id: str) -> tuple[FakeGuild, FakeChannel]:
        found = self.find_channel(int(channel_id))
        if found is None:
            raise FakeDiscordError(404, "Unknown Channel", 10003)
        return found

    def _message(self, channel_id: str, message_id: str) -> JSON:
        msg = self.message_index.get(int(message_id))
        if msg is None or msg["channel_id"] != channel_id or int(msg["flags"]) & FLAG_EPHEMERAL:
            raise FakeDiscordError(404, "Unknown Message", 10008)
        return msg

    def _require(self, guild: FakeGuild, chan: FakeChannel, *bits: int) -> None:
        perms = self.channel_permissions(guild, chan, self.bot.id)
        for bit in bits:
            if not perms & bit:
                raise FakeDiscordError(403, "Missing Permissions", 50013)

    async def _get_channel(self, rec: RecordedRequest, channel_id: str) -> JSON:
        if int(channel_id) in self.dm_recipients:
            return self._dm_channel_dict(int(channel_id))
        return self._channel(channel_id)[1].to_dict()

    # ---------------------------------------------------------------- REST handlers: DMs

    def _dm_channel_dict(self, channel_id: int) -> JSON:
        """A DM channel object (type 1, with its recipient), as in the docs' "Example DM Channel"."""
        user = self.users[self.dm_recipients[channel_id]]
        last = self.messages.get(channel_id)
        return {"id": str(channel_id), "type": 1, "last_message_id": last[-1]["id"] if last else None,
                "flags": 0, "recipients": [user.to_dict()]}

    async def _create_dm(self, rec: RecordedRequest) -> JSON:
        """Create DM: "Returns a DM channel object (if one already exists, it will be returned instead)"."""
        body = rec.json or {}
        if "recipient_id" not in body:
            raise FakeDiscordError(400, "Invalid Form Body: recipient_id is required", 50035)
        user = self.users.get(int(body["recipient_id"]))
        if user is None:
            raise FakeDiscordError(400, "Invalid Form Body: Unknown User", 50035)
        cid = self.dm_channels.get(user.id)
        if cid is None:
            cid = self.snowflake()
            self.dm_channels[user.id] = cid
            self.dm_recipients[cid] = user.id
        return self._dm_channel_dict(cid)

    def dm_messages(self, user: FakeUser | FakeMember | int) -> list[JSON]:
        """What the bot sent a user by DM, oldest first."""
        cid = self.dm_channels.get(_id(user))
        return list(self.messages.get(cid, [])) if cid is not None else []

    def _post_dm(self, channel_id: int, body: JSON) -> JSON:
        """A message in a DM channel: refused with 50007 ("Cannot send messages to this user") for a user who
        does not take DMs from the bot."""
        if self.dm_recipients[channel_id] in self.refusing_dms:
            raise FakeDiscordError(403, "Cannot send messages to this user", 50007)
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            seen = self._nonces.get((self.bot.id, str(nonce)))
            if seen is not None and time.monotonic() - seen[0] < self.nonce_window and seen[1] in self.message_index:
                return self.message_index[seen[1]]
        msg = self.create_message(channel_id, self.bot, body, dispatch=False)
        if nonce is not None and body.get("enforce_nonce"):
            self._nonces[(self.bot.id, str(nonce))] = (time.monotonic(), int(msg["id"]))
        return msg

    async def _get_messages(self, rec: RecordedRequest, channel_id: str) -> list[JSON]:
        self._channel(channel_id)
        msgs = list(reversed(self.messages.get(int(channel_id), [])))  # newest first
        limit = int(rec.query.get("limit", 50))
        if "before" in rec.query:
            msgs = [m for m in msgs if int(m["id"]) < int(rec.query["before"])]
        if "after" in rec.query:
            msgs = [m for m in msgs if int(m["id"]) > int(rec.query["after"])]
        return msgs[:limit]

    async def _post_message(self, rec: RecordedRequest, channel_id: str) -> JSON | web.StreamResponse:
        if self.message_delay:
            await asyncio.sleep(self.message_delay)
        if int(channel_id) in self.dm_recipients:
            status = self.failing_dms.get(self.dm_recipients[int(channel_id)])
            if status == 429:
                return self._too_many(_RateLimit("POST", re.compile(".*"), 0, self._dm_retry_after, False))
            if status is not None:
                raise FakeDiscordError(503, "503: Service Unavailable")
            return self._post_dm(int(channel_id), rec.json or {})
        guild, chan = self._channel(channel_id)
        body = rec.json or {}
        needed = [VIEW_CHANNEL, SEND_MESSAGES_IN_THREADS if chan.is_thread else SEND_MESSAGES]
        if body.get("poll") is not None:
            needed.append(SEND_POLLS)
        self._require(guild, chan, *needed)
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > NONCE_MAX_CHARS:
            raise FakeDiscordError(400, "Invalid Form Body: nonce must be 25 or fewer in length.", 50035)
        if nonce is not None and body.get("enforce_nonce"):
            # "If another message was created by the same author with the same nonce, that message will be
            # returned and no new message will be created" (within the past few minutes)
            # (discord.py documents a 404 for a nonce whose message was deleted shortly before)
            seen = self._nonces.get((self.bot.id, str(nonce)))
            if seen is not None and time.monotonic() - seen[0] < self.nonce_window:
                if seen[1] not in self.message_index:
                    raise FakeDiscordError(404, "Unknown Message", 10008)
                return self.message_index[seen[1]]
            msg = self.create_message(chan, self.bot, body, files=rec.files)
            self._nonces[(self.bot.id, str(nonce))] = (time.monotonic(), int(msg["id"]))
            return msg
        return self.create_message(chan, self.bot, body, files=rec.files)

    async def _get_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> JSON:
        return self._message(channel_id, message_id)

    async def _patch_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> JSON:
        msg = self._message(channel_id, message_id)
        if int(msg["author"]["id"]) != self.bot.id:
            raise FakeDiscordError(403, "Cannot edit a message authored by another user", 50005)
        return self.edit_message(int(message_id), rec.json or {})

    async def _delete_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> None:
        msg = self._message(channel_id, message_id)
        guild, chan = self._channel(channel_id)
        if int(msg["author"]["id"]) != self.bot.id:
            self._require(guild, chan, MANAGE_MESSAGES)
        self._remove_message(msg)

    def _remove_message(self, msg: JSON) -> None:
        mid = int(msg["id"])
        cid = int(msg["channel_id"])
        self.message_index.pop(mid, None)
        lst = self.messages.get(cid, [])
        if msg in lst:
            idx = lst.index(msg)
            lst.remove(msg)
            if self._channel_cursor.get(cid, 0) > idx:
                self._channel_cursor[cid] -= 1
        event = {"id": str(mid), "channel_id": str(cid)}
        if msg.get("guild_id"):
            event["guild_id"] = msg["guild_id"]
        self.dispatch("MESSAGE_DELETE", event)

    async def _post_thread(self, rec: RecordedRequest, channel_id: str, message_id: str) -> JSON:
        guild, parent = self._channel(channel_id)
        msg = self._message(channel_id, message_id)
        if parent.is_thread:
            raise FakeDiscordError(400, "Cannot create a thread in a thread", 50024)
        if int(message_id) in guild.threads:
            raise FakeDiscordError(400, "A thread has already been created for this message", 160004)
        self._require(guild, parent, VIEW_CHANNEL, CREATE_PUBLIC_THREADS)
        body = rec.json or {}
        name = str(body.get("name", ""))
        if not 1 <= len(name) <= 100:
            raise FakeDiscordError(400, "Invalid Form Body: name must be 1-100 characters", 50035)
        thread = FakeChannel(
            int(message_id),
            guild.id,
            name,
            11,
            parent_id=parent.id,
            owner_id=self.bot.id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )
        guild.threads[thread.id] = thread
        msg["thread"] = thread.to_dict()
        self.dispatch("THREAD_CREATE", {**thread.to_dict(), "newly_created": True})
        return thread.to_dict()

    async def _expire_poll(self, rec: RecordedRequest, channel_id: str, message_id: str) -> JSON:
        msg = self._message(channel_id, message_id)
        if int(message_id) not in self.polls:
            raise FakeDiscordError(400, "This message does not have a poll", 520002)
        if int(msg["author"]["id"]) != self.bot.id:
            raise FakeDiscordError(403, "Cannot expire another user's poll", 50013)
        return self.end_poll(int(message_id))

    async def _get_voters(self, rec: RecordedRequest, channel_id: str, message_id: str, answer_id: str) -> JSON:
        self._message(channel_id, message_id)
        poll = self.polls.get(int(message_id))
        if poll is None:
            raise FakeDiscordError(404, "Unknown Message", 10008)
        after = int(rec.query.get("after", 0))
        limit = max(1, min(100, int(rec.query.get("limit", 25))))
        ids = sorted(u for u in poll.votes.get(int(answer_id), []) if u > after)
        return {"users": [self.users[u].to_dict() for u in ids[:limit]]}

    # ---------------------------------------------------------------- REST handlers: guilds

    # ---------------------------------------------------------------- REST handlers: guild scheduled events
    # As developers/resources/guild-scheduled-event.mdx documents them: EXTERNAL events (entity_type 3) need
    # entity_metadata.location and scheduled_end_time and no channel_id; CREATE_EVENTS to create, CREATE_EVENTS
    # or MANAGE_EVENTS to change or delete one the bot created; a COMPLETED or CANCELED event no longer changes
    # status. (Whether the start is in the future is not checked: tests run on a fake clock.)

    _EVENT_TRANSITIONS: ClassVar[dict[int, set[int]]] = {1: {2, 4}, 2: {3}}

    def events_of(self, guild: FakeGuild) -> list[JSON]:
        """The guild's scheduled events, oldest first."""
        return [e for e in self.scheduled_events.values() if e["guild_id"] == str(guild.id)]

    def _event(self, guild_id: str, event_id: str) -> JSON:
        event = self.scheduled_events.get(int(event_id))
        if event is None or event["guild_id"] != guild_id:
            raise FakeDiscordError(404, "Unknown Guild Scheduled Event", 10070)
        return event

    def _check_event_fields(self, event: JSON) -> None:
        name = event.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise FakeDiscordError(400, "Invalid Form Body: name must be 1-100 characters", 50035)
        description = event.get("description")
        if description is not None and len(str(description)) > 1000:
            raise FakeDiscordError(400, "Invalid Form Body: description must be 1000 or fewer in length", 50035)
        if event.get("entity_type") == 3:
            location = (event.get("entity_metadata") or {}).get("location")
            if not location or len(str(location)) > 100:
                raise FakeDiscordError(400, "Invalid Form Body: entity_metadata.location is required (1-100)", 50035)
            if not event.get("scheduled_end_time"):
                raise FakeDiscordError(400, "Invalid Form Body: scheduled_end_time is required", 50035)
            if event.get("channel_id") is not None:
                raise FakeDiscordError(400, "Invalid Form Body: channel_id must be null", 50035)
            start = datetime.fromisoformat(str(event["scheduled_start_time"]))
            if datetime.fromisoformat(str(event["scheduled_end_time"])) <= start:
                raise FakeDiscordError(400, "Invalid Form Body: scheduled_end_time must be after the start", 50035)

    def _require_guild(self, guild: FakeGuild, *any_of: int) -> None:
        if not any(guild.permissions_for(self.bot.id) & bit for bit in any_of):
            raise FakeDiscordError(403, "Missing Permissions", 50013)

    async def _list_events(self, rec: RecordedRequest, guild_id: str) -> list[JSON]:
        return self.events_of(self._guild(guild_id))

    async def _get_event(self, rec: RecordedRequest, guild_id: str, event_id: str) -> JSON:
        return self._event(guild_id, event_id)

    async def _create_event(self, rec: RecordedRequest, guild_id: str) -> JSON:
        guild = self._guild(guild_id)
        self._require_guild(guild, CREATE_EVENTS)
        body = rec.json or {}
        for key in ("name", "privacy_level", "scheduled_start_time", "entity_type"):
            if key not in body:
                raise FakeDiscordError(400, f"Invalid Form Body: {key} is required", 50035)
        eid = self.snowflake()
        event: JSON = {
            "id": str(eid), "guild_id": guild_id, "channel_id": body.get("channel_id"),
            "creator_id": str(self.bot.id), "creator": self.bot.to_dict(), "name": body["name"],
            "description": body.get("description"), "scheduled_start_time": body["scheduled_start_time"],
            "scheduled_end_time": body.get("scheduled_end_time"), "privacy_level": body["privacy_level"],
            "status": 1, "entity_type": body["entity_type"], "entity_id": None,
            "entity_metadata": body.get("entity_metadata"), "user_count": 0, "image": None, "recurrence_rule": None,
        }
        self._check_event_fields(event)
        if sum(1 for e in self.events_of(guild) if e["status"] in (1, 2)) >= 100:
            raise FakeDiscordError(400, "Maximum number of scheduled events reached (100)", 30038)
        self.scheduled_events[eid] = event
        self.dispatch("GUILD_SCHEDULED_EVENT_CREATE", event)
        return event

    async def _modify_event(self, rec: RecordedRequest, guild_id: str, event_id: str) -> JSON:
        guild = self._guild(guild_id)
        event = self._event(guild_id, event_id)
        self._require_guild(guild, CREATE_EVENTS, MANAGE_EVENTS)
        body = rec.json or {}
        changed = {**event, **{k: v for k, v in body.items() if k in event and k != "id"}}
        moves = self._EVENT_TRANSITIONS.get(int(event["status"]), set())
        if "status" in body and body["status"] != event["status"] and body["status"] not in moves:
            raise FakeDiscordError(400, "Invalid Guild Scheduled Event Status Transition", 180000)
        self._check_event_fields(changed)
        event.update(changed)
        self.dispatch("GUILD_SCHEDULED_EVENT_UPDATE", event)
        return event

    async def _delete_event(self, rec: RecordedRequest, guild_id: str, event_id: str) -> None:
        guild = self._guild(guild_id)
        event = self._event(guild_id, event_id)
        self._require_guild(guild, CREATE_EVENTS, MANAGE_EVENTS)
        del self.scheduled_events[int(event_id)]
        self.dispatch("GUILD_SCHEDULED_EVENT_DELETE", event)

    def _guild(self, guild_id: str) -> FakeGuild:
        guild = self.guilds.get(int(guild_id))
        if guild is None:
            raise FakeDiscordError(404, "Unknown Guild", 10004)
        return guild

    async def _get_guild(self, rec: RecordedRequest, guild_id: str) -> JSON:
        data = self._guild(guild_id).create_payload(include_all_members=False)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large"):
            data.pop(key, None)
        data["approximate_member_count"] = data.pop("member_count")
        return data

    async def _get_guild_channels(self, rec: RecordedRequest, guild_id: str) -> list[JSON]:
        return [c.to_dict() for c in self._guild(guild_id).channels.values()]

    async def _get_guild_roles(self, rec: RecordedRequest, guild_id: str) -> list[JSON]:
        return [r.to_dict() for r in self._guild(guild_id).roles.values()]

    async def _list_members(self, rec: RecordedRequest, guild_id: str) -> list[JSON]:
        """List Guild Members: ``limit`` (1-1000, default 1) members with user ids above ``after`` (default 0),
        in id order. Only for an app whose "Server Members Intent" is on in the Developer Portal
        (``enabled_privileged_intents``), whatever it identified with: else 403 Missing Access (50001)."""
        guild = self._guild(guild_id)
        if not self.enabled_privileged_intents & INTENT_GUILD_MEMBERS:
            raise FakeDiscordError(403, "Missing Access", 50001)
        try:
            limit = int(rec.query.get("limit", 1))
            after = int(rec.query.get("after", 0))
        except ValueError:
            raise FakeDiscordError(400, "Invalid Form Body", 50035) from None
        if not 1 <= limit <= 1000:
            raise FakeDiscordError(400, "Invalid Form Body", 50035)
        found = sorted((m for m in guild.members.values() if m.id > after), key=lambda m: m.id)
        return [m.to_dict() for m in found[:limit]]

    async def _get_member(self, rec: RecordedRequest, guild_id: str, user_id: str) -> JSON:
        member = self._guild(guild_id).members.get(int(user_id))
        if member is None:
            raise FakeDiscordError(404, "Unknown Member", 10007)
        return member.to_dict()

    # ---------------------------------------------------------------- REST handlers: interactions

    def _interaction_by_token(self, app: str, token: str) -> FakeInteraction:
        if app != str(self.app_id):
            raise FakeDiscordError(404, "Unknown Webhook", 10015)
        for inter in self.interactions.values():
            if inter.token == token:
                return inter
        raise FakeDiscordError(401, "Invalid Webhook Token", 50027)

    async def _callback(self, rec: RecordedRequest, interaction_id: str, token: str) -> JSON | None:
        inter = self.interactions.get(int(interaction_id))
        if inter is None or inter.token != token:
            raise FakeDiscordError(404, "Unknown interaction", 10062)
        if inter.callbacks:
            raise FakeDiscordError(400, "Interaction has already been acknowledged.", 40060)
        body = rec.json or {}
        ctype = int(body.get("type", 0))
        data = body.get("data") or {}
        ephemeral = bool(int(data.get("flags") or 0) & FLAG_EPHEMERAL)
        message: JSON | None = None
        if ctype == CALLBACK_MESSAGE:
            message = self.create_message(
                inter.channel_id or 0, self.bot, data, ephemeral=ephemeral, webhook_id=self.app_id, files=rec.files
            )
            inter.original = message
        elif ctype == CALLBACK_DEFERRED_MESSAGE:
            message = self._loading_message(inter, ephemeral)
            inter.original = message
        elif ctype == CALLBACK_UPDATE_MESSAGE:
            if inter.type != INTERACTION_MESSAGE_COMPONENT:
                raise FakeDiscordError(400, "Response type 7 needs a component interaction", 50035)
            message = self.edit_message(int(inter.payload["message"]["id"]), data)
            inter.original = message
        elif ctype == CALLBACK_AUTOCOMPLETE:
            if inter.type != INTERACTION_AUTOCOMPLETE:
                raise FakeDiscordError(400, "Autocomplete result for a non-autocomplete interaction", 50035)
            if len(data.get("choices", [])) > 25:
                raise FakeDiscordError(400, "Invalid Form Body: at most 25 choices", 50035)
        elif ctype == CALLBACK_DEFERRED_UPDATE:
            if inter.type != INTERACTION_MESSAGE_COMPONENT:
                raise FakeDiscordError(400, "Deferred update needs a component interaction", 50035)
            inter.original = self.message_index.get(int(inter.payload["message"]["id"]))
        elif ctype == CALLBACK_MODAL:
            pass
        else:
            raise FakeDiscordError(400, f"Invalid Form Body: unknown callback type {ctype}", 50035)
        inter.callbacks.append(body)
        self._bump()
        if rec.query.get("with_response") not in ("1", "true", "True"):
            return None
        info: JSON = {"id": str(inter.id), "type": inter.type}
        if message is not None:
            info.update(
                response_message_id=message["id"],
                response_message_loading=ctype == CALLBACK_DEFERRED_MESSAGE,
                response_message_ephemeral=ephemeral,
            )
        resource: JSON = {"type": ctype}
        if message is not None:
            resource["message"] = message
        return {"interaction": info, "resource": resource}

    def _loading_message(self, inter: FakeInteraction, ephemeral: bool) -> JSON:
        """The 'bot is thinking…' message of a deferred response (content edited in later)."""
        mid = self.snowflake()
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(inter.channel_id),
            "guild_id": str(inter.guild_id),
            "author": self.bot.to_dict(),
            "content": "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 20,
            "flags": FLAG_LOADING | (FLAG_EPHEMERAL if ephemeral else 0),
            "components": [],
            "webhook_id": str(self.app_id),
            "application_id": str(self.app_id),
        }
        self.message_index[mid] = msg
        if not ephemeral and inter.channel_id is not None:
            self.messages.setdefault(inter.channel_id, []).append(msg)
            self.dispatch("MESSAGE_CREATE", msg)
        return msg

    async def _post_followup(self, rec: RecordedRequest, app: str, token: str) -> JSON | None:
        inter = self._interaction_by_token(app, token)
        if not inter.callbacks:
            raise FakeDiscordError(404, "Unknown Webhook", 10015)
        body = rec.json or {}
        original = inter.original
        if (
            inter.response is not None
            and int(inter.response.get("type", 0)) == CALLBACK_DEFERRED_MESSAGE
            and original is not None
            and not inter.original_deleted
            and int(original["flags"]) & FLAG_LOADING
        ):
            # Discord: the first follow-up after a type 5 defer edits the loading message instead
            # (keeping its ephemeral state).
            original["flags"] = int(original["flags"]) & ~FLAG_LOADING
            msg = self.edit_message(int(original["id"]), {k: v for k, v in body.items() if k != "flags"},
                                    files=rec.files)
        else:
            ephemeral = bool(int(body.get("flags") or 0) & FLAG_EPHEMERAL)
            msg = self.create_message(
                inter.channel_id or 0, self.bot, body, ephemeral=ephemeral, webhook_id=self.app_id, files=rec.files
            )
        inter.followups.append(msg)
        self._bump()
        if rec.query.get("wait") in ("0", "false", "False"):
            return None
        return msg

    def _webhook_message(self, inter: FakeInteraction, message_id: str) -> JSON:
        if message_id == "@original":
            if inter.original is None or inter.original_deleted:
                raise FakeDiscordError(404, "Unknown Message", 10008)
            return inter.original
        for msg in inter.followups:
            if msg["id"] == message_id:
                return msg
        raise FakeDiscordError(404, "Unknown Message", 10008)

    async def _get_webhook_message(self, rec: RecordedRequest, app: str, token: str, message_id: str) -> JSON:
        return self._webhook_message(self._interaction_by_token(app, token), message_id)

    async def _patch_webhook_message(self, rec: RecordedRequest, app: str, token: str, message_id: str) -> JSON:
        inter = self._interaction_by_token(app, token)
        msg = self._webhook_message(inter, message_id)
        msg["flags"] = int(msg["flags"]) & ~FLAG_LOADING
        msg = self.edit_message(int(msg["id"]), rec.json or {}, files=rec.files)
        if message_id == "@original":
            inter.original_edits.append(rec.json or {})
        self._bump()
        return msg

    async def _delete_webhook_message(self, rec: RecordedRequest, app: str, token: str, message_id: str) -> None:
        inter = self._interaction_by_token(app, token)
        msg = self._webhook_message(inter, message_id)
        if message_id == "@original":
            inter.original_deleted = True
        if int(msg["flags"]) & FLAG_EPHEMERAL:
            self.message_index.pop(int(msg["id"]), None)
        else:
            self._remove_message(msg)
        return None


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _id(obj: Any) -> int:
    """The integer id of a fake object, a discord.py object, a payload dict or an int."""
    if isinstance(obj, int):
        return obj
    if isinstance(obj, dict):
        return int(obj["id"])
    return int(obj.id)


def _message_id(message: Any) -> int:
    """The id of a message given as a payload dict, a discord.Message or an int."""
    return _id(message)


def make_client(
    *,
    intents: discord.Intents | None = None,
    cls: type[discord.Client] = discord.Client,
    **kwargs: Any,
) -> discord.Client:
    """Build a client for the fake: default intents + members + message_content unless given,
    ``guild_ready_timeout=0.05`` (the default 2 s would slow every start)."""
    if intents is None:
        intents = discord.Intents.default()
        intents.members = True
        intents.message_content = True
    kwargs.setdefault("guild_ready_timeout", 0.05)
    return cls(intents=intents, **kwargs)


async def start_client(
    fake: FakeDiscord,
    client: discord.Client,
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
) -> asyncio.Task[None]:
    """Start ``client`` against the fake and wait until it is ready; return the ``client.start`` task.

    Raises whatever ``client.start`` raised if it fails first (e.g. LoginFailure).
    """
    task: asyncio.Task[None] = asyncio.create_task(client.start(fake.token))

    async def _ready() -> None:
        while not client.is_ready():
            if task.done():
                task.result()  # re-raise the start failure
                raise RuntimeError("client.start() returned before the client was ready")
            await asyncio.sleep(0.002)

    try:
        await asyncio.wait_for(_ready(), timeout)
    except BaseException:
        await stop_client(client, task)
        raise
    return task


async def stop_client(client: discord.Client, task: asyncio.Task[None] | None = None) -> None:
    """Close the client cleanly and await its start task."""
    await client.close()
    if task is not None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, DEFAULT_TIMEOUT)


@contextlib.asynccontextmanager
async def running_client(
    fake: FakeDiscord,
    client: discord.Client,
    *,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
) -> AsyncIterator[discord.Client]:
    """``async with running_client(fake, client):`` — started, ready, and closed on exit."""
    task = await start_client(fake, client, timeout=timeout)
    try:
        yield client
    finally:
        await stop_client(client, task)


@pytest_asyncio.fixture(name="fake_discord")
async def fake_discord_fixture() -> AsyncIterator[FakeDiscord]:
    """Fixture ``fake_discord``: a started FakeDiscord with discord.py's two knobs pointed at it.

    The knobs are restored and the server stopped afterwards.  Import ``fake_discord_fixture``
    into a test module (or conftest) to make the ``fake_discord`` fixture available.
    """
    fake = FakeDiscord()
    await fake.start()
    try:
        with fake.installed():
            yield fake
    finally:
        await fake.stop()

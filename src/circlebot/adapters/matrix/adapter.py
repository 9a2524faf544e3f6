"""The Matrix adapter itself: `MatrixAdapter`, the parts (sync, commands, rooms, direct, votes, reactions, send)
together over one nio client, and how it is built from the config."""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from zoneinfo import ZoneInfo

from cachetools import LRUCache
from nio import AsyncClient, AsyncClientConfig

from circlebot.adapters.matrix.client import PLATFORM, client_config
from circlebot.adapters.matrix.commands import Commands
from circlebot.adapters.matrix.crypto import Crypto
from circlebot.adapters.matrix.direct import Direct
from circlebot.adapters.matrix.host import MatrixRoom
from circlebot.adapters.matrix.reactions import Reactions
from circlebot.adapters.matrix.rooms import Rooms
from circlebot.adapters.matrix.send import Send
from circlebot.adapters.matrix.sync import Sync
from circlebot.adapters.matrix.votes import Votes
from circlebot.config import MatrixSettings, Settings
from circlebot.core.adapter import Lookups, PollLimits


class MatrixAdapter(Sync, Commands, Rooms, Direct, Votes, Reactions, Send, Crypto):
    """circlebot on Matrix. Construct it with the rooms of every circle; `serve` connects and serves until cancelled."""

    platform = PLATFORM
    cache_size = 10_000  # entries per in-memory cache (display names, reacted-to posts, poll ends, responses)
    poll_limits = PollLimits(question_chars=340, answers=20, answer_chars=340)
    # Synapse keeps a transaction id's event for 24 hours (per device); an hour less leaves room for clocks
    dedup_window = timedelta(hours=23)
    syntax = None  # prefix + text
    undecryptable_grace = 60.0  # seconds an unreadable event waits for its key before its sender is told

    def __init__(
        self,
        settings: MatrixSettings,
        lookups: Lookups,
        rooms: Mapping[str, MatrixRoom],
        *,
        access_token: str | None = None,
        password: str | None = None,
        default_zone: ZoneInfo | None = None,
        sync_timeout_ms: int = 30_000,
        backoff: tuple[float, float] = (0.5, 30.0),
        config: AsyncClientConfig | None = None,
        recovery_key: str | None = None,
    ) -> None:
        if not (access_token or password):
            raise ValueError("the Matrix adapter needs an access token or a password")
        self.settings = settings
        self.prefix = settings.prefix
        self.user_id = settings.user_id
        self._lookups = lookups
        self._rooms = dict(rooms)
        self._token = access_token
        self._password = password
        self._zone = default_zone or ZoneInfo("UTC")
        self._sync_timeout_ms = sync_timeout_ms
        self._backoff = backoff
        # Encryption needs the crypto store's directory (the config gives one; a bare MatrixSettings may not).
        self._crypto_dir = settings.store_path if settings.encryption else None
        self._undecrypted = {}
        self._recovery_key = recovery_key
        self.client = AsyncClient(settings.homeserver, settings.user_id, device_id=settings.device_id,
                                  store_path=str(self._crypto_dir) if self._crypto_dir else "",
                                  config=config or client_config(self._crypto_dir is not None))
        self.ready = asyncio.Event()
        self.connected = False
        self.reconnects = 0
        self._dispatch = None
        self._seen = OrderedDict()
        self._commands = OrderedDict()
        self._waiters = {}
        # Memory is bounded: every cache below keeps at most `cache_size` entries (least recently used go
        # first) and falls back to the store or the homeserver for what it no longer holds.
        size = self.cache_size
        self._standing = {}  # configured rooms only
        self._names = LRUCache(size)
        self._dms = {}
        self._dm_rooms = set()
        self._dm_left = set()
        self._dm_locks = {}
        self._direct_lock = asyncio.Lock()
        self._dm_checked = set()
        self._poll_ends = LRUCache(size)
        self._controls = LRUCache(size)
        self._responses = LRUCache(size)  # response event -> (room, poll start)
        self._ending = {}  # an end from Element being decided by the core
        self._warned_encrypted = set()
        self._ignored_invites = LRUCache(size)


def rooms_from_settings(settings: Settings) -> dict[str, MatrixRoom]:
    """Every configured Matrix room with its circle and the circle's zone."""
    return {room: MatrixRoom(c.slug, settings.zone_of(c)) for c in settings.circles for room in c.where.matrix_rooms}


def adapter_from_settings(settings: Settings, lookups: Lookups, env: Mapping[str, str] | None = None) -> MatrixAdapter:
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
    recovery = env.get(m.recovery_key_env) if m.recovery_key_env else None
    return MatrixAdapter(m, lookups, rooms_from_settings(settings), access_token=token, password=password,
                         default_zone=ZoneInfo(settings.timezone), recovery_key=recovery)


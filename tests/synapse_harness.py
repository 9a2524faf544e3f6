"""A real Synapse homeserver on loopback, for circlebot's Matrix tests.

The module is both a library and a pytest plugin.  Register it once with
``pytest_plugins = ["synapse_harness"]`` (root ``conftest.py`` or a test module); that provides:

* ``synapse`` (session scope, sync): one :class:`SynapseServer` per test run, started lazily the first
  time a test asks for it, stopped at session end.  Fails (never skips) when matrix-synapse is missing.
* ``matrix_user`` (function scope, async): an async factory ``await matrix_user(localpart=None,
  admin=False) -> MatrixAccount`` that registers a fresh user and returns it with a logged-in nio
  client; the clients are closed at teardown.  It also restarts Synapse if an earlier test left it
  stopped.
* a terminal-summary line with the measured Synapse start time(s).

Helpers (``create_room``, ``send_text``, ``wait_for_event`` ...) take a nio ``AsyncClient`` and raise
:class:`MatrixHelperError` on any Matrix error: nio returns errors as values, the helpers turn them into
exceptions so that a test never goes on with a ``RoomSendError`` in its hands.

PYTEST_DONT_REWRITE: test modules import this module before their ``pytest_plugins`` registers it,
and pytest would warn that it cannot rewrite its asserts (it has none that matter).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import hmac
import importlib.util
import itertools
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomSendResponse,
)

__all__ = [
    "SYNAPSE_MISSING_MESSAGE",
    "HomeserverUnreachable",
    "MatrixAccount",
    "MatrixHelperError",
    "MatrixUser",
    "SynapseServer",
    "SynapseStartError",
    "client_for",
    "create_room",
    "event_matcher",
    "free_port",
    "harness_client_config",
    "invite",
    "join",
    "matrix_user",
    "messages",
    "react",
    "redact",
    "relations",
    "send_event",
    "send_state",
    "send_text",
    "synapse",
    "wait_for_event",
]

SYNAPSE_MISSING_MESSAGE = "matrix-synapse is not installed: run `make test`, which installs the test extra"

START_TIMEOUT = 60.0
POLL_INTERVAL = 0.05
STOP_TIMEOUT = 10.0

# Every Synapse rate limiter a test could hit.  With the defaults 25 sends take ~80 s, because nio sleeps
# on 429 instead of failing.
_UNLIMITED = {"per_second": 10000, "burst_count": 10000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_profile": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_admin_redaction": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
}


class SynapseStartError(RuntimeError):
    """Synapse did not come up (exited early or did not answer in time); the message has its log tail."""


class MatrixHelperError(RuntimeError):
    """A Matrix request made by a harness helper failed (nio error value or HTTP error)."""


class HomeserverUnreachable(MatrixHelperError):
    """The homeserver could not be reached at all (connection refused/reset, timeout)."""


def synapse_installed() -> bool:
    """True when ``import synapse`` would work in this interpreter."""
    return importlib.util.find_spec("synapse") is not None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file, or a note when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"<{path.name}: not written>"
    return "\n".join(text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1


def _death_signal_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when we die (Linux, main thread only).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only safe from the main thread.
    It keeps a SIGKILLed test run from leaving a Synapse behind.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


class SynapseServer:
    """One Synapse process on 127.0.0.1 with a sqlite database in ``base_dir``.

    ``start()``/``stop()``/``restart()`` are synchronous (subprocess + urllib polling), so the object can
    live in a session fixture regardless of pytest-asyncio's loop scopes.  The port and the data directory
    are chosen on the first start and kept across restarts.
    """

    server_name = "localhost"

    def __init__(self, base_dir: Path | str | None = None) -> None:
        """Prepare (but do not start) a server; ``base_dir`` defaults to a fresh temporary directory."""
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="synapse-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.shared_secret = secrets.token_hex(32)
        self.port: int | None = None
        self.start_durations: list[float] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: Any = None
        self._user_counter = itertools.count(1)

    # ----------------------------------------------------------------------------------------------------
    # Paths and state

    @property
    def config_path(self) -> Path:
        """``homeserver.yaml``."""
        return self.base_dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (Python logging, INFO)."""
        return self.base_dir / "homeserver.log"

    @property
    def stdout_path(self) -> Path:
        """stdout + stderr of the process (tracebacks at start-up land here)."""
        return self.base_dir / "synapse.stdout.log"

    @property
    def url(self) -> str:
        """Base URL of the client API, e.g. ``http://127.0.0.1:41234``."""
        if self.port is None:
            raise RuntimeError("SynapseServer has not been started yet")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the Synapse process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def last_start_seconds(self) -> float | None:
        """Wall time of the latest successful start (process spawn until ``/versions`` answered)."""
        return self.start_durations[-1] if self.start_durations else None

    # ----------------------------------------------------------------------------------------------------
    # Config

    def _config(self) -> dict[str, Any]:
        assert self.port is not None
        d = self.base_dir
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": f"http://127.0.0.1:{self.port}/",
            "pid_file": str(d / "homeserver.pid"),
            "report_stats": False,
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client", "media"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.config"),
            "signing_key_path": str(d / "localhost.signing.key"),
            "media_store_path": str(d / "media_store"),
            "enable_media_repo": True,  # the bot uploads files (an organiser's CSV export) as m.file
            "enable_metrics": False,
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "bcrypt_rounds": 4,
            "macaroon_secret_key": secrets.token_hex(32),
            "form_secret": secrets.token_hex(32),
        }
        config.update(_RATE_LIMITS)
        return config

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "plain",
                    "filename": str(self.log_path),
                    "encoding": "utf-8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def _write_config(self) -> None:
        # JSON is valid YAML: no YAML writer needed.
        self.config_path.write_text(json.dumps(self._config(), indent=2) + "\n", encoding="utf-8")
        (self.base_dir / "log.config").write_text(
            json.dumps(self._log_config(), indent=2) + "\n", encoding="utf-8"
        )

    # ----------------------------------------------------------------------------------------------------
    # Process control

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start Synapse (no-op when running) and wait until ``/_matrix/client/versions`` answers.

        Returns the start duration in seconds.  Raises :class:`SynapseStartError` with the log tail if the
        process exits early or does not answer within ``timeout``.  On the very first start a port that
        was grabbed by someone else in the meantime is replaced by a new free port (up to 3 tries).
        """
        if not synapse_installed():
            raise SynapseStartError(SYNAPSE_MISSING_MESSAGE)
        if self.running:
            return 0.0
        first = self.port is None
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first:
                self.port = free_port()
                self._write_config()
            try:
                return self._spawn_and_wait(timeout)
            except SynapseStartError as exc:
                port_taken = "Address already in use" in str(exc)
                if not (first and port_taken and attempt + 1 < attempts):
                    raise
        raise AssertionError("unreachable")

    def _spawn_and_wait(self, timeout: float) -> float:
        self._stdout = self.stdout_path.open("ab")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            preexec_fn=_death_signal_preexec(),
        )
        deadline = started + timeout
        versions = f"{self.url}/_matrix/client/versions"
        while True:
            code = self._proc.poll()
            if code is not None:
                self._reap()
                raise SynapseStartError(
                    f"Synapse exited with code {code} during start-up (dir {self.base_dir}).\n"
                    f"--- {self.stdout_path.name} ---\n{_tail(self.stdout_path)}\n"
                    f"--- {self.log_path.name} ---\n{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(versions, timeout=1.0) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SynapseStartError(
                    f"Synapse did not answer {versions} within {timeout:.0f} s (dir {self.base_dir}).\n"
                    f"--- {self.stdout_path.name} ---\n{_tail(self.stdout_path)}\n"
                    f"--- {self.log_path.name} ---\n{_tail(self.log_path)}"
                )
            time.sleep(POLL_INTERVAL)
        duration = time.monotonic() - started
        self.start_durations.append(duration)
        return duration

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL.  No-op when not running."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=STOP_TIMEOUT)
        self._proc = None
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def restart(self, timeout: float = START_TIMEOUT) -> float:
        """Stop and start again on the same data directory and the same port; returns the start time."""
        self.stop()
        return self.start(timeout)

    def ensure_running(self) -> None:
        """Start (or restart after a crash / a test that left it stopped) when not running."""
        if not self.running:
            self._reap()
            self.start()

    def __enter__(self) -> SynapseServer:
        """``with SynapseServer() as hs:`` starts it ..."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """... and stops it (removing the data directory if this object created it)."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    # ----------------------------------------------------------------------------------------------------
    # Users

    def _next_localpart(self, prefix: str | None) -> str:
        return f"{prefix or 'user'}-{next(self._user_counter)}-{secrets.token_hex(3)}"

    async def register_user(
        self, localpart: str | None = None, admin: bool = False, *, exact: bool = False
    ) -> MatrixUser:
        """Register a user with the shared-secret admin API and return its credentials.

        ``localpart`` is a prefix: a counter and a random suffix are appended so that every call makes a
        new user on the shared server (``"bot"`` -> ``@bot-3-a1b2c3:localhost``).  Pass ``exact=True``
        to use it verbatim (fails if it is taken).
        """
        name = (localpart or "user") if exact else self._next_localpart(localpart)
        password = secrets.token_urlsafe(12)
        url = f"{self.url}/_synapse/admin/v1/register"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200 or "nonce" not in body:
                    raise MatrixHelperError(f"register {name}: GET nonce -> {resp.status} {body}")
                nonce = body["nonce"]
            mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
            mac.update(
                b"\x00".join(
                    [nonce.encode(), name.encode(), password.encode(), b"admin" if admin else b"notadmin"]
                )
            )
            payload = {
                "nonce": nonce,
                "username": name,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            }
            async with session.post(url, json=payload) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    raise MatrixHelperError(f"register {name}: POST -> {resp.status} {body}")
        return MatrixUser(
            user_id=body["user_id"],
            access_token=body["access_token"],
            device_id=body["device_id"],
            password=password,
            localpart=name,
            homeserver=self.url,
            admin=admin,
        )


@dataclass(frozen=True)
class MatrixUser:
    """Credentials of a registered user; ``homeserver`` is the base URL of the server."""

    user_id: str
    access_token: str
    device_id: str
    password: str
    localpart: str
    homeserver: str
    admin: bool = False


class MatrixAccount(NamedTuple):
    """What the ``matrix_user`` factory returns: ``user, client = await matrix_user()`` also works."""

    user: MatrixUser
    client: AsyncClient

    @property
    def user_id(self) -> str:
        """Shortcut for ``account.user.user_id``."""
        return self.user.user_id


# --------------------------------------------------------------------------------------------------------
# nio clients and helpers


def harness_client_config() -> AsyncClientConfig:
    """nio config for harness clients: fail fast instead of nio's default retry-forever.

    nio retries connection errors forever and sleeps on 429 by default; a test must fail instead.  A few
    quick retries remain so that a pooled keep-alive connection that died with a Synapse restart is
    replaced transparently.
    """
    return AsyncClientConfig(
        max_limit_exceeded=0,
        max_timeouts=3,
        backoff_factor=0.05,
        max_timeout_retry_wait_time=0.5,
        request_timeout=15,
        store_sync_tokens=False,
    )


async def client_for(user: MatrixUser, config: AsyncClientConfig | None = None) -> AsyncClient:
    """A nio client logged in as ``user`` via ``restore_login`` (no password login, no store, no E2E).

    The caller closes it (``await client.close()``); the ``matrix_user`` fixture does that itself.
    """
    client = AsyncClient(
        user.homeserver,
        user.user_id,
        device_id=user.device_id,
        config=config or harness_client_config(),
    )
    client.restore_login(user.user_id, user.device_id, user.access_token)
    return client


def _fail(what: str, resp: object) -> MatrixHelperError:
    status = getattr(resp, "status_code", None)
    message = getattr(resp, "message", None)
    detail = f"{status}: {message}" if status or message else repr(resp)
    return MatrixHelperError(f"{what} failed: {type(resp).__name__} {detail}")


async def _call(what: str, coro: Awaitable[Any]) -> Any:
    """Await a nio call, turning transport failures into :class:`HomeserverUnreachable`."""
    try:
        return await coro
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise HomeserverUnreachable(f"{what}: homeserver unreachable ({type(exc).__name__}: {exc})") from exc


async def _get_json(
    client: AsyncClient, path: str, params: dict[str, str] | None = None, version: str = "v3"
) -> dict[str, Any]:
    """Raw authenticated GET against the client API (``path`` starts after ``/_matrix/client/<version>``)."""
    url = f"{client.homeserver}/_matrix/client/{version}{path}"
    headers = {"Authorization": f"Bearer {client.access_token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
            session.get(url, params=params, headers=headers) as resp,
        ):
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise MatrixHelperError(f"GET {path} -> {resp.status} {body}")
            return dict(body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise HomeserverUnreachable(f"GET {path}: homeserver unreachable ({exc})") from exc


def _room(room_id: str) -> str:
    return quote(room_id, safe="")


async def create_room(
    client: AsyncClient,
    invite: Sequence[str] = (),
    power_levels: dict[str, Any] | None = None,
    encrypted: bool = False,
    *,
    name: str | None = None,
    initial_state: Sequence[dict[str, Any]] = (),
    room_version: str | None = None,
) -> str:
    """Create a private room, inviting ``invite``; returns the room id.

    ``power_levels`` is sent as ``power_level_content_override`` (a shallow merge over Synapse's
    defaults), e.g. ``{"users": {bot: 50}}`` or ``{"events": {"m.room.power_levels": 100}}``.

    Synapse 1.163 creates room version 12 by default: room ids have no ``:server`` part, the creator has
    unlimited power and must NOT be listed under ``users`` (Synapse refuses the room), and nio 0.26 reports
    the creator's level as 0.  Pass ``room_version="11"`` for classic power-level semantics.
    ``encrypted=True`` adds ``m.room.encryption`` (megolm) to the initial state.
    """
    state = list(initial_state)
    if encrypted:
        state.append(
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        )
    resp = await _call(
        "create room",
        client.room_create(
            name=name,
            invite=list(invite),
            initial_state=state,
            power_level_override=power_levels,
            room_version=room_version,
        ),
    )
    if not isinstance(resp, RoomCreateResponse):
        raise _fail("create room", resp)
    return str(resp.room_id)


async def invite(client: AsyncClient, room_id: str, user_id: str) -> None:
    """Invite ``user_id`` to ``room_id``."""
    resp = await _call("invite", client.room_invite(room_id, user_id))
    if not isinstance(resp, RoomInviteResponse):
        raise _fail(f"invite {user_id} to {room_id}", resp)


async def join(client: AsyncClient, room_id: str) -> str:
    """Join ``room_id`` (must be invited: rooms are private); returns the room id."""
    resp = await _call("join", client.join(room_id))
    if not isinstance(resp, JoinResponse):
        raise _fail(f"join {room_id}", resp)
    return str(resp.room_id)


async def send_event(client: AsyncClient, room_id: str, type: str, content: dict[str, Any]) -> str:
    """Send a message-like event of any ``type`` with raw ``content``; returns its event id."""
    resp = await _call(f"send {type}", client.room_send(room_id, type, content))
    if not isinstance(resp, RoomSendResponse):
        raise _fail(f"send {type} to {room_id}", resp)
    return str(resp.event_id)


async def send_text(
    client: AsyncClient,
    room_id: str,
    body: str,
    msgtype: str = "m.text",
    extra: dict[str, Any] | None = None,
) -> str:
    """Send ``m.room.message`` (``m.text`` by default, ``m.notice`` ...); ``extra`` is merged into content.

    Returns the event id.
    """
    content: dict[str, Any] = {"msgtype": msgtype, "body": body}
    if extra:
        content.update(extra)
    return await send_event(client, room_id, "m.room.message", content)


async def send_state(
    client: AsyncClient, room_id: str, type: str, content: dict[str, Any], state_key: str = ""
) -> str:
    """Put a state event (e.g. ``m.room.power_levels``); returns its event id."""
    resp = await _call(f"put state {type}", client.room_put_state(room_id, type, content, state_key))
    if not isinstance(resp, RoomPutStateResponse):
        raise _fail(f"put state {type} in {room_id}", resp)
    return str(resp.event_id)


async def react(client: AsyncClient, room_id: str, event_id: str, key: str) -> str:
    """Annotate ``event_id`` with ``key`` (an ``m.reaction``); returns the reaction's event id."""
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
    return await send_event(client, room_id, "m.reaction", content)


async def redact(client: AsyncClient, room_id: str, event_id: str, reason: str | None = None) -> str:
    """Redact ``event_id``; returns the redaction's event id."""
    resp = await _call("redact", client.room_redact(room_id, event_id, reason=reason))
    if not isinstance(resp, RoomRedactResponse):
        raise _fail(f"redact {event_id} in {room_id}", resp)
    return str(resp.event_id)


async def messages(client: AsyncClient, room_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The latest ``limit`` events of the room as raw dicts (``/messages?dir=b``), oldest first/newest last.

    Includes state events (membership, power levels ...) and redactions as the server returns them.
    """
    body = await _get_json(client, f"/rooms/{_room(room_id)}/messages", {"dir": "b", "limit": str(limit)})
    return list(reversed(body.get("chunk", [])))


async def relations(
    client: AsyncClient, room_id: str, event_id: str, rel_type: str | None = None
) -> list[dict[str, Any]]:
    """Raw events relating to ``event_id`` (``/relations/{event_id}[/{rel_type}]``, all pages).

    Oldest first.
    """
    path = f"/rooms/{_room(room_id)}/relations/{quote(event_id, safe='')}"
    if rel_type:
        path += f"/{quote(rel_type, safe='')}"
    events: list[dict[str, Any]] = []
    params = {"dir": "b", "limit": "100"}
    while True:
        body = await _get_json(client, path, params, version="v1")
        events.extend(body.get("chunk", []))
        if not body.get("next_batch"):
            break
        params = {**params, "from": str(body["next_batch"])}
    return list(reversed(events))


def event_matcher(
    type: str | None = None,
    sender: str | None = None,
    msgtype: str | None = None,
    body_contains: str | None = None,
    relates_to: str | None = None,
) -> Callable[[dict[str, Any]], bool]:
    """A predicate for :func:`wait_for_event`: every given criterion must hold.

    ``relates_to`` matches ``content["m.relates_to"]["event_id"]``.
    """

    def match(event: dict[str, Any]) -> bool:
        content = event.get("content") or {}
        if type is not None and event.get("type") != type:
            return False
        if sender is not None and event.get("sender") != sender:
            return False
        if msgtype is not None and content.get("msgtype") != msgtype:
            return False
        if body_contains is not None and body_contains not in str(content.get("body", "")):
            return False
        rel = content.get("m.relates_to") or {}
        return relates_to is None or rel.get("event_id") == relates_to

    return match


async def wait_for_event(
    client: AsyncClient,
    room_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 10,  # noqa: ASYNC109  (a deadline for polling, not a request timeout)
    *,
    after: str | None = None,
    interval: float = 0.1,
    limit: int = 100,
) -> dict[str, Any]:
    """Poll ``/messages`` until an event matching ``predicate`` appears; return the oldest such event.

    ``after``: only look at events newer than this event id (e.g. the command a test just sent, so that
    an older answer of the bot does not match).  Raises ``TimeoutError`` listing the latest events.
    """
    deadline = time.monotonic() + timeout
    recent: list[dict[str, Any]] = []
    while True:
        with contextlib.suppress(HomeserverUnreachable):
            recent = await messages(client, room_id, limit)
            candidates = recent
            if after is not None:
                ids = [e.get("event_id") for e in recent]
                if after in ids:
                    candidates = recent[ids.index(after) + 1 :]
            for event in candidates:
                if predicate(event):
                    return event
        if time.monotonic() >= deadline:
            summary = "\n".join(
                f"  {e.get('sender')} {e.get('type')} {json.dumps(e.get('content'))[:160]}"
                for e in recent[-10:]
            )
            raise TimeoutError(
                f"no matching event in {room_id} within {timeout} s; latest events:\n{summary}"
            )
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------------------------------------
# pytest fixtures and hooks

_SERVER_KEY = pytest.StashKey[SynapseServer]()


@pytest.fixture(scope="session")
def synapse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    """One Synapse per test run, started on first use; fails (does not skip) without matrix-synapse."""
    if not synapse_installed():
        pytest.fail(SYNAPSE_MISSING_MESSAGE, pytrace=False)
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    request.config.stash[_SERVER_KEY] = server
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def matrix_user(synapse: SynapseServer) -> AsyncIterator[Callable[..., Awaitable[MatrixAccount]]]:
    """Async factory: ``await matrix_user(localpart=None, admin=False)`` -> :class:`MatrixAccount`.

    Each call registers a new user (``localpart`` is a prefix) and returns it with a logged-in nio
    client; all clients are closed at teardown.
    """
    synapse.ensure_running()
    clients: list[AsyncClient] = []

    async def make(localpart: str | None = None, admin: bool = False) -> MatrixAccount:
        user = await synapse.register_user(localpart, admin)
        client = await client_for(user)
        clients.append(client)
        return MatrixAccount(user, client)

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print how long Synapse took to start (only when a test used the ``synapse`` fixture)."""
    server = config.stash.get(_SERVER_KEY, None)
    if server is None or not server.start_durations:
        return
    starts = ", ".join(f"{d:.2f} s" for d in server.start_durations)
    terminalreporter.write_sep("-", "synapse harness")
    terminalreporter.write_line(
        f"Synapse start time: {server.start_durations[0]:.2f} s (all starts incl. restarts: {starts}); "
        f"{server.url}, data in {server.base_dir}"
    )

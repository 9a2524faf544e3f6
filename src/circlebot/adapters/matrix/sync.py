"""The sync loop: log in, sync with a filter, back-fill a limited sync, hand each event to its part, keep the
sync token once a sync is handled; retry an outage with backoff. Also `processed`, for tests to wait on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from nio import LoginResponse, RoomMessagesResponse, SyncError, SyncResponse, WhoamiError, WhoamiResponse
from nio.api import MessageDirection

from circlebot.adapters.matrix import polls
from circlebot.adapters.matrix.client import FatalMatrixError, MatrixError, _check, _source
from circlebot.adapters.matrix.host import Host, PendingVotes
from circlebot.core.adapter import Dispatch, NotStored, storage_failed

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
_SEEN_MAX = 20_000
STOP_GRACE = 10.0  # seconds a stopping bot may take to finish the sync in hand
_BACKFILL_PAGES = 200

log = logging.getLogger(__name__)


class Sync(Host):
    """The loop that reads the homeserver's syncs and hands each event to the part that handles it."""

    async def serve(self, dispatch: Dispatch) -> None:
        """Log in, then sync and handle events until cancelled; an outage is retried with backoff."""
        self._dispatch = dispatch
        try:
            await self._retrying("log in", self._login)
            await self._load_dms()
            await self._load_handled()
            await self._load_undecrypted()
            token = await self._lookups.state.setting("sync_token")
            first = True
            delay = self._backoff[0]
            lost = False
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
                    if lost:  # a sync again after an outage
                        self.reconnects += 1
                    self.connected, lost = True, False
                    delay = self._backoff[0]
                except FatalMatrixError:
                    raise
                except (MatrixError, aiohttp.ClientError, TimeoutError) as e:
                    self.connected, lost = False, True
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
            self.connected = False
            for fut in self._waiters.values():
                fut.cancel()
            self._waiters.clear()
            await self.client.close()

    async def _step(self, resp: SyncResponse, since: str | None, first: bool) -> None:
        """Handle one sync response (after the key chores it brought), then keep its token."""
        await self._key_chores()
        await self._handle_sync(resp, since)
        await self._retry_undecrypted()
        await self._lookups.state.set_setting("sync_token", resp.next_batch)
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
        """Log in on the bot's one device and open its crypto store. An access token names its device (asked
        with ``whoami``); a password logs in once on the configured device and the login is kept in the store,
        so a restart neither logs in again nor makes a new device."""
        if self._token:
            device = await self._whoami(self._token)
            await self._restore(device or self.settings.device_id, self._token)
            return
        await self._make_store_dir()  # nio opens the store as the login succeeds: its directory must be there
        saved = await asyncio.to_thread(self._saved_session)
        if saved is not None:
            if await self._whoami(saved["access_token"], fatal=False) is not None:
                await self._restore(saved["device_id"], saved["access_token"])
                return
            await asyncio.to_thread(self._forget_session)  # logged out meanwhile: log in again
        resp = await self.client.login(self._password, device_name="circlebot")
        if not isinstance(resp, LoginResponse):
            status = getattr(resp, "status_code", "")
            if status in ("M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_PARAM"):
                raise FatalMatrixError(f"the homeserver refused the bot's password login ({status})")
            _check(resp, LoginResponse, "log in")
        await self._open_store()
        await asyncio.to_thread(self._save_session)

    async def _whoami(self, token: str, *, fatal: bool = True) -> str | None:
        """The device the access token belongs to; a refused token is fatal (or None when not `fatal`)."""
        self.client.access_token = token
        resp = await self.client.whoami()
        if isinstance(resp, WhoamiError) and resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            if not fatal:
                return None
            raise FatalMatrixError(f"the homeserver refused the bot's access token ({resp.status_code})")
        who = _check(resp, WhoamiResponse, "ask the homeserver who the bot is")
        if who.user_id != self.user_id:
            raise FatalMatrixError(f"the access token is {who.user_id}'s, not {self.user_id}'s")
        return who.device_id if isinstance(who.device_id, str) else ""

    async def _restore(self, device_id: str, token: str) -> None:
        if self.settings.device_id != device_id:
            log.info("matrix: the access token is for device %s (configured: %s)", device_id, self.settings.device_id)
        self.client.user_id, self.client.device_id = self.user_id, device_id
        await self._open_store()  # before restore_login, which would open it on the event loop
        self.client.restore_login(self.user_id, device_id, token)

    async def _sync(self, token: str | None, timeout_ms: int) -> SyncResponse:
        resp = await self.client.sync(timeout=timeout_ms, sync_filter=SYNC_FILTER, since=token)
        if isinstance(resp, SyncError) and resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
            raise FatalMatrixError(f"the homeserver refused the bot's access token ({resp.status_code})")
        return _check(resp, SyncResponse, "sync")

    async def _after_first_sync(self) -> None:
        await self._ensure_cross_signed()
        await self._check_rooms()
        await self._read_back_open_polls()

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

    async def _process_room(self, room_id: str, events: Sequence[dict[str, Any]]) -> None:
        pending = PendingVotes()
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
                elif kind == "m.room.encrypted":  # what is left encrypted after nio decrypted what it could
                    await self._on_undecryptable(room_id, src)
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


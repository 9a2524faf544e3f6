"""A room member on an encrypting nio client, as Element's members are: its own crypto store and device keys,
the key chores after each sync, every event it sends encrypted, and what it reads decrypted with its own keys.

Used by the encryption tests (test_matrix_e2e.py) and by the Matrix driver, whose users read the direct-message
rooms the bot opens (encrypted, like any room Element would open) the way their client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
from nio import AsyncClient, AsyncClientConfig, DownloadResponse, MegolmEvent
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import EncryptionError

from synapse_harness import MatrixAccount, messages

Source = dict[str, Any]
WAIT = 15.0
#: Enough timeline per room in one sync for a room just joined (a direct room's creation state and its messages).
SYNC_FILTER: dict[str, Any] = {"room": {"timeline": {"limit": 100}}}


class Member:
    """A room member on an encrypting nio client (its crypto store in `store`): syncs with the key chores,
    sends every event encrypted (reactions too, as Element does), and reads what it can decrypt."""

    def __init__(self, account: MatrixAccount, store: Path) -> None:
        self.account = account
        self.user_id = account.user_id
        store.mkdir(parents=True, exist_ok=True)
        user = account.user
        self.client = AsyncClient(user.homeserver, user.user_id, device_id=user.device_id, store_path=str(store),
                                  config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False,
                                                           max_limit_exceeded=0, max_timeouts=3,
                                                           request_timeout=15))
        self.client.restore_login(user.user_id, user.device_id, user.access_token)
        assert self.client.olm is not None, "the member's crypto store did not open"
        self.token: str | None = None
        self.timeline: dict[str, list[Any]] = {}

    async def sync(self, timeout_ms: int = 0) -> None:
        client = self.client
        resp = await client.sync(timeout=timeout_ms, since=self.token, full_state=self.token is None,
                                 sync_filter=SYNC_FILTER)
        self.token = resp.next_batch
        for room_id, info in resp.rooms.join.items():
            self.timeline.setdefault(room_id, []).extend(info.timeline.events)
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()
        for events in self.timeline.values():  # keys that came later
            for i, event in enumerate(events):
                if isinstance(event, MegolmEvent):
                    with contextlib.suppress(EncryptionError):
                        events[i] = client.decrypt_event(event)

    async def send(self, room_id: str, kind: str, content: dict[str, Any]) -> str:
        """Send one event encrypted for the room (its room key shared first with every member's devices)."""
        client = self.client
        if room_id not in client.rooms:
            await self.sync()
        room = client.rooms[room_id]
        if not room.members_synced:
            await client.joined_members(room_id)
        if client.should_query_keys:
            await client.keys_query()
        if client.olm is not None and client.olm.should_share_group_session(room_id):
            await client.share_group_session(room_id, ignore_unverified_devices=True)
        sent_as, body = client.encrypt(room_id, kind, content)
        assert sent_as == "m.room.encrypted"
        url = f"{client.homeserver}/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/{uuid4()}"
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                    session.put(url, json=body, headers={"Authorization": f"Bearer {client.access_token}"}) as r):
            answer = await r.json()
            assert r.status == 200, answer
            return str(answer["event_id"])

    async def command(self, room_id: str, text: str) -> str:
        return await self.send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})

    def readable(self, room_id: str) -> list[Source]:
        """The room's events as this member's client shows them (decrypted where it has the keys)."""
        return [e.source for e in self.timeline.get(room_id, []) if not isinstance(e, MegolmEvent)]

    async def wait_for(self, room_id: str, match: Callable[[Source], bool], timeout: float = WAIT) -> Source:  # noqa: ASYNC109
        """Sync until an event this member can read matches; the member's client decrypts it."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.readable(room_id) if match(e)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                shown = [(e.get("type"), (e.get("content") or {}).get("body")) for e in self.readable(room_id)][-8:]
                undecrypted = sum(isinstance(e, MegolmEvent) for e in self.timeline.get(room_id, []))
                raise TimeoutError(f"nothing matching within {timeout} s; readable: {shown}, "
                                   f"{undecrypted} undecryptable")
            await self.sync(timeout_ms=200)

    async def history(self, room_id: str, limit: int = 100, timeout: float = WAIT) -> list[Source]:  # noqa: ASYNC109
        """The room's latest events (``/messages``, oldest first) as this member's client shows them: each
        encrypted one decrypted with the room keys the member's device received. Syncs (for keys still on their
        way) until every encrypted event decrypts, within `timeout`; raises if one never does."""
        deadline = time.monotonic() + timeout
        while True:
            await self.sync()
            shown: list[Source] = []
            unreadable: list[str] = []
            for raw in await messages(self.account.client, room_id, limit):
                if raw.get("type") != "m.room.encrypted":
                    shown.append(raw)
                    continue
                event = MegolmEvent.from_dict(raw)
                assert isinstance(event, MegolmEvent), raw
                event.room_id = room_id
                try:
                    shown.append(self.client.decrypt_event(event).source)
                except EncryptionError:
                    unreadable.append(str(raw.get("event_id")))
            if not unreadable:
                return shown
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.user_id} cannot decrypt {unreadable} in {room_id} within {timeout} s")
            await asyncio.sleep(0.05)

    async def download(self, content: Source) -> bytes:
        """The file of an ``m.file`` event's content, as the member's client gets it: fetched from the media
        repository (the authenticated endpoint) and, for an encrypted attachment (``file``), decrypted with its
        key after checking its hash."""
        encrypted = content.get("file")
        url = str(encrypted["url"] if isinstance(encrypted, dict) else content["url"])
        resp = await self.client.download(mxc=url)
        assert isinstance(resp, DownloadResponse), resp
        assert isinstance(resp.body, bytes)
        if not isinstance(encrypted, dict):
            return resp.body
        return bytes(decrypt_attachment(resp.body, encrypted["key"]["k"], encrypted["hashes"]["sha256"],
                                        encrypted["iv"]))

"""End-to-end encryption: nio's crypto store (the bot's device keys, its Olm and Megolm sessions) opened
beside the database, the key chores a plain ``sync()`` leaves undone, members' devices trusted on first use,
and events sealed for an encrypted room before they are sent.

Trust on first use: the first time the bot sees a device of a room member (by ``/keys/query``) it marks it
verified, so room keys are shared with it without anyone comparing emoji; nio keeps the device's ed25519 key
from then on and ignores a different key announced later under the same device id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from nio import (
    KeysClaimResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    MatrixRoom,
    MegolmEvent,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomKeyRequestResponse,
    RoomMemberEvent,
    RoomPutStateResponse,
)
from nio.api import Api
from nio.exceptions import EncryptionError, LocalProtocolError

from circlebot.adapters.matrix import crosssign
from circlebot.adapters.matrix.client import MEGOLM, MatrixError, _check, _dict, _q, _ts
from circlebot.adapters.matrix.host import Host
from circlebot.core.adapter import OpenPoll
from circlebot.core.domain import Post
from circlebot.core.text import TimeValue, count, named_time

#: The saved login of a password-configured bot (its access token for its one device), inside the store.
SESSION_FILE = "session.json"

#: Unreadable events kept for a key that may still come (the oldest go first).
UNDECRYPTED_KEPT = 500

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Undecrypted:
    """An encrypted event kept until its key comes: its room, its raw event, when it came (monotonic)."""

    room_id: str
    source: dict[str, Any]
    seen: float
    reported: bool = False


class Crypto(Host):
    """The bot's device keys and the encryption of what it sends into encrypted rooms."""

    @property
    def encrypting(self) -> bool:
        """Whether the crypto store is open (encryption on and logged in)."""
        return self.client.olm is not None

    async def _open_store(self) -> None:
        """Open (or create) the crypto store of the logged-in user and device. The store file is named after
        both, so a new device gets a new store and the old one stays as it was."""
        if self._crypto_dir is None:
            return
        await self._make_store_dir()
        if self.client.store is None:
            await asyncio.to_thread(self.client.load_store)  # SQLite: off the event loop
        if self.client.olm is None:
            raise MatrixError(f"could not open the Matrix crypto store in {self._crypto_dir}")
        log.info("matrix: crypto store %s open for device %s (identity key %s)", self._crypto_dir,
                 self.client.device_id, self.client.olm.account.identity_keys["ed25519"])

    async def _make_store_dir(self) -> None:
        if self._crypto_dir is not None:
            await asyncio.to_thread(_make_private_dir, self._crypto_dir)

    # keys ------------------------------------------------------------------------------------------
    async def _key_chores(self) -> None:
        """What ``sync_forever`` would do after each sync: upload the device's (one-time) keys, query the keys
        of members whose devices changed, claim one-time keys for new Olm sessions, send queued to-device
        messages (key requests, forwarded keys)."""
        client = self.client
        if client.olm is None:
            return
        if client.should_upload_keys:
            _check(await client.keys_upload(), KeysUploadResponse, "upload the device keys")
        if client.should_query_keys:
            _check(await client.keys_query(), KeysQueryResponse, "query members' device keys")
            self._trust_new_devices()
        if client.should_claim_keys:
            _check(await client.keys_claim(client.get_users_for_key_claiming()), KeysClaimResponse,
                   "claim one-time keys")
        await client.send_to_device_messages()

    def _trust_new_devices(self) -> None:
        """Trust on first use: every device seen for the first time is marked verified (documented in the
        README); a device the bot's owner blacklisted stays so."""
        store = self.client.olm.device_store if self.client.olm else None
        if store is None:
            return
        for device in store:
            if device.user_id == self.user_id and device.id == self.client.device_id:
                continue
            if not device.verified and not device.blacklisted and not device.ignored:
                self.client.verify_device(device)
                log.info("matrix: trusting %s's device %s on first use", device.user_id, device.id)

    async def _has_device_keys(self, user_id: str) -> bool | None:
        """Whether the member has a device with encryption keys, asked of the homeserver now (``/keys/query``
        for that one user, through nio, so its device store learns the devices too, trusted on first use):
        False when none of their devices has uploaded keys (their client does not encrypt, or they never logged
        in with one that does); None when it cannot be told (the query failed, or their homeserver did not
        answer: the spec lists it under ``failures``)."""
        if self.client.olm is None:
            return None
        method, path, data = Api.keys_query(self.client.access_token, {user_id})
        resp = await self.client._send(KeysQueryResponse, method, path, data)
        if not isinstance(resp, KeysQueryResponse):
            log.warning("matrix: could not ask for %s's device keys: %s", user_id, getattr(resp, "message", resp))
            return None
        if user_id.partition(":")[2] in (resp.failures or {}):
            log.warning("matrix: %s's homeserver did not answer for their device keys", user_id)
            return None
        self._trust_new_devices()
        return any(True for _ in self.client.olm.device_store.active_user_devices(user_id))

    # cross-signing ---------------------------------------------------------------------------------
    async def _ensure_cross_signed(self) -> None:
        """At start: the device signed by the bot's self-signing key (a new device after a move is signed
        now), with the keys from the crypto store, or restored from the recovery key on a new host. Without
        keys it only says how to set them up: `circlebot matrix setup` uploads them (once)."""
        if self.client.olm is None or self._crypto_dir is None:
            return
        try:
            keys = await asyncio.to_thread(crosssign.load_keys, self._crypto_dir, self.user_id)
            hs = crosssign.Homeserver(self.settings.homeserver, self.user_id, self.client.access_token)
            on_server = hs.master_on_server(await hs.query())
            if keys is None and self._recovery_key:
                keys = crosssign.CrossSigningKeys.from_recovery_key(self._recovery_key)
                if on_server != keys.public("master"):
                    raise crosssign.CrossSigningError("the recovery key does not match the bot's master key on the "
                                                      "homeserver; run `circlebot matrix setup`")
                await asyncio.to_thread(crosssign.save_keys, self._crypto_dir, self.user_id, keys)
                log.info("matrix: cross-signing keys restored from the recovery key")
            if keys is None:
                log.warning("matrix: the bot's device is not cross-signed, so Element may refuse to share room "
                            "keys with it; run `circlebot matrix setup` once")
                return
            if on_server != keys.public("master"):
                log.warning("matrix: the bot's cross-signing keys on the homeserver are not the ones in the crypto "
                            "store; run `circlebot matrix setup` to upload them again")
                return
            if await hs.sign_device(keys, str(self.client.device_id)):
                log.info("matrix: signed device %s with the bot's self-signing key", self.client.device_id)
        except (crosssign.CrossSigningError, aiohttp.ClientError, TimeoutError) as e:
            log.warning("matrix: cross-signing the device failed: %s", e)

    # rooms -----------------------------------------------------------------------------------------
    async def _know_room(self, room_id: str) -> MatrixRoom | None:
        """nio's view of a room the bot is in, made from the homeserver's state when no sync has shown it yet
        (a quiet room after a restart, a direct room just opened); later syncs keep it current (encryption
        switched on included). None with encryption off."""
        room = self.client.rooms.get(room_id)
        if room is not None or self.client.olm is None:
            return room
        resp = await self.client.room_get_state_event(room_id, "m.room.encryption")
        if isinstance(resp, RoomGetStateEventResponse):
            encrypted = bool(resp.content.get("algorithm"))
        elif getattr(resp, "status_code", None) == "M_NOT_FOUND":
            encrypted = False
        else:
            raise MatrixError(f"cannot tell whether {room_id} is encrypted: {getattr(resp, 'message', resp)}")
        room = self.client.rooms.setdefault(room_id, MatrixRoom(room_id, self.user_id, encrypted=encrypted))
        if encrypted:
            room.encrypted = True
            self.client.encrypted_rooms.add(room_id)
        return room

    async def _encrypted_room(self, room_id: str) -> MatrixRoom | None:
        """nio's view of the room when what the bot sends there must be encrypted (a plain direct room the bot
        opened is switched first, once the member can read it), else None."""
        if self.client.olm is None:
            return None
        room = await self._know_room(room_id)
        if room is not None and not room.encrypted and room_id in self._dm_rooms:
            await self._encrypt_direct_room(room)
        return room if room is not None and room.encrypted else None

    async def _encrypt_direct_room(self, room: MatrixRoom) -> None:
        """A plain direct room the bot opened is switched to encryption at the first send into it once the
        member has a device with keys: one it opened in clear because they had none then (`_dm_room`), or one
        an older circlebot opened before it encrypted them. While they have none it stays plain, or they could
        not read what the bot writes (the room key would go to no device of theirs, and a device added later
        cannot read what was sent before it): their keys are asked for at each send, so the first send after
        their client uploads keys is encrypted. Only a room the bot created: one a member opened stays as they
        made it. Matrix has no way back, so this is for good; a refusal is logged and the room stays plain."""
        room_id = room.room_id
        if room_id in self._dm_checked:
            return
        member = next((u for u, r in self._dms.items() if r == room_id), None)
        if member is None or not await self._has_device_keys(member):
            log.debug("matrix: the direct room %s stays plain: %s has no device with encryption keys yet",
                      room_id, member)
            return
        state = await self.client.room_get_state(room_id)
        if not isinstance(state, RoomGetStateResponse):  # looked at again with the next send
            log.warning("matrix: cannot read the state of the direct room %s: %s", room_id,
                        getattr(state, "message", state))
            return
        self._dm_checked.add(room_id)
        create = next((e for e in state.events if isinstance(e, dict) and e.get("type") == "m.room.create"), None)
        if create is None or create.get("sender") != self.user_id:
            return
        resp = await self.client.room_put_state(room_id, "m.room.encryption", {"algorithm": MEGOLM})
        if not isinstance(resp, RoomPutStateResponse):
            log.warning("matrix: could not switch the direct room %s to encryption: %s", room_id,
                        getattr(resp, "message", resp))
            return
        room.encrypted = True
        self.client.encrypted_rooms.add(room_id)
        log.info("matrix: switched the direct room %s with %s to encryption (they have a device with keys)",
                 room_id, member)

    async def _load_members(self, room: MatrixRoom) -> None:
        """nio's member list of an encrypted room, from the homeserver: who has joined and who is invited. As
        Element does, the room key goes to the devices of invited members too: they read what was sent before
        they accepted (the history of the direct rooms the bot opens is visible to them), such as the bot's
        first message in a direct room it has just opened."""
        path = f"/_matrix/client/v3/rooms/{_q(room.room_id)}/members?not_membership=leave"
        members = [e for e in (RoomMemberEvent.from_dict(raw) for raw in (await self._get_json(path)).get("chunk", [])
                               if isinstance(raw, dict))
                   if isinstance(e, RoomMemberEvent) and e.membership in ("join", "invite")]
        present = {e.state_key for e in members}
        for user_id in [u for u in room.users if u not in present]:
            room.remove_member(user_id)
        for event in members:
            room.handle_membership(event)
        room.members_synced = True
        if self.client.olm is not None:
            self.client.olm.update_tracked_users(room)

    async def _seal(self, room_id: str, kind: str, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The event type and content to send: in an encrypted room, ``m.room.encrypted`` with the event sealed
        by the room's Megolm session (shared first with the devices of every member, invited ones included, that
        lack it). Relations stay readable to the server (nio copies ``m.relates_to`` outside), so replies, votes
        and reactions relate."""
        room = await self._encrypted_room(room_id)
        if room is None:
            return kind, content
        client = self.client
        if not room.members_synced:
            await self._load_members(room)
        await self._key_chores()
        if client.olm is not None and client.olm.should_share_group_session(room_id):
            sharing = client.sharing_session.get(room_id)
            if sharing is not None:
                await sharing.wait()
            else:
                await client.share_group_session(room_id, ignore_unverified_devices=True)
        try:
            return client.encrypt(room_id, kind, content)  # type: ignore[no-any-return]
        except (LocalProtocolError, EncryptionError) as e:
            raise MatrixError(f"cannot encrypt for {room_id}: {e}") from e

    # events the bot cannot decrypt --------------------------------------------------------------------
    async def _on_undecryptable(self, room_id: str, src: Mapping[str, Any]) -> None:
        """An encrypted event the bot cannot read: with encryption off, the room is reported; else the event is
        kept, its key requested (nio asks the bot's own other devices), and it is tried again after each sync
        (`_retry_undecrypted`). Nothing is dropped: one that stays unreadable is reported to its sender."""
        if self.client.olm is None:
            if room_id in self._rooms:
                self._warn_encrypted(room_id)
            return
        event = MegolmEvent.from_dict(dict(src))
        if not isinstance(event, MegolmEvent):
            log.warning("matrix: skipped a malformed encrypted event %s in %s", src.get("event_id"), room_id)
            return
        event.room_id = room_id
        log.warning("matrix: cannot decrypt event %s from %s in %s yet (Megolm session %s); asking for its key",
                    event.event_id, event.sender, room_id, event.session_id)
        self._undecrypted[event.event_id] = Undecrypted(room_id, dict(src), time.monotonic())
        while len(self._undecrypted) > UNDECRYPTED_KEPT:
            self._undecrypted.pop(next(iter(self._undecrypted)))
        await self._save_undecrypted()
        if event.session_id not in self.client.outgoing_key_requests:
            resp = await self.client.request_room_key(event)
            if not isinstance(resp, RoomKeyRequestResponse):
                log.warning("matrix: could not request the key of session %s: %s", event.session_id,
                            getattr(resp, "message", resp))

    async def _retry_undecrypted(self) -> None:
        """After a sync (which may have brought room keys): handle what now decrypts, as if it had just come;
        report what stayed unreadable past `undecryptable_grace` (once to each sender, and each vote in an open
        poll to whoever opened the poll)."""
        if self.client.olm is None or not self._undecrypted:
            return
        changed = False
        olm = self.client.olm
        for event_id, kept in list(self._undecrypted.items()):
            event = MegolmEvent.from_dict(dict(kept.source))
            event.room_id = kept.room_id
            decrypted = None
            if olm.inbound_group_store.get(kept.room_id, event.sender_key, event.session_id) is not None:
                with contextlib.suppress(EncryptionError):  # only once its key is there: nio logs each failure
                    decrypted = self.client.decrypt_event(event)
            if decrypted is not None and not isinstance(decrypted, MegolmEvent) and isinstance(
                    getattr(decrypted, "source", None), dict):
                log.info("matrix: decrypted event %s in %s after its key came", event_id, kept.room_id)
                self._seen.pop(event_id, None)
                await self._process_room(kept.room_id, [decrypted.source])  # the database failed: kept, retried
                del self._undecrypted[event_id]
                changed = True
                continue
            if not kept.reported and time.monotonic() - kept.seen >= self.undecryptable_grace:
                kept.reported = True
                changed = True
                await self._report_undecryptable(kept)
        if changed:
            await self._save_undecrypted()

    async def _report_undecryptable(self, kept: Undecrypted) -> None:
        src = kept.source
        sender, room_id = str(src.get("sender")), kept.room_id
        content = _dict(src.get("content"))
        session = str(content.get("session_id"))
        rel = _dict(content.get("m.relates_to"))
        poll = None
        if rel.get("rel_type") == "m.reference" and isinstance(rel.get("event_id"), str):
            poll = next((p for p in await self._lookups.open_polls() if p.message.id == rel["event_id"]), None)
        when = named_time(TimeValue(_ts(src.get("origin_server_ts"))), self._zone_of(room_id))
        if poll is not None:
            await self._note_uncertain(poll, sender, room_id)
        told_key = f"{sender} {session}"
        if await self._state.get("undecryptable_told", told_key):
            return
        await self._state.put("undecryptable_told", told_key, "1")
        what = f"your vote on poll #{poll.poll_id}" if poll is not None else "your message"
        text = (f"I could not read {what} sent at {when} in an encrypted room: your device did not share its "
                f"encryption key with mine (device `{self.client.device_id}`), so I did nothing with it"
                f"{' and the vote is not counted' if poll is not None else ''}. Please send it again. If this "
                "keeps happening, make sure your app sends keys to this bot's device (in Element: the bot's "
                "device must not be blocked, and \"never send to unverified devices\" must be off).")
        await self._tell(sender, text)

    async def _note_uncertain(self, poll: OpenPoll, sender: str, room_id: str) -> None:
        """A vote that stayed unreadable: listed for the poll's opener as uncertain (it is not counted)."""
        key = poll.message.id
        raw = await self._state.get("uncertain_votes", key)
        voters: list[str] = json.loads(raw) if raw else []
        if sender in voters:
            return
        voters.append(sender)
        await self._state.put("uncertain_votes", key, json.dumps(voters), poll_message=key)
        names = ", ".join([f"{await self._display_name(room_id, v) or v} (`{v}`)" for v in voters])
        log.warning("matrix: poll #%d has %d vote(s) the bot cannot decrypt: %s", poll.poll_id, len(voters), names)
        if poll.opener is not None:
            they = "it is" if len(voters) == 1 else "they are"
            await self._tell(poll.opener.id, f"Poll #{poll.poll_id}: {count(len(voters), 'vote')} could not be "
                                             f"decrypted, so {they} not counted and the result is uncertain: "
                                             f"{names}. Each voter has been asked to vote again.")

    async def _tell(self, user_id: str, text: str) -> None:
        """A private notice to a member (their direct-message room with the bot)."""
        try:
            room = await self._dm_room(user_id)
            await self._send_post(room, Post(text), self._zone_of(room))
        except MatrixError as e:
            log.warning("matrix: could not tell %s privately (%s): %s", user_id, e, text)

    async def _save_undecrypted(self) -> None:
        """The kept events survive a restart (a setting: the sync token has moved past them)."""
        data = [{"room": k.room_id, "event": k.source, "reported": k.reported} for k in self._undecrypted.values()]
        await self._lookups.state.set_setting("undecrypted", json.dumps(data))

    async def _load_undecrypted(self) -> None:
        raw = await self._lookups.state.setting("undecrypted")
        now = time.monotonic()
        for item in json.loads(raw) if raw else []:
            src = item.get("event") or {}
            if isinstance(src.get("event_id"), str):
                self._undecrypted[src["event_id"]] = Undecrypted(item["room"], src, now, bool(item.get("reported")))

    def _readable(self, event: Any) -> Any:
        """The event decrypted when it is an encrypted one the bot has the key for, else as it is (for events
        nio does not decrypt itself, such as the relations of a poll)."""
        if isinstance(event, MegolmEvent) and self.client.olm is not None:
            try:
                return self.client.decrypt_event(event)
            except EncryptionError:
                return event
        return event

    # the saved login (password only) -----------------------------------------------------------------
    def _saved_session(self) -> Mapping[str, str] | None:
        """The login kept from a password login, when it is for this user (a restart reuses it: same device,
        same access token, no new login)."""
        if self._crypto_dir is None:
            return None
        try:
            data = json.loads((self._crypto_dir / SESSION_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(data, dict) or data.get("user_id") != self.user_id
                or not all(isinstance(data.get(k), str) for k in ("device_id", "access_token"))):
            return None
        return data

    def _save_session(self) -> None:
        if self._crypto_dir is None:
            return
        _make_private_dir(self._crypto_dir)
        path = self._crypto_dir / SESSION_FILE
        data = {"user_id": self.user_id, "device_id": self.client.device_id, "access_token": self.client.access_token}
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(path.with_suffix(".tmp"), path)

    def _forget_session(self) -> None:
        if self._crypto_dir is not None:
            (self._crypto_dir / SESSION_FILE).unlink(missing_ok=True)


def _make_private_dir(path: Path) -> None:
    """The store directory, readable by its owner only (it holds the bot's private keys)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)

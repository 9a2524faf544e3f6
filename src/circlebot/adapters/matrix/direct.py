"""Direct-message rooms: the one room per member where private answers go (and secret votes come from), opened
on first use or joined when a circle member invites the bot, remembered across restarts, forgotten when the
member leaves."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from nio import DirectRoomsResponse, JoinResponse, RoomCreateResponse, RoomGetStateEventResponse
from nio.api import RoomPreset

from circlebot.adapters.matrix.client import MEGOLM, _check, _q
from circlebot.adapters.matrix.host import Host

log = logging.getLogger(__name__)


class Direct(Host):
    """Each member's direct-message room with the bot."""

    async def _load_dms(self) -> None:
        """The direct rooms the bot knows (a setting), each made sure of in its ``m.direct`` account data: a room
        a member opened was not recorded there by circlebot before 2026-12."""
        value = await self._lookups.state.setting("dm_rooms")
        self._dms = dict(json.loads(value)) if value else {}
        self._dm_rooms = set(self._dms.values())
        if self._dms:
            await self._mark_direct(*self._dms.items())

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
                # A member with no device keys could never read an encrypted room's first messages (the room
                # key would go to no device of theirs): their room starts plain, switched once they have keys.
                keys = await self._has_device_keys(user_id) if self.encrypting else None
                encrypted = self.encrypting and keys is not False
                resp = _check(await self.client.room_create(is_direct=True, invite=[user_id],
                                                            preset=RoomPreset.trusted_private_chat,
                                                            initial_state=self._dm_initial_state(encrypted)),
                              RoomCreateResponse, "create a direct-message room")
                room = str(resp.room_id)
                self._dms[user_id] = room
                self._dm_rooms.add(room)
                await self._lookups.state.set_setting("dm_rooms", json.dumps(self._dms))
                if encrypted:
                    log.info("matrix: opened an encrypted direct-message room with %s", user_id)
                elif self.encrypting:
                    log.info("matrix: opened a plain direct-message room with %s: none of their devices has "
                             "encryption keys, so they could not read an encrypted one; it is switched to "
                             "encryption at the first message after they have a device with keys", user_id)
                else:
                    log.info("matrix: opened a direct-message room with %s", user_id)
                await self._mark_direct((user_id, room))
                return room
        finally:
            if not lock.locked():
                self._dm_locks.pop(user_id, None)

    def _dm_initial_state(self, encrypted: bool) -> list[dict[str, Any]]:
        """The state a direct room the bot opens starts with: end-to-end encrypted when `encrypted` (the bot
        encrypts and the member has a device with keys; as Element opens one), and its history visible to the
        member once they join, from before they did (the bot writes before the invitation is accepted; the
        member's devices get the room key at once)."""
        state: list[dict[str, Any]] = [{"type": "m.room.history_visibility", "state_key": "",
                                        "content": {"history_visibility": "shared"}}]
        if encrypted:
            state.append({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}})
        return state

    async def _mark_direct(self, *pairs: tuple[str, str]) -> None:
        """Record each (member, room) as the bot's direct chat with that member in its ``m.direct`` account
        data, as the spec asks of the inviting client (clients show the room as a direct chat). A failure is
        only logged: the room works without it."""
        try:
            async with self._direct_lock:
                await self._add_direct(pairs)
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("matrix: could not mark %s as direct chats (m.direct): %s", _listed(pairs), e)

    async def _add_direct(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Add the rooms missing from ``m.direct`` (read, changed, written back once; one update at a time)."""
        listed = await self.client.list_direct_rooms()
        rooms: dict[str, list[str]] = {}
        if isinstance(listed, DirectRoomsResponse) and isinstance(listed.rooms, dict):
            rooms = {u: list(r) for u, r in listed.rooms.items() if isinstance(r, list)}
        elif getattr(listed, "status_code", None) != "M_NOT_FOUND":  # none marked yet is M_NOT_FOUND
            log.warning("matrix: could not read the bot's direct chats (m.direct): %s",
                        getattr(listed, "message", listed))
            return
        missing = [(u, r) for u, r in pairs if r not in rooms.get(u, [])]
        if not missing:
            return
        for user_id, room_id in missing:
            rooms.setdefault(user_id, []).append(room_id)
        path = f"/_matrix/client/v3/user/{_q(self.user_id)}/account_data/m.direct"
        resp = await self.client.send("PUT", path, json.dumps(rooms),
                                      headers={"Authorization": f"Bearer {self.client.access_token}",
                                               "Content-Type": "application/json"})
        resp.release()
        if resp.status != 200:
            log.warning("matrix: could not mark %s as direct chats (m.direct): HTTP %s", _listed(missing),
                        resp.status)

    async def _join_direct(self, room_id: str, state: Sequence[Any]) -> bool:
        """Join a direct room a member invited the bot to (they may vote unseen from it), remember it, and mark
        it as the bot's direct chat with them in ``m.direct`` (as for a room the bot opens: its own clients list
        it so); False when the invitation is not one (or the join failed)."""
        if not await self._direct_from_member(state):
            return False
        resp = await self.client.join(room_id)
        if not isinstance(resp, JoinResponse):
            return False
        sender = next(str(e.sender) for e in state if getattr(e, "state_key", None) == self.user_id)
        self._dm_left.discard(sender)  # they came back: direct messages reach them again
        self._dms[sender] = room_id
        self._dm_rooms.add(room_id)
        await self._lookups.state.set_setting("dm_rooms", json.dumps(self._dms))
        log.info("matrix: joined the direct room %s opened by %s", room_id, sender)
        await self._mark_direct((sender, room_id))
        return True

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


def _listed(pairs: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{room} (with {user})" for user, room in pairs)

"""Direct-message rooms: the one room per member where private answers go, opened on first use, remembered
across restarts, forgotten when the member leaves."""

from __future__ import annotations

import asyncio
import json
import logging

from nio import RoomCreateResponse
from nio.api import RoomPreset

from circlebot.adapters.matrix.client import _check
from circlebot.adapters.matrix.host import Host

log = logging.getLogger(__name__)


class Direct(Host):
    """Each member's direct-message room with the bot."""

    async def _load_dms(self) -> None:
        value = await self._lookups.state.setting("dm_rooms")
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
                await self._lookups.state.set_setting("dm_rooms", json.dumps(self._dms))
                log.info("matrix: opened a direct-message room with %s", user_id)
                return room
        finally:
            if not lock.locked():
                self._dm_locks.pop(user_id, None)

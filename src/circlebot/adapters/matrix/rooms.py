"""The configured rooms: invitations, who outranks whom (power levels, room v12+ creators), members' display
names, and the warning for end-to-end encrypted rooms."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from nio import JoinedRoomsResponse, JoinResponse, RoomGetStateEventResponse, RoomGetStateResponse

from circlebot.adapters.matrix.client import PLATFORM, _check
from circlebot.adapters.matrix.host import Host, Standing
from circlebot.core.domain import ChannelRef, UserRef

_OLD_ROOM_VERSIONS = frozenset(str(v) for v in range(1, 12))

log = logging.getLogger(__name__)


class Rooms(Host):
    """What the adapter knows about the rooms it is in, kept current from their state events."""

    async def _check_rooms(self) -> None:
        """Say which configured rooms the bot is not in yet, and which are encrypted."""
        joined = set(_check(await self.client.joined_rooms(), JoinedRoomsResponse, "list joined rooms").rooms)
        for room_id in self._rooms:
            if room_id not in joined:
                log.warning("matrix: not in the configured room %s yet; invite %s to it", room_id, self.user_id)
                continue
            if self.encrypting:
                room = await self._know_room(room_id)
                if room is not None and room.encrypted:
                    log.info("matrix: room %s is end-to-end encrypted; reading and answering it encrypted", room_id)
                continue
            resp = await self.client.room_get_state_event(room_id, "m.room.encryption")
            if isinstance(resp, RoomGetStateEventResponse) and resp.content.get("algorithm"):
                self._warn_encrypted(room_id)

    def _warn_encrypted(self, room_id: str) -> None:
        if room_id in self._warned_encrypted or self.encrypting:
            return
        self._warned_encrypted.add(room_id)
        log.warning("matrix: room %s is end-to-end encrypted, but encryption is off ([matrix] encryption = false): "
                    "circlebot cannot read it and will not see anything said there.", room_id)

    async def _on_invite(self, room_id: str, state: Sequence[Any] = ()) -> None:
        if room_id not in self._rooms and not self.settings.accept_invites and await self._join_direct(room_id, state):
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
                self._dm_left.add(key)
        elif kind == "m.room.encryption" and room_id in self._rooms:
            self._warn_encrypted(room_id)

    async def _room_standing(self, room_id: str) -> Standing:
        """Who outranks whom in a room: power levels, and the creators of a room version 12+ above them all."""
        cached = self._standing.get(room_id)
        if cached is not None:
            return cached
        state = _check(await self.client.room_get_state(room_id), RoomGetStateResponse, f"read the state of {room_id}")
        standing = _standing(state.events)
        self._standing[room_id] = standing
        return standing

    async def members_ranked(self, where: ChannelRef, level: int) -> list[UserRef]:
        """The members joined to a room whose power level there is at least `level` (a room version 12+
        creator above every level), the bot excepted; read from the room's state as it is now."""
        room_id = where.id
        state = _check(await self.client.room_get_state(room_id), RoomGetStateResponse, f"read the state of {room_id}")
        standing = _standing(state.events)
        self._standing[room_id] = standing
        out: list[UserRef] = []
        for ev in state.events:
            content = ev.get("content") or {}
            user = ev.get("state_key")
            if (ev.get("type") != "m.room.member" or not isinstance(user, str) or user == self.user_id
                    or content.get("membership") != "join" or standing.level(user) < level):
                continue
            name = content.get("displayname")
            out.append(UserRef(PLATFORM, user, name if isinstance(name, str) and name else user))
        return out

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


def _standing(events: Sequence[Mapping[str, Any]]) -> Standing:
    """Who outranks whom, from a room's state events: power levels, and the creators of a room version 12+
    above them all."""
    creators: set[str] = set()
    content: Mapping[str, Any] = {}
    for ev in events:
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
    return Standing(frozenset(creators), users, default if isinstance(default, int) else 0,
                    redact if isinstance(redact, int) else 50)

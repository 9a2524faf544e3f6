"""Reactions as controls: RSVP (✅ ❔ ❌) and check-in (🙋) reactions on the bot's meeting posts, what each
post's reactions mean, and what removing one (a redaction) changes."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from circlebot.adapters.matrix.client import PLATFORM, MatrixError, _dict, _q, _ts
from circlebot.adapters.matrix.host import Host
from circlebot.adapters.matrix.send import _txn
from circlebot.core.domain import ChannelRef, CheckInCast, Control, MessageRef, Post, RsvpAnswer, RsvpCast, UserRef

RSVP_KEYS = {"✅": RsvpAnswer.YES, "❔": RsvpAnswer.MAYBE, "❓": RsvpAnswer.MAYBE, "❌": RsvpAnswer.NO}
RSVP_OFFERED = ("✅", "❔", "❌")
CHECK_IN_KEY = "🙋"

log = logging.getLogger(__name__)


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


class Reactions(Host):
    """The reaction controls on the bot's posts, and members' reactions on them."""

    async def _offer_controls(self, where: ChannelRef, ref: MessageRef, post: Post, key: str | None) -> None:
        """Remember what the post's reactions mean and put its reaction keys on it."""
        if post.controls:
            data = {"meeting": post.meeting_id, "controls": [c.value for c in post.controls]}
            await self._state.put("controls", ref.id, json.dumps(data), meeting_id=post.meeting_id)
            self._controls[ref.id] = (post.meeting_id, frozenset(post.controls))
            keys = [*(RSVP_OFFERED if Control.RSVP in post.controls else ()),
                    *((CHECK_IN_KEY,) if Control.CHECK_IN in post.controls else ())]
            for reaction in keys:
                await self._react(where.id, ref.id, reaction, _txn(key, f"react{reaction}"))

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

    async def _get_json(self, path: str) -> dict[str, Any]:
        resp = await self.client.send("GET", path, headers={"Authorization": f"Bearer {self.client.access_token}"})
        try:
            body = await resp.json(content_type=None)
        finally:
            resp.release()
        if resp.status != 200 or not isinstance(body, dict):
            raise MatrixError(f"GET {path.split('?')[0]} failed: {resp.status}")
        return body

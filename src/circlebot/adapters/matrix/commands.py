"""Commands typed in rooms: read from the message, run once each (even across a restart mid-sync), handed to
the core as an `Invocation` with the sender's power level."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from circlebot.adapters.matrix.client import PLATFORM, MatrixError, _dict, _ts
from circlebot.adapters.matrix.host import Handle, Host
from circlebot.core.domain import Authority, ChannelRef, Invocation, UserRef

_COMMANDS_KEPT = 300  # more than one sync plus its back-fill can replay in one room

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A command typed in a room: the text after the prefix."""

    event_id: str
    sender: str
    text: str
    at: datetime
    thread_root: str | None = None


def parse_command(src: Mapping[str, Any], prefix: str) -> CommandEvent | None:
    """The command in a raw ``m.room.message`` event, or None when there is none (not text, no prefix, an edit,
    or an event that is not well formed)."""
    content = _dict(src.get("content"))
    body, event_id, sender = content.get("body"), src.get("event_id"), src.get("sender")
    if content.get("msgtype") != "m.text" or not isinstance(body, str) or not body.startswith(prefix):
        return None
    if not isinstance(event_id, str) or not isinstance(sender, str):
        return None
    rel = _dict(content.get("m.relates_to"))
    if rel.get("rel_type") == "m.replace":  # an edit: the command ran when it was first sent
        return None
    text = body[len(prefix):].strip()
    if not text:
        return None
    thread = rel.get("event_id") if rel.get("rel_type") == "m.thread" else None
    return CommandEvent(event_id, sender, text, _ts(src.get("origin_server_ts")),
                        thread if isinstance(thread, str) else None)


class Commands(Host):
    """The commands members type, handed to the core."""

    # commands --------------------------------------------------------------------------------------
    async def _on_message(self, room_id: str, src: Mapping[str, Any]) -> None:
        command = parse_command(src, self.prefix)
        if command is None or (room_id not in self._rooms and room_id not in self._dm_rooms):
            return
        event_id, sender = command.event_id, command.sender
        if self._dispatch is None or event_id in self._commands:
            return
        await self._remember_command(event_id)
        authority = Authority()
        if room_id in self._rooms:
            try:
                authority = Authority(power_level=(await self._room_standing(room_id)).level(sender))
            except MatrixError as e:
                log.warning("matrix: cannot read the power levels of %s (%s)", room_id, e)
        inv = Invocation(
            user=UserRef(PLATFORM, sender, await self._display_name(room_id, sender)),
            channel=ChannelRef(PLATFORM, room_id),
            at=command.at,
            text=command.text,
            authority=authority,
            handle=Handle(room_id, event_id, command.thread_root),
            direct=room_id not in self._rooms,
        )
        await self._dispatch(inv)

    async def _remember_command(self, event_id: str) -> None:
        """Note a command as handled before running it. The sync token is saved after a whole sync is handled;
        if the bot stops in between, the sync comes again and this keeps its commands from running twice."""
        self._commands[event_id] = None
        while len(self._commands) > _COMMANDS_KEPT:
            self._commands.popitem(last=False)
        await self._lookups.state.set_setting("handled_commands", json.dumps(list(self._commands)))

    async def _load_handled(self) -> None:
        value = await self._lookups.state.setting("handled_commands")
        self._commands = OrderedDict.fromkeys(json.loads(value)) if value else OrderedDict()

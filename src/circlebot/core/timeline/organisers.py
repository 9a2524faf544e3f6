"""Who the RSVP deadline's `notify` tells privately: the organisers the config names one by one, and, on a
platform whose rooms rank members by power level (Matrix: `PowerLevels`), the members of the circle's rooms at
or above the configured `matrix_power_level` (a room version 12+ creator above every level).

Discord's organisers by role or Manage Server are not among them: listing who holds a role takes the
privileged GUILD_MEMBERS intent, which the bot does not ask for. Those named in `discord_users` are told."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from circlebot.config import CircleSettings
from circlebot.core.adapter import ChatAdapter, PowerLevels
from circlebot.core.domain import ChannelRef, UserRef

log = logging.getLogger(__name__)


@runtime_checkable
class OrganiserSources(Protocol):
    """What finding organisers by standing needs of the bot: its running platforms and a circle's locations."""

    @property
    def adapters(self) -> Mapping[str, ChatAdapter]: ...

    def locations(self, circle: CircleSettings) -> list[ChannelRef]: ...


async def organisers_to_tell(host: object, circle: CircleSettings, named: Sequence[UserRef]) -> tuple[UserRef, ...]:
    """`named` (the organisers the config names), then the circle's organisers by power level on the platforms
    that rank members so, each once. A room whose members cannot be read now (the homeserver is down) adds
    nobody, with a log line: the named are told all the same."""
    out = list(named)
    seen = {(u.platform, u.id) for u in named}
    level = circle.organisers.matrix_power_level
    if level is None or not isinstance(host, OrganiserSources):
        return tuple(out)
    for where in host.locations(circle):
        adapter = host.adapters.get(where.platform)
        if not isinstance(adapter, PowerLevels):
            continue
        try:
            ranked = await adapter.members_ranked(where, level)
        except Exception as e:
            log.warning("could not read who has power level %d in %s %s (the organisers to tell): %s: %s", level,
                        where.platform, where.id, type(e).__name__, e)
            continue
        for user in ranked:
            if (user.platform, user.id) not in seen:
                seen.add((user.platform, user.id))
                out.append(user)
    return tuple(out)

"""Who the RSVP deadline's `notify` tells privately: the organisers the config names one by one; on a
platform whose rooms rank members by power level (Matrix: `PowerLevels`), the members of the circle's rooms at
or above the configured `matrix_power_level` (a room version 12+ creator above every level); and on a platform
whose servers make organisers by role (Discord: `RoleHolders`), the members holding one of `discord_roles`, or
Manage Server with `discord_manage_server`. Each person once, however many ways they are an organiser."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from circlebot.config import CircleSettings
from circlebot.core.adapter import ChatAdapter, PowerLevels, RoleHolders
from circlebot.core.domain import ChannelRef, UserRef

log = logging.getLogger(__name__)


@runtime_checkable
class OrganiserSources(Protocol):
    """What finding organisers by standing needs of the bot: its running platforms and a circle's locations."""

    @property
    def adapters(self) -> Mapping[str, ChatAdapter]: ...

    def locations(self, circle: CircleSettings) -> list[ChannelRef]: ...


async def organisers_to_tell(host: object, circle: CircleSettings, named: Sequence[UserRef]) -> tuple[UserRef, ...]:
    """`named` (the organisers the config names), then the circle's organisers by power level and by role on
    the platforms that have them, each person once. A room or server whose members cannot be read now (the
    platform is down) adds nobody, with a log line: the others are told all the same."""
    out = list(named)
    seen = {(u.platform, u.id) for u in named}
    if not isinstance(host, OrganiserSources):
        return tuple(out)
    o = circle.organisers
    level = o.matrix_power_level
    by_role = bool(o.discord_roles) or o.discord_manage_server
    for where in host.locations(circle):
        adapter = host.adapters.get(where.platform)
        try:
            if isinstance(adapter, PowerLevels) and level is not None:
                found = await adapter.members_ranked(where, level)
            elif isinstance(adapter, RoleHolders) and by_role:
                found = await adapter.organisers_by_role(where, o.discord_roles, o.discord_manage_server)
            else:
                continue
        except Exception as e:
            log.warning("could not read the organisers of %s %s (to tell them): %s: %s", where.platform, where.id,
                        type(e).__name__, e)
            continue
        for user in found:
            if (user.platform, user.id) not in seen:
                seen.add((user.platform, user.id))
                out.append(user)
    return tuple(out)

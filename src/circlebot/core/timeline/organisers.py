"""Who the RSVP deadline's `notify` tells privately: the organisers the config names one by one; on a
platform whose rooms rank members by power level (Matrix: `PowerLevels`), the members of the circle's rooms at
or above the configured `matrix_power_level` (a room version 12+ creator above every level); and on a platform
whose servers make organisers by role (Discord: `RoleHolders`), the members holding one of `discord_roles`, or
Manage Server with `discord_manage_server`. Each person once, however many ways they are an organiser: one
found twice, or on two platforms whose accounts are linked (`link`), is told on the first way found (the config's
names first)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from circlebot.config import CircleSettings
from circlebot.core.adapter import ChatAdapter, PowerLevels, RoleHolders
from circlebot.core.domain import ChannelRef, UserRef
from circlebot.store import Store
from circlebot.store.accounts import Accounts

log = logging.getLogger(__name__)


@runtime_checkable
class OrganiserSources(Protocol):
    """What finding organisers by standing needs of the bot: its running platforms and a circle's locations."""

    store: Store

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
    return await _once_per_person(host.store, out)


async def _once_per_person(store: Store, people: Sequence[UserRef]) -> tuple[UserRef, ...]:
    """`people` with each person once: an identity linked to one listed before it is left out. If the links
    cannot be read now, everyone listed (told twice rather than not at all)."""
    accounts = Accounts(store)
    known: set[tuple[str, str]] = set()
    out: list[UserRef] = []
    try:
        for user in people:
            identities = {(u.platform, u.id) for u in await accounts.identities(user)} | {(user.platform, user.id)}
            if identities & known:
                continue
            known |= identities
            out.append(user)
    except Exception as e:
        log.warning("could not read which organisers' accounts are linked (each is told on each platform): %s: %s",
                    type(e).__name__, e)
        return tuple(people)
    return tuple(out)

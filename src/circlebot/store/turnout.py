"""Turnout queries: RSVPs under a capacity (who has a place, who waits, in what order), shared by every
platform of a circle because they are rows of the one `rsvps` table.

A yes beyond the capacity is stored as a yes with `waitlisted_at` set (the time it joined the queue); a place
that frees up goes, in the same transaction, to the first in the queue. Standard SQL only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from circlebot.core.domain import RsvpAnswer, UserRef
from circlebot.store.queries import from_ts, ts

if TYPE_CHECKING:
    from circlebot.store.db import Connection, Database


@dataclass(frozen=True, slots=True)
class Answered:
    """What one RSVP did: the member's place in the queue (1 is next; None: not waiting) and who got a place
    because of it (a freed place goes to the first waiting)."""

    waiting: int | None
    promoted: tuple[UserRef, ...] = ()
    changed: bool = True


@dataclass(frozen=True, slots=True)
class Turnout:
    """A meeting's answers as the circle sees them: `coming` have a place, `waiting` queue for one (first
    first), then maybe and no; each in the order they answered."""

    coming: list[UserRef] = field(default_factory=list)
    waiting: list[UserRef] = field(default_factory=list)
    maybe: list[UserRef] = field(default_factory=list)
    no: list[UserRef] = field(default_factory=list)

    def of(self, answer: RsvpAnswer) -> list[UserRef]:
        return {RsvpAnswer.YES: self.coming, RsvpAnswer.MAYBE: self.maybe, RsvpAnswer.NO: self.no}[answer]


_ROWS = ("SELECT r.meeting_id, m.platform, m.user_id, m.name, r.answer, r.waitlisted_at FROM rsvps r "
         "JOIN members m ON m.id = r.member_id WHERE r.meeting_id IN ({}) "
         "ORDER BY r.waitlisted_at, r.at, r.member_id")


class TurnoutStore:
    """The turnout queries, on the store's database (stateless: `TurnoutStore(store.db)` wherever needed)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def answer(self, meeting_id: int, member_id: int, answer: RsvpAnswer | None, at: datetime,
                     capacity: int | None) -> Answered:
        """Set (or withdraw, with None) a member's RSVP under a capacity, in one transaction: a new yes takes a
        place if one is free and otherwise joins the end of the queue; a yes repeated keeps its place or its
        turn; then free places go to the first waiting, who are returned."""
        async with self.db.transaction() as conn:
            rows = await conn.execute_fetchall(
                "SELECT answer, waitlisted_at FROM rsvps WHERE meeting_id = ? AND member_id = ?",
                (meeting_id, member_id))
            before = next(iter(rows), None)
            if before is not None and answer is RsvpAnswer.YES and before[0] == "yes":
                return Answered(await _position(conn, meeting_id, member_id), changed=False)
            if answer is None:
                await conn.execute("DELETE FROM rsvps WHERE meeting_id = ? AND member_id = ?",
                                   (meeting_id, member_id))
            else:
                waits = answer is RsvpAnswer.YES and capacity is not None and (
                    await _placed(conn, meeting_id) >= capacity)
                await conn.execute(
                    "INSERT INTO rsvps (meeting_id, member_id, answer, at, waitlisted_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (meeting_id, member_id) DO UPDATE SET answer = excluded.answer, at = excluded.at, "
                    "waitlisted_at = excluded.waitlisted_at",
                    (meeting_id, member_id, answer.value, ts(at), ts(at) if waits else None))
            promoted = await _fill(conn, meeting_id, capacity)
            return Answered(await _position(conn, meeting_id, member_id), promoted)

    async def fill(self, meeting_id: int, capacity: int | None) -> tuple[UserRef, ...]:
        """Give free places to the first waiting (a capacity raised, a place freed some other way)."""
        async with self.db.transaction() as conn:
            return await _fill(conn, meeting_id, capacity)

    async def earlier_post(self, meeting_id: int, kind: str, key: str) -> bool:
        """Whether the meeting had a post of this kind for another time than this one's (`key`): it moved since
        (a deadline that postponed it, a nudge already sent)."""
        row = await self.db.fetchone("SELECT 1 FROM post_log WHERE meeting_id = ? AND kind = ? AND key <> ?",
                                     (meeting_id, kind, key))
        return row is not None

    async def regulars(self, meeting_ids: Sequence[int]) -> list[UserRef]:
        """Who answered (anything) or checked in at any of these meetings, in the order they joined."""
        if not meeting_ids:
            return []
        marks = ",".join("?" * len(meeting_ids))
        rows = await self.db.fetchall(
            "SELECT platform, user_id, name FROM members WHERE id IN "
            f"(SELECT member_id FROM rsvps WHERE meeting_id IN ({marks}) "
            f"UNION SELECT member_id FROM checkins WHERE meeting_id IN ({marks})) ORDER BY id",
            [*meeting_ids, *meeting_ids])
        return [UserRef(r[0], r[1], r[2]) for r in rows]

    async def turnout(self, meeting_id: int) -> Turnout:
        return (await self.turnouts([meeting_id]))[meeting_id]

    async def turnouts(self, meeting_ids: Iterable[int]) -> dict[int, Turnout]:
        """`turnout` for many meetings at once (a batch of reminders, the upcoming list)."""
        ids = sorted(set(meeting_ids))
        out = {i: Turnout() for i in ids}
        for i in range(0, len(ids), 500):
            part = ids[i: i + 500]
            for r in await self.db.fetchall(_ROWS.format(",".join("?" * len(part))), part):
                t, user = out[int(r[0])], UserRef(r[1], r[2], r[3])
                if r[4] == "yes":
                    (t.coming if r[5] is None else t.waiting).append(user)
                else:
                    t.of(RsvpAnswer(r[4])).append(user)
        return out


async def _placed(conn: Connection, meeting_id: int) -> int:
    rows = await conn.execute_fetchall(
        "SELECT count(*) FROM rsvps WHERE meeting_id = ? AND answer = 'yes' AND waitlisted_at IS NULL", (meeting_id,))
    return int(next(iter(rows))[0])


async def _position(conn: Connection, meeting_id: int, member_id: int) -> int | None:
    """The member's turn in the queue (1: next), or None if they are not waiting."""
    rows = list(await conn.execute_fetchall(
        "SELECT member_id FROM rsvps WHERE meeting_id = ? AND answer = 'yes' AND waitlisted_at IS NOT NULL "
        "ORDER BY waitlisted_at, member_id", (meeting_id,)))
    return next((i for i, r in enumerate(rows, 1) if int(r[0]) == member_id), None)


async def _fill(conn: Connection, meeting_id: int, capacity: int | None) -> tuple[UserRef, ...]:
    free = None if capacity is None else capacity - await _placed(conn, meeting_id)
    if free is not None and free <= 0:
        return ()
    rows = list(await conn.execute_fetchall(
        "SELECT r.member_id, m.platform, m.user_id, m.name FROM rsvps r JOIN members m ON m.id = r.member_id "
        "WHERE r.meeting_id = ? AND r.answer = 'yes' AND r.waitlisted_at IS NOT NULL "
        "ORDER BY r.waitlisted_at, r.member_id", (meeting_id,)))
    chosen = rows if free is None else rows[:free]
    for r in chosen:
        await conn.execute("UPDATE rsvps SET waitlisted_at = NULL WHERE meeting_id = ? AND member_id = ?",
                           (meeting_id, int(r[0])))
    return tuple(UserRef(r[1], r[2], r[3]) for r in chosen)


@dataclass(frozen=True, slots=True)
class DirectChoice:
    """A member's reminders by direct message in one circle: on or off, how long before (None: the circle's
    reminder lead), and when the platform refused one (which switched them off)."""

    enabled: bool
    lead_minutes: int | None
    refused_at: str | None


@dataclass(frozen=True, slots=True)
class DirectClaim:
    """One claimed direct-message reminder, as a process takes it to send: how often it was tried, the last
    failure, and when a try began that never ended (`sending_since`: the process stopped while sending)."""

    meeting_id: int
    member_id: int
    starts_at: datetime
    attempts: int = 0
    sending_since: datetime | None = None
    detail: str | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.meeting_id, self.member_id, ts(self.starts_at))


class DirectReminders:
    """Who asked for reminders by direct message (off unless they ask), and each one sent, claimed first so it
    goes out once."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def choice(self, circle: str, member_id: int) -> DirectChoice | None:
        row = await self.db.fetchone(
            "SELECT enabled, lead_minutes, refused_at FROM dm_reminders WHERE circle = ? AND member_id = ?",
            (circle, member_id))
        return DirectChoice(bool(row[0]), row[1], row[2]) if row else None

    async def choose(self, circle: str, member_id: int, enabled: bool, lead_minutes: int | None,
                     now: datetime) -> None:
        """Switch them on or off (a lead of None keeps the one chosen before); a refusal is forgotten."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO dm_reminders (circle, member_id, enabled, lead_minutes, refused_at, at) "
                "VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT (circle, member_id) DO UPDATE SET "
                "enabled = excluded.enabled, lead_minutes = COALESCE(excluded.lead_minutes, "
                "dm_reminders.lead_minutes), refused_at = NULL, at = excluded.at",
                (circle, member_id, int(enabled), lead_minutes, ts(now)))

    async def refused(self, circle: str, member_id: int, now: datetime) -> None:
        """The platform refused a direct message: off, until the member asks again."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE dm_reminders SET enabled = 0, refused_at = ?, at = ? "
                               "WHERE circle = ? AND member_id = ?", (ts(now), ts(now), circle, member_id))

    async def asked(self) -> dict[str, list[tuple[int, UserRef, int | None]]]:
        """By circle: (member id, who, lead in minutes or None) of everyone with them on (one query)."""
        rows = await self.db.fetchall(
            "SELECT d.circle, d.member_id, m.platform, m.user_id, m.name, d.lead_minutes FROM dm_reminders d "
            "JOIN members m ON m.id = d.member_id WHERE d.enabled = 1 ORDER BY d.member_id")
        out: dict[str, list[tuple[int, UserRef, int | None]]] = {}
        for r in rows:
            out.setdefault(r[0], []).append((int(r[1]), UserRef(r[2], r[3], r[4]), r[5]))
        return out

    async def claim(self, wanted: Sequence[tuple[int, int, datetime]], now: datetime, *, owner: str,
                    lease_until: datetime) -> None:
        """Claim (meeting id, member id, meeting start) reminders not claimed before (by this process or
        another), held by `owner` until `lease_until`, to be tried at once; one transaction."""
        if not wanted:
            return
        async with self.db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO dm_sent (meeting_id, member_id, starts_at, state, at, owner, lease_until) "
                "VALUES (?, ?, ?, 'claimed', ?, ?, ?) ON CONFLICT (meeting_id, member_id, starts_at) DO NOTHING",
                [(mid, member, ts(start), ts(now), owner, ts(lease_until)) for mid, member, start in wanted])

    async def take(self, owner: str, platforms: Iterable[str], *, now: datetime, wall_now: datetime,
                   lease_until: datetime, held_too: bool) -> list[DirectClaim]:
        """Hold, for `owner` until `lease_until`, every claimed reminder to a member on these platforms whose
        try is due at `now` and that no live process holds (`held_too`: whoever holds it, as at the start of
        the one process a SQLite file has; leases are wall-clock, `wall_now`); returns them."""
        wanted = sorted(set(platforms))
        if not wanted:
            return []
        sql = ("UPDATE dm_sent SET owner = ?, lease_until = ? WHERE state = 'claimed' "
               "AND (next_try_at IS NULL OR next_try_at <= ?) "
               f"AND member_id IN (SELECT id FROM members WHERE platform IN ({','.join('?' * len(wanted))}))")
        params: list[object] = [owner, ts(lease_until), ts(now), *wanted]
        if not held_too:
            sql += " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)"
            params += [owner, ts(wall_now)]
        async with self.db.transaction() as conn:
            rows = await conn.execute_fetchall(
                sql + " RETURNING meeting_id, member_id, starts_at, attempts, sending_since, detail", params)
        return sorted((DirectClaim(int(r[0]), int(r[1]), from_ts(r[2]), int(r[3]),
                                   from_ts(r[4]) if r[4] else None, r[5]) for r in rows),
                      key=lambda c: (c.member_id, c.starts_at))

    async def trying(self, claim: DirectClaim, now: datetime) -> None:
        """A try begins (until it is marked, a stop leaves it as 'being sent')."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE dm_sent SET attempts = attempts + 1, sending_since = ?, at = ? "
                               "WHERE meeting_id = ? AND member_id = ? AND starts_at = ?",
                               (ts(now), ts(now), *claim.key))

    async def retry_at(self, claim: DirectClaim, when: datetime, detail: str, now: datetime) -> None:
        """The try failed (`detail`): try again at `when`."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE dm_sent SET next_try_at = ?, detail = ?, sending_since = NULL, at = ? "
                               "WHERE meeting_id = ? AND member_id = ? AND starts_at = ?",
                               (ts(when), detail, ts(now), *claim.key))

    async def renew(self, owner: str, lease_until: datetime) -> None:
        """Keep holding the reminders this process claimed and has not finished."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE dm_sent SET lease_until = ? WHERE owner = ? AND state = 'claimed'",
                               (ts(lease_until), owner))

    async def done(self, claim: DirectClaim, state: str, now: datetime, detail: str | None = None) -> None:
        """How it ended: 'sent', 'refused', or 'failed' (given up; `detail` says why)."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE dm_sent SET state = ?, at = ?, sending_since = NULL, "
                               "detail = COALESCE(?, detail) WHERE meeting_id = ? AND member_id = ? "
                               "AND starts_at = ?", (state, ts(now), detail, *claim.key))

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
from circlebot.store.queries import ts

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

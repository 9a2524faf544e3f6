"""Queries of the circle's record: reading progress per meeting, each member's attendance history (RSVPs and
check-ins side by side), members' record settings (streaks), and the facilitators of meetings.

Reached as `RecordQueries(store)` (cheap: it holds the store's database and write batcher). Nothing here is a
counter: streaks and rates are computed from these rows."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from circlebot.core.domain import RsvpAnswer, UserRef
from circlebot.store.db import Row
from circlebot.store.queries import Meeting, Store, ts


class Progress(enum.StrEnum):
    """How much of a meeting's reading a member says they read."""

    ALL = "all"
    PART = "part"
    NOT = "not"


@dataclass(frozen=True, slots=True)
class Presence:
    """One member at one meeting, as the record has it: their RSVP (None: none) and whether they checked in."""

    meeting: Meeting
    rsvp: RsvpAnswer | None
    came: bool
    read: Progress | None = None
    waitlisted: bool = False  # a yes still waiting for a place when the meeting began (issue 14's waitlist)
    led: bool = False  # they were the meeting's facilitator


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One member at one meeting, for the export: everyone who RSVPed, checked in, said what they read or
    facilitated."""

    meeting: Meeting
    member: UserRef
    rsvp: RsvpAnswer | None
    read: Progress | None
    came: bool
    facilitated: bool
    waitlisted: bool = False  # a yes still waiting for a place (issue 14's waitlist)


def _meeting_of(row: Row) -> Meeting:
    return Meeting.from_row(row)


class RecordQueries:
    """The record's queries, on the bot's database (standard SQL only)."""

    def __init__(self, store: Store) -> None:
        self._db = store.db
        self._batcher = store.batcher

    # reading progress ------------------------------------------------------------------------------
    async def set_progress(self, meeting_id: int, member_id: int, progress: Progress, at: datetime) -> None:
        """Set (or change) what a member read for a meeting; returns once committed."""
        await self._batcher.submit(
            "INSERT INTO reading_progress (meeting_id, member_id, progress, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (meeting_id, member_id) DO UPDATE SET progress = excluded.progress, at = excluded.at",
            (meeting_id, member_id, progress.value, ts(at)),
        )

    async def progress_of(self, meeting_id: int, member_id: int) -> Progress | None:
        row = await self._db.fetchone(
            "SELECT progress FROM reading_progress WHERE meeting_id = ? AND member_id = ?", (meeting_id, member_id))
        return Progress(row[0]) if row else None

    async def progress_counts(self, meeting_id: int) -> tuple[dict[Progress | None, int], dict[Progress | None, int]]:
        """What was read, counted twice: among those who said yes to the meeting (None: they did not say), and
        among everyone who said what they read."""
        rows = await self._db.fetchall(
            "SELECT r.answer AS rsvp, p.progress AS progress FROM rsvps r LEFT JOIN reading_progress p "
            "ON p.meeting_id = r.meeting_id AND p.member_id = r.member_id WHERE r.meeting_id = ? "
            "UNION ALL SELECT NULL AS rsvp, p.progress AS progress FROM reading_progress p WHERE p.meeting_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM rsvps r WHERE r.meeting_id = p.meeting_id AND r.member_id = p.member_id)",
            (meeting_id, meeting_id),
        )
        coming: dict[Progress | None, int] = dict.fromkeys([*Progress, None], 0)
        everyone: dict[Progress | None, int] = dict.fromkeys([*Progress, None], 0)
        for r in rows:
            progress = Progress(r["progress"]) if r["progress"] else None
            if r["rsvp"] == RsvpAnswer.YES.value:
                coming[progress] += 1
            if progress is not None:
                everyone[progress] += 1
        return coming, everyone

    # attendance history ----------------------------------------------------------------------------
    async def history_of(self, member_id: int, circle: str, before: datetime, limit: int) -> list[Presence]:
        """The member's presence at the circle's last `limit` meetings that started before `before` (oldest
        first), counted from the first meeting the member had anything to do with (an RSVP, a check-in, a
        reading progress), so a newcomer's record does not start with absences."""
        rows = await self._db.fetchall(
            "SELECT mt.*, r.answer AS rsvp, c.member_id IS NOT NULL AS came, p.progress AS progress, "
            "r.waitlisted_at IS NOT NULL AS waitlisted, f.member_id IS NOT NULL AS led "
            "FROM meetings mt "
            "LEFT JOIN rsvps r ON r.meeting_id = mt.id AND r.member_id = ? "
            "LEFT JOIN checkins c ON c.meeting_id = mt.id AND c.member_id = ? "
            "LEFT JOIN reading_progress p ON p.meeting_id = mt.id AND p.member_id = ? "
            "LEFT JOIN facilitators f ON f.meeting_id = mt.id AND f.member_id = ? "
            "WHERE mt.circle = ? AND mt.status = 'scheduled' AND mt.starts_at < ? AND mt.starts_at >= COALESCE(("
            "  SELECT min(m2.starts_at) FROM meetings m2 WHERE m2.circle = mt.circle AND m2.status = 'scheduled' "
            "  AND (EXISTS (SELECT 1 FROM rsvps r2 WHERE r2.meeting_id = m2.id AND r2.member_id = ?) "
            "    OR EXISTS (SELECT 1 FROM checkins c2 WHERE c2.meeting_id = m2.id AND c2.member_id = ?) "
            "    OR EXISTS (SELECT 1 FROM reading_progress p2 WHERE p2.meeting_id = m2.id AND p2.member_id = ?))"
            "), ?) ORDER BY mt.starts_at DESC LIMIT ?",
            (member_id, member_id, member_id, member_id, circle, ts(before), member_id, member_id, member_id,
             ts(before), limit),
        )
        out = [Presence(_meeting_of(r), RsvpAnswer(r["rsvp"]) if r["rsvp"] else None, bool(r["came"]),
                        Progress(r["progress"]) if r["progress"] else None, bool(r["waitlisted"]), bool(r["led"]))
               for r in rows]
        out.reverse()
        return out

    async def yes_history(self, circle: str, before: datetime, per_member: int) -> dict[UserRef, list[bool]]:
        """For every member who said yes (and had a place) to a meeting of the circle that started before
        `before`: whether they came, for each of their last `per_member` such meetings (latest first)."""
        rows = await self._db.fetchall(
            "SELECT m.id AS member, m.platform, m.user_id, m.name, c.member_id IS NOT NULL AS came "
            "FROM rsvps r JOIN meetings mt ON mt.id = r.meeting_id JOIN members m ON m.id = r.member_id "
            "LEFT JOIN checkins c ON c.meeting_id = r.meeting_id AND c.member_id = r.member_id "
            "WHERE mt.circle = ? AND mt.status = 'scheduled' AND mt.starts_at < ? AND r.answer = 'yes' "
            "AND r.waitlisted_at IS NULL "
            "ORDER BY m.id, mt.starts_at DESC",
            (circle, ts(before)),
        )
        out: dict[UserRef, list[bool]] = {}
        for r in rows:
            seen = out.setdefault(UserRef(r["platform"], r["user_id"], r["name"]), [])
            if len(seen) < per_member:
                seen.append(bool(r["came"]))
        return out

    # record settings -------------------------------------------------------------------------------
    async def setting(self, circle: str, member_id: int, name: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT value FROM record_settings WHERE circle = ? AND member_id = ? AND name = ?",
            (circle, member_id, name))
        return str(row[0]) if row else None

    async def set_setting(self, circle: str, member_id: int, name: str, value: str, at: datetime) -> None:
        await self._batcher.submit(
            "INSERT INTO record_settings (circle, member_id, name, value, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (circle, member_id, name) DO UPDATE SET value = excluded.value, at = excluded.at",
            (circle, member_id, name, value, ts(at)),
        )

    # the export ------------------------------------------------------------------------------------
    async def rows(self, circles: Iterable[str], start: datetime | None, end: datetime | None) -> list[RecordRow]:
        """One row per meeting and member with anything on record for it (an RSVP, a check-in, a reading
        progress, facilitating), for the scheduled meetings of `circles` starting in [start, end), by meeting
        start and member name."""
        wanted = sorted(set(circles))
        if not wanted:
            return []
        sql = (
            "WITH people AS ("
            " SELECT meeting_id, member_id FROM rsvps UNION SELECT meeting_id, member_id FROM checkins"
            " UNION SELECT meeting_id, member_id FROM reading_progress"
            " UNION SELECT meeting_id, member_id FROM facilitators WHERE member_id IS NOT NULL)"
            " SELECT mt.*, m.platform, m.user_id, m.name, r.answer AS rsvp, p.progress AS progress,"
            " c.member_id IS NOT NULL AS came, f.member_id IS NOT NULL AS facilitated,"
            " r.waitlisted_at IS NOT NULL AS waitlisted"
            " FROM people x JOIN meetings mt ON mt.id = x.meeting_id JOIN members m ON m.id = x.member_id"
            " LEFT JOIN rsvps r ON r.meeting_id = x.meeting_id AND r.member_id = x.member_id"
            " LEFT JOIN checkins c ON c.meeting_id = x.meeting_id AND c.member_id = x.member_id"
            " LEFT JOIN reading_progress p ON p.meeting_id = x.meeting_id AND p.member_id = x.member_id"
            " LEFT JOIN facilitators f ON f.meeting_id = x.meeting_id AND f.member_id = x.member_id"
            f" WHERE mt.status = 'scheduled' AND mt.circle IN ({','.join('?' * len(wanted))})"
        )
        params: list[object] = list(wanted)
        if start is not None:
            sql += " AND mt.starts_at >= ?"
            params.append(ts(start))
        if end is not None:
            sql += " AND mt.starts_at < ?"
            params.append(ts(end))
        sql += " ORDER BY mt.starts_at, mt.id, lower(m.name), m.user_id"
        return [
            RecordRow(_meeting_of(r), UserRef(r["platform"], r["user_id"], r["name"]),
                      RsvpAnswer(r["rsvp"]) if r["rsvp"] else None,
                      Progress(r["progress"]) if r["progress"] else None, bool(r["came"]), bool(r["facilitated"]),
                      bool(r["waitlisted"]))
            for r in await self._db.fetchall(sql, params)
        ]




@dataclass(frozen=True, slots=True)
class Facilitator:
    """Who facilitates a meeting, and how: "proposed" by the rota, "taken" with `facilitate`, "assigned" by an
    organiser."""

    member_id: int
    user: UserRef
    how: str


class FacilitatorQueries:
    """The facilitators of meetings and who handed one on (standard SQL only)."""

    def __init__(self, store: Store) -> None:
        self._db = store.db

    async def of(self, meeting_id: int) -> Facilitator | None:
        row = await self._db.fetchone(
            "SELECT f.member_id, f.how, m.platform, m.user_id, m.name FROM facilitators f "
            "JOIN members m ON m.id = f.member_id WHERE f.meeting_id = ?", (meeting_id,))
        return Facilitator(int(row["member_id"]), UserRef(row["platform"], row["user_id"], row["name"]),
                           str(row["how"])) if row else None

    async def set(self, meeting_id: int, member_id: int, how: str, at: datetime) -> None:
        """Make a member the meeting's facilitator; taking it or being assigned undoes an earlier pass."""
        async with self._db.transaction() as conn:
            if how != "proposed":
                await conn.execute("DELETE FROM facilitator_passes WHERE meeting_id = ? AND member_id = ?",
                                   (meeting_id, member_id))
            await conn.execute(
                "INSERT INTO facilitators (meeting_id, member_id, how, at) VALUES (?, ?, ?, ?) ON CONFLICT "
                "(meeting_id) DO UPDATE SET member_id = excluded.member_id, how = excluded.how, at = excluded.at",
                (meeting_id, member_id, how, ts(at)))

    async def clear(self, meeting_id: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM facilitators WHERE meeting_id = ?", (meeting_id,))

    async def hand_on(self, meeting_id: int, member_id: int, at: datetime) -> None:
        """The member passes: never proposed for this meeting again, and no longer its facilitator."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO facilitator_passes (meeting_id, member_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT (meeting_id, member_id) DO NOTHING", (meeting_id, member_id, ts(at)))
            await conn.execute("DELETE FROM facilitators WHERE meeting_id = ? AND member_id = ?",
                               (meeting_id, member_id))

    async def said_no_or_passed(self, meeting_id: int, member_id: int) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM rsvps WHERE meeting_id = ? AND member_id = ? AND answer = 'no' "
            "UNION ALL SELECT 1 FROM facilitator_passes WHERE meeting_id = ? AND member_id = ?",
            (meeting_id, member_id, meeting_id, member_id))
        return row is not None

    async def proposal(self, meeting: Meeting) -> Facilitator | None:
        """The rota's choice for `meeting`: among the regulars (members who came to an earlier meeting of the
        circle, so it would be at least their second), never one who said no to it or handed it on, the one
        who facilitated (or is down to facilitate another meeting) least recently, never first; then who came
        most often, then who came first."""
        row = await self._db.fetchone(
            "SELECT m.id AS member, m.platform, m.user_id, m.name, "
            " (SELECT max(led.starts_at) FROM facilitators f JOIN meetings led ON led.id = f.meeting_id"
            "  WHERE f.member_id = m.id AND led.circle = ? AND led.status = 'scheduled' AND led.id <> ?) AS last_led,"
            " count(*) AS came, min(mt.starts_at) AS first_came "
            "FROM checkins c JOIN meetings mt ON mt.id = c.meeting_id JOIN members m ON m.id = c.member_id "
            "WHERE mt.circle = ? AND mt.status = 'scheduled' AND mt.starts_at < ? "
            "AND NOT EXISTS (SELECT 1 FROM rsvps r WHERE r.meeting_id = ? AND r.member_id = m.id AND r.answer = 'no') "
            "AND NOT EXISTS (SELECT 1 FROM facilitator_passes p WHERE p.meeting_id = ? AND p.member_id = m.id) "
            "GROUP BY m.id, m.platform, m.user_id, m.name "
            "ORDER BY CASE WHEN (SELECT max(led.starts_at) FROM facilitators f JOIN meetings led"
            "  ON led.id = f.meeting_id WHERE f.member_id = m.id AND led.circle = ? AND led.status = 'scheduled'"
            "  AND led.id <> ?) IS NULL THEN 0 ELSE 1 END, last_led, came DESC, first_came, m.id LIMIT 1",
            (meeting.circle, meeting.id, meeting.circle, ts(meeting.starts_at), meeting.id, meeting.id,
             meeting.circle, meeting.id),
        )
        if row is None:
            return None
        return Facilitator(int(row["member"]), UserRef(row["platform"], row["user_id"], row["name"]), "proposed")


__all__ = ["Facilitator", "FacilitatorQueries", "Presence", "Progress", "RecordQueries", "RecordRow"]

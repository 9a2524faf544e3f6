"""Linked accounts: one person's identities on several platforms (a Discord account, a Matrix account, a console
name) as one member.

Each identity keeps its own row in `members`; a linked one names the person's canonical member in `linked_to`,
and every row the person has (RSVPs, check-ins, ballots, reading progress, settings, the calendar link, direct
reminders) belongs to that canonical member. The store's member cache maps each identity to it, so the rest of
the bot, the vote path included, sees one member and needs no change. Linking merges what the joining identity
had into the person, by the rules of each table (the latest RSVP, ballot, reading progress or setting wins; the
earliest check-in stays); unlinking lets an identity go with nothing (the person's history stays with the
canonical member).

A link is made with a one-time code: random (8 digits), single use, valid for CODE_LIFE, asked for by one
identity and sent by the other; an identity may send at most MAX_WRONG wrong or expired codes per TRY_WINDOW,
counted in the database (so every process counts the same), which makes guessing another person's code
hopeless (about 1 in 20 million per identity a day while one code is open)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from circlebot.core.domain import UserRef
from circlebot.store.db import Connection
from circlebot.store.queries import LINKS, MEMBERS, Store, from_ts, ts

CODE_LIFE = timedelta(minutes=10)
CODE_DIGITS = 8
MAX_WRONG = 5  # wrong or expired codes an identity may send per TRY_WINDOW
TRY_WINDOW = timedelta(hours=1)


def shown_code(code: str) -> str:
    """A code as the bot shows it: `4821-9930`."""
    return f"{code[:4]}-{code[4:]}"


def read_code(text: str) -> str | None:
    """A code as a member types it (`4821-9930`, `48219930`, `4821 9930`); None if it is not one."""
    digits = text.replace("-", "").replace(" ", "")
    return digits if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit() else None


class LinkOutcome(Enum):
    """What sending a code did."""

    LINKED = "linked"
    WRONG = "wrong"  # no such code (never given, used already, or mistyped)
    EXPIRED = "expired"
    TOO_MANY = "too many"  # MAX_WRONG wrong codes within TRY_WINDOW: no code is looked at until the window passes
    SAME = "same"  # the code was asked for by this same identity
    ALREADY = "already"  # the two identities are one person already
    OTHER_PERSON = "other person"  # this identity is linked to (or has) other identities: unlink first


@dataclass(frozen=True, slots=True)
class LinkResult:
    outcome: LinkOutcome
    identities: tuple[UserRef, ...] = ()  # the person's identities, once linked
    retry_at: datetime | None = None  # TOO_MANY: when a code is looked at again


# (table, the columns that, with member_id, identify a row, the column that decides which of two rows stays,
# which one stays: "latest" or "earliest"; None: the canonical member's row stays; which rows are merged at all)
_OPEN_POLLS = " AND poll_id IN (SELECT id FROM polls WHERE closed_at IS NULL)"  # a closed poll's results stand
_MERGED: tuple[tuple[str, tuple[str, ...], str | None, str, str], ...] = (
    ("rsvps", ("meeting_id",), "at", "latest", ""),
    ("votes", ("poll_id",), "cast_at", "latest", _OPEN_POLLS),
    ("checkins", ("meeting_id",), "at", "earliest", ""),
    ("reading_progress", ("meeting_id",), "at", "latest", ""),
    ("record_settings", ("circle", "name"), "at", "latest", ""),
    ("facilitator_passes", ("meeting_id",), None, "", ""),
    ("dm_reminders", ("circle",), "at", "latest", ""),
    ("dm_sent", ("meeting_id", "starts_at"), None, "", ""),
)
# columns naming a member that are not part of a row's identity: simply the person's from now on
_REFERS: tuple[tuple[str, str], ...] = (
    ("facilitators", "member_id"),
    ("meetings", "created_by"),
    ("polls", "opened_by"),
    ("meeting_questions", "added_by"),
    ("meeting_hidden_questions", "hidden_by"),
)


async def _merge(conn: Connection, keep: int, other: int, now: datetime) -> None:
    """Move every row of member `other` to member `keep`; where both have one, the rule of its table decides
    which stays. A closed poll's ballots stay as they were (its results were announced): the joining identity
    keeps its own there. Two yes answers to one meeting keep the better standing (a place before a turn on the
    waitlist, the earlier turn before a later), so linking never costs a place; places it frees are the
    caller's to fill (`TurnoutStore.fill`)."""
    better = ("o.answer = 'yes' AND ((o.waitlisted_at IS NULL AND rsvps.waitlisted_at IS NOT NULL) "
              "OR o.waitlisted_at < rsvps.waitlisted_at)")
    await conn.execute("DELETE FROM rsvps WHERE member_id = ? AND answer = 'yes' AND EXISTS (SELECT 1 FROM rsvps o "
                       f"WHERE o.member_id = ? AND o.meeting_id = rsvps.meeting_id AND {better})", (keep, other))
    await conn.execute("DELETE FROM rsvps WHERE member_id = ? AND answer = 'yes' AND EXISTS (SELECT 1 FROM rsvps o "
                       "WHERE o.member_id = ? AND o.meeting_id = rsvps.meeting_id AND o.answer = 'yes')",
                       (other, keep))
    for table, key, order, which, only in _MERGED:
        same = " AND ".join(f"o.{k} = {table}.{k}" for k in key)
        if order is None:
            await conn.execute(f"DELETE FROM {table} WHERE member_id = ?{only} AND EXISTS "
                               f"(SELECT 1 FROM {table} o WHERE o.member_id = ? AND {same})", (other, keep))
        else:
            wins = ">=" if which == "latest" else "<="  # ties: the canonical member's row stays
            await conn.execute(f"DELETE FROM {table} WHERE member_id = ?{only} AND EXISTS (SELECT 1 FROM {table} o "
                               f"WHERE o.member_id = ? AND {same} AND o.{order} {wins} {table}.{order})",
                               (other, keep))
            await conn.execute(f"DELETE FROM {table} WHERE member_id = ?{only} AND EXISTS "
                               f"(SELECT 1 FROM {table} o WHERE o.member_id = ? AND {same})", (keep, other))
        await conn.execute(f"UPDATE {table} SET member_id = ? WHERE member_id = ?{only}", (keep, other))
    # one calendar link per circle: the person's stays, the joining identity's is retired where both have one
    await conn.execute(
        "UPDATE web_links SET retired_at = ? WHERE member_id = ? AND retired_at IS NULL AND circle IN "
        "(SELECT circle FROM web_links o WHERE o.member_id = ? AND o.retired_at IS NULL)", (ts(now), other, keep))
    await conn.execute("UPDATE web_links SET member_id = ? WHERE member_id = ?", (keep, other))
    for table, column in _REFERS:
        await conn.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", (keep, other))


async def _clear_over(conn: Connection, now: datetime) -> int:
    """Delete the codes that have expired and the wrong tries past TRY_WINDOW; how many rows went."""
    codes = await conn.execute("DELETE FROM link_codes WHERE expires_at < ?", (ts(now),))
    tries = await conn.execute("DELETE FROM link_tries WHERE at < ?", (ts(now - TRY_WINDOW),))
    return int(codes.rowcount) + int(tries.rowcount)


# a person's identities, the canonical one first
_IDENTITIES_SQL = ("SELECT platform, user_id, name FROM members WHERE id = ? OR linked_to = ? "
                   "ORDER BY CASE WHEN linked_to IS NULL THEN 0 ELSE 1 END, id")


class Accounts:
    """Codes, links and unlinks, on the store's database; every link or unlink is counted as a change of
    members (and of the web's links), so other processes drop the identities they cached."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _identity(self, conn: Connection, user: UserRef) -> tuple[int, int | None]:
        """(its own member id, the member it is linked to or None); created if new."""
        rows = list(await conn.execute_fetchall(
            "INSERT INTO members (platform, user_id, name) VALUES (?, ?, ?) ON CONFLICT (platform, user_id) "
            "DO UPDATE SET name = CASE WHEN excluded.name = '' THEN members.name ELSE excluded.name END "
            "RETURNING id, linked_to", (user.platform, user.id, user.name)))
        return int(rows[0][0]), None if rows[0][1] is None else int(rows[0][1])

    async def clean_up(self, now: datetime) -> int:
        """Remove codes that have expired and wrong tries older than TRY_WINDOW (the daily clean-up; asking for
        a code also does it). Returns how many rows went."""
        async with self.store.db.transaction() as conn:
            return await _clear_over(conn, now)

    async def issue_code(self, user: UserRef, now: datetime) -> tuple[str, datetime]:
        """A new code for this identity (its earlier ones stop working), and when it expires."""
        expires = now + CODE_LIFE
        async with self.store.db.transaction() as conn:
            own, _ = await self._identity(conn, user)
            await conn.execute("DELETE FROM link_codes WHERE member_id = ?", (own,))
            await _clear_over(conn, now)
            while True:
                code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
                cur = await conn.execute(
                    "INSERT INTO link_codes (code, member_id, created_at, expires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (code) DO NOTHING", (code, own, ts(now), ts(expires)))
                if cur.rowcount == 1:
                    return code, expires

    async def redeem(self, user: UserRef, code: str, now: datetime) -> LinkResult:
        """This identity sends a code: linked to the identity that asked for it, whose person it joins."""
        linked = False
        counts: tuple[int, int] | None = None
        try:
            async with self.store.db.transaction() as conn:
                own, link = await self._identity(conn, user)
                tries = list(await conn.execute_fetchall(
                    "SELECT at FROM link_tries WHERE member_id = ? AND at > ? ORDER BY at",
                    (own, ts(now - TRY_WINDOW))))
                if len(tries) >= MAX_WRONG:
                    return LinkResult(LinkOutcome.TOO_MANY, retry_at=from_ts(tries[-MAX_WRONG][0]) + TRY_WINDOW)
                rows = list(await conn.execute_fetchall(
                    "DELETE FROM link_codes WHERE code = ? RETURNING member_id, expires_at", (code,)))
                if not rows or from_ts(rows[0][1]) <= now:
                    await conn.execute("INSERT INTO link_tries (member_id, at) VALUES (?, ?)", (own, ts(now)))
                    return LinkResult(LinkOutcome.WRONG if not rows else LinkOutcome.EXPIRED)
                asker = int(rows[0][0])
                if asker == own:
                    return LinkResult(LinkOutcome.SAME)
                person_rows = list(await conn.execute_fetchall(
                    "SELECT coalesce(linked_to, id) FROM members WHERE id = ?", (asker,)))
                person = int(person_rows[0][0])
                if person in (own, link):
                    return LinkResult(LinkOutcome.ALREADY, await self._identities(conn, person))
                if link is not None or await conn.execute_fetchall(
                        "SELECT 1 FROM members WHERE linked_to = ? LIMIT 1", (own,)):
                    return LinkResult(LinkOutcome.OTHER_PERSON, await self._identities(conn, link or own))
                await _merge(conn, person, own, now)
                await conn.execute("UPDATE members SET linked_to = ? WHERE id = ?", (person, own))
                await conn.execute("DELETE FROM link_codes WHERE member_id = ?", (own,))
                linked = True
                counts = await self._count(conn)
                return LinkResult(LinkOutcome.LINKED, await self._identities(conn, person))
        finally:
            if linked:  # a wrong code changed nothing: the caches stay
                self._changed(counts)

    async def _count(self, conn: Connection) -> tuple[int, int]:
        """Count a change of members, and of the web's links (a calendar link may have been retired), so other
        processes drop what they cached of them."""
        return (await self.store._count_change(conn, MEMBERS), await self.store._count_change(conn, LINKS))

    def _changed(self, counts: tuple[int, int] | None) -> None:
        """After a transaction that linked or unlinked (counted `counts`; None: it failed): drop this process's
        member and link caches."""
        self.store._changed_here(MEMBERS, counts[0] if counts else None)
        self.store._changed_here(LINKS, counts[1] if counts else None)

    async def unlink(self, user: UserRef) -> tuple[UserRef, ...]:
        """Undo this identity's link: a linked identity becomes its own member again (with nothing: the person's
        rows stay with the canonical member); the canonical member's identity lets every other go. Returns the
        identities let go (none: it was not linked)."""
        gone: tuple[UserRef, ...] = ()
        counts: tuple[int, int] | None = None
        try:
            async with self.store.db.transaction() as conn:
                own, _ = await self._identity(conn, user)
                rows = await conn.execute_fetchall(
                    "UPDATE members SET linked_to = NULL WHERE (id = ? AND linked_to IS NOT NULL) OR linked_to = ? "
                    "RETURNING platform, user_id, name", (own, own))
                gone = tuple(UserRef(r[0], r[1], r[2]) for r in rows)
                if gone:
                    counts = await self._count(conn)
        finally:
            if gone:
                self._changed(counts)
        return gone

    async def identities(self, user: UserRef) -> tuple[UserRef, ...]:
        """Every identity of this identity's person (itself alone when it is not linked)."""
        row = await self.store.db.fetchone(
            "SELECT coalesce(linked_to, id) FROM members WHERE platform = ? AND user_id = ?", (user.platform, user.id))
        if row is None:
            return (user,)
        rows = await self.store.db.fetchall(_IDENTITIES_SQL, (int(row[0]), int(row[0])))
        return tuple(UserRef(r[0], r[1], r[2]) for r in rows)

    @staticmethod
    async def _identities(conn: Connection, person: int) -> tuple[UserRef, ...]:
        rows = await conn.execute_fetchall(_IDENTITIES_SQL, (person, person))
        return tuple(UserRef(r[0], r[1], r[2]) for r in rows)

"""Queries per table group, as methods on `Store`. Times are stored as UTC ISO 8601 text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from circlebot.core.domain import ChannelRef, MessageRef, RsvpAnswer, UserRef
from circlebot.store.db import Connection, Database, Pending, Row, RowsInsert, WriteBatcher, WriteRejected

log = logging.getLogger(__name__)


def ts(dt: datetime) -> str:
    """A UTC timestamp as stored: fixed width, so text order is time order."""
    if dt.tzinfo is not UTC:
        if dt.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def from_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_ts(text: str | None) -> datetime | None:
    return from_ts(text) if text else None


KEEP_STATE = timedelta(days=30)  # adapter state outlives its meeting's end or its poll's closing by this much


class AdapterState:
    """A platform adapter's state. Items (what a post's reactions mean, who reacted how, when a poll ended), by
    namespace and key: each may name the meeting it belongs to, or the platform message of its poll, and
    `Store.clean_up` removes it once that meeting or poll is long past. And settings (a sync token), kept."""

    def __init__(self, db: Database, platform: str) -> None:
        self._db = db
        self.platform = platform

    async def get(self, namespace: str, key: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT value FROM adapter_items WHERE platform = ? AND namespace = ? AND key = ?",
            (self.platform, namespace, key),
        )
        return str(row[0]) if row else None

    async def put(self, namespace: str, key: str, value: str, *, meeting_id: int | None = None,
                  poll_message: str | None = None, now: datetime | None = None) -> None:
        """Keep an item; `meeting_id`, or `poll_message` (the id of a poll's message on this platform), says
        what it belongs to."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO adapter_items (platform, namespace, key, value, meeting_id, poll_id, written_at) "
                "VALUES (?, ?, ?, ?, (SELECT id FROM meetings WHERE id = ?), "
                "(SELECT poll_id FROM poll_messages WHERE platform = ? AND message_id = ? LIMIT 1), ?) "
                "ON CONFLICT (platform, namespace, key) DO UPDATE SET value = excluded.value, "
                "meeting_id = excluded.meeting_id, poll_id = excluded.poll_id, written_at = excluded.written_at",
                (self.platform, namespace, key, value, meeting_id, self.platform, poll_message,
                 ts(now or datetime.now(UTC))),
            )

    async def items(self, namespace: str) -> list[tuple[str, str]]:
        """Every item of `namespace`: (key, value) pairs in key order."""
        rows = await self._db.fetchall(
            "SELECT key, value FROM adapter_items WHERE platform = ? AND namespace = ? ORDER BY key",
            (self.platform, namespace),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    async def delete(self, namespace: str, key: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM adapter_items WHERE platform = ? AND namespace = ? AND key = ?",
                (self.platform, namespace, key),
            )

    async def setting(self, key: str) -> str | None:
        """A setting of the platform's that lives as long as the bot does (a sync token, its DM rooms); never
        cleaned up."""
        row = await self._db.fetchone(
            "SELECT value FROM adapter_state WHERE platform = ? AND key = ?", (self.platform, key)
        )
        return str(row[0]) if row else None

    async def set_setting(self, key: str, value: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO adapter_state (platform, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value",
                (self.platform, key, value),
            )


@dataclass(frozen=True, slots=True)
class Meeting:
    """A circle's meeting, with the reading (or part of it) it discusses."""

    id: int
    circle: str
    starts_at: datetime
    ends_at: datetime
    reading: str
    part: int | None
    parts: int | None
    status: str
    revision: int = 0  # +1 at every move or cancellation (a calendar's SEQUENCE)
    modified_at: datetime | None = None  # when it was created, moved or cancelled last (LAST-MODIFIED)
    calendar_uid: str | None = None  # the UID it was published under while planned, if the syllabus stored it

    @property
    def uid(self) -> str:
        """Its calendar UID, the same in every export and feed for its life: the one it had while the syllabus
        only planned it, or else (a meeting scheduled by command, or stored before UIDs were kept)
        `meeting-<id>-<circle>@circlebot`."""
        return self.calendar_uid or f"meeting-{self.id}-{self.circle}@circlebot"

    @classmethod
    def from_row(cls, row: Row) -> Meeting:
        return cls(
            id=row["id"],
            circle=row["circle"],
            starts_at=from_ts(row["starts_at"]),
            ends_at=from_ts(row["ends_at"]),
            reading=row["reading"],
            part=row["part"],
            parts=row["parts"],
            status=row["status"],
            revision=row["revision"],
            modified_at=_opt_ts(row["modified_at"]),
            calendar_uid=row["calendar_uid"],
        )

    def is_open(self, now: datetime) -> bool:
        return self.status == "scheduled" and self.starts_at <= now < self.ends_at


def planned_uid(circle: str, start: datetime, taken: Collection[str] = ()) -> str:
    """The calendar UID of a meeting the syllabus plans at `start`, kept when the syllabus stores it (and after
    a move), so a subscribed calendar updates that event instead of replacing it. `taken`: the UIDs of the
    circle's stored meetings; a slot planned again after its meeting moved away gets the next free UID, the
    same wherever it is worked out (the feed, the syllabus storing it)."""
    base = f"planned-{circle}-{start:%Y%m%dT%H%M%SZ}"
    uid, n = f"{base}@circlebot", 1
    while uid in taken:
        n += 1
        uid = f"{base}-{n}@circlebot"
    return uid


@dataclass(frozen=True, slots=True)
class PostClaim:
    """A timeline post to claim, and the locations to deliver it to."""

    key: str
    circle: str
    meeting_id: int | None
    kind: str
    due_at: datetime
    locations: tuple[ChannelRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One location of a claimed post, not yet done."""

    post_key: str
    where: ChannelRef
    first_try_at: datetime


_POST_LOG_SQL = ("INSERT INTO post_log (key, circle, meeting_id, kind, due_at, state, claimed_at, done_at, detail) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING")
_DELIVERY_SQL = ("UPDATE post_deliveries SET state = ?, done_at = ?, message_id = ?, detail = ? "
                 "WHERE post_key = ? AND platform = ? AND channel = ? AND state = 'sending'")


@dataclass(frozen=True, slots=True)
class PollRow:
    """A poll as stored."""

    id: int
    circle: str
    question: str
    answers: tuple[str, ...]
    multi: bool
    secret: bool
    opened_by: int | None
    opened_at: datetime
    closes_at: datetime | None
    closed_at: datetime | None

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def over(self, now: datetime) -> bool:
        """Closed, or past its closing time (when the bot was down then, it closes the poll on its return)."""
        return self.closed or (self.closes_at is not None and now >= self.closes_at)


class _SeenNames(str):
    """The names a linked person's identities were last seen with, as `Store._names` holds them for the
    person's member id: equal to each of them, so `known_member` knows every identity as unchanged (one name
    alone would make each identity look renamed whenever the other was seen)."""

    names: frozenset[str]

    def __eq__(self, other: object) -> bool:
        return other in self.names

    def __ne__(self, other: object) -> bool:
        return other not in self.names

    __hash__ = str.__hash__


@dataclass(slots=True)
class _Joining:
    """A new identity waiting to be created, with the name it was last seen with."""

    name: str
    done: asyncio.Future[int]


_MEMBERS_PER_STATEMENT = 500  # 1,500 parameters a statement

_VOTE_INTO = "INSERT INTO votes (poll_id, member_id, answers, cast_at) VALUES "
_VOTE_SQL = RowsInsert(  # a ballot cast by command; the native ballot last seen stays as it is
    _VOTE_INTO, "(?, ?, ?, ?)",
    " ON CONFLICT (poll_id, member_id) DO UPDATE SET answers = excluded.answers, cast_at = excluded.cast_at, "
    "source = 'command' WHERE excluded.cast_at >= votes.cast_at",
)
_NATIVE_INTO = "INSERT INTO votes (poll_id, member_id, answers, cast_at, source, native) VALUES "
_NATIVE_ROW = "(?1, ?2, ?3, ?4, 'native', ?3)"
_NATIVE_SET = (" ON CONFLICT (poll_id, member_id) DO UPDATE SET answers = excluded.answers, "
               "cast_at = excluded.cast_at, source = 'native', native = excluded.native")
# a ballot from a platform's native poll: it is also the native ballot last seen; exactly as given (a read-back)
_NATIVE_UPSERT = RowsInsert(_NATIVE_INTO, _NATIVE_ROW, _NATIVE_SET)
# the same, the latest by cast time winning (platforms deliver out of order)
_NATIVE_VOTE_SQL = RowsInsert(_NATIVE_INTO, _NATIVE_ROW, _NATIVE_SET + " WHERE excluded.cast_at >= votes.cast_at")


# what the database says when it refuses a ballot because its poll is closed (the trigger of the migration
# "no ballot is stored in a closed poll", on both databases); never change it, the migration holds it
BALLOT_REFUSED = "ballot refused: the poll is closed"


class PollClosed(Exception):
    """The database refused a ballot because its poll was closed when the ballot reached it (closed by another
    process, or by this one while the ballot waited to be written)."""

    def __init__(self, poll_id: int) -> None:
        super().__init__(f"poll #{poll_id} is closed")
        self.poll_id = poll_id


def refused_as_closed(error: BaseException) -> bool:
    """Whether the database refused a write (every refused row of it) because the poll of its ballot is closed."""
    if isinstance(error, WriteRejected):
        return all(refused_as_closed(e) for _, e in error.rejected)
    return isinstance(error, PollClosed) or (isinstance(error, Exception) and str(error) == BALLOT_REFUSED)


async def _closed_dropped(write: Awaitable[None], rows: Sequence[tuple[int, int, str, int]]) -> None:
    """Wait for a write of native ballots; the ballots the database refused because their poll is closed are
    dropped with a line in the log (the platform's poll has ended too), any other refusal is raised."""
    try:
        await write
    except WriteRejected as e:
        closed = [i for i, error in e.rejected if refused_as_closed(error)]
        if closed:
            _log_dropped([rows[i] for i in closed])
        if len(closed) < len(e.rejected):
            raise WriteRejected([(i, error) for i, error in e.rejected if i not in closed], e.total) from e
    except Exception as e:
        if not refused_as_closed(e):
            raise
        _log_dropped(rows)


def _log_dropped(rows: Sequence[tuple[int, int, str, int]]) -> None:
    polls = ", ".join(f"#{p}" for p in sorted({r[0] for r in rows}))
    log.info("not counting %d vote(s) in poll %s: the poll is closed (it closed before the vote reached the "
             "database)", len(rows), polls)


@dataclass(frozen=True, slots=True)
class StoredBallot:
    """A member's ballot as stored: its answers, when and how it was cast (`source`: "command" or "native"),
    and the native ballot last seen on the member's platform (None: none seen; for a linked person, on any of
    its platforms). `cast_at` is in microseconds
    since the epoch, as `Store.vote_row` writes it."""

    member_id: int
    answers: tuple[int, ...]
    cast_at: int
    source: str
    native: tuple[int, ...] | None
    # the member is a linked person (several identities): `native` may be another platform's native ballot
    linked: bool = False


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a shared future's error as seen (its waiters may all have been cancelled)."""
    if not future.cancelled():
        future.exception()


def _answers(text: str | None) -> tuple[int, ...]:
    return tuple(int(a) for a in text.split(",") if a) if text else ()


# the kinds of shared rows kept in memory (`change_counts`): the store's meetings and polls, the web's links,
# the member each platform identity is (linked accounts: `store/accounts.py`)
MEETINGS, POLLS, LINKS, MEMBERS = "meetings", "polls", "links", "members"
WATCH_EVERY = 0.25  # seconds between a process's looks at the change counts (`Store.watch`)
_COUNT_CHANGE_SQL = ("INSERT INTO change_counts (kind, n) VALUES (?, 1) "
                     "ON CONFLICT (kind) DO UPDATE SET n = change_counts.n + 1 RETURNING n")
_CIRCLE_CHANGED = " ON CONFLICT (circle) DO UPDATE SET at_count = excluded.at_count"
_CIRCLE_CHANGED_SQL = "INSERT INTO meeting_changes (circle, at_count) VALUES (?, ?)" + _CIRCLE_CHANGED
_MEETINGS_CIRCLE_CHANGED_SQL = ("INSERT INTO meeting_changes (circle, at_count) SELECT circle, ? FROM meetings "
                                "WHERE id = ?" + _CIRCLE_CHANGED)
ANY_CIRCLE = "*"  # in `meeting_changes`: a change whose circle is not known
# linked accounts: an identity seen as an organiser by its platform's standing makes its person's other
# identities organisers for this long after; the record of it is written again at most this often
STANDING_LIFE = timedelta(days=7)
STANDING_REFRESH = timedelta(days=1)
REPLAN_ALL_ABOVE = 50  # more circles changed at once elsewhere than this: plan every circle again, in one go

CANCEL_MEETING_SQL = ("UPDATE meetings SET status = 'cancelled', revision = revision + 1, modified_at = ? "
                      "WHERE id = ? AND status <> 'cancelled'")
MOVE_MEETING_SQL = ("UPDATE meetings SET starts_at = ?, ends_at = ?, revision = revision + 1, modified_at = ? "
                    "WHERE id = ?")


class Store:
    """Every query the core makes. Member ids, polls and upcoming meetings are cached; the database stays the
    truth.

    Several processes may share the database (PostgreSQL, or one SQLite file), so a cached meeting or poll may
    be changed by another one. Every transaction that changes meetings or polls (or the web's links) counts it in
    `change_counts`, in the same transaction; a read that may answer from the cache (`meetings` of the upcoming
    kind, `poll`) first reads those counts, one small row each, and drops what another process changed. The
    reads that do no I/O (`cached_poll`, the vote path's) rely on `watch`, which looks every WATCH_EVERY
    seconds and drops the caches at once, so they are stale for at most that long."""

    VOTE_SQL = _VOTE_SQL

    def __init__(self, db: Database) -> None:
        self.db = db
        self.batcher = WriteBatcher(db)
        self._members: dict[tuple[str, str], int] = {}
        # identities seen for the first time (or with a new name), waiting to be created together
        self._joining: dict[tuple[str, str], _Joining] = {}
        self._join_task: asyncio.Task[None] | None = None
        self._names: dict[int, str] = {}
        # a linked person's identities as last seen, by member id: their names (see `_SeenNames`)
        self._identity_names: dict[int, dict[tuple[str, str], str]] = {}
        # the identities of each linked person, by each identity (None: not read since the last drop)
        self._persons: dict[tuple[str, str], tuple[UserRef, ...]] | None = None
        # when each linked identity was last seen as an organiser by standing, by (circle, platform, user id)
        self._standing: dict[tuple[str, str, str], datetime] = {}
        self._noting: set[asyncio.Task[None]] = set()  # standings being written
        self._polls: dict[int, PollRow] = {}
        # by (platform, channel, message id): a tuple of strings hashes faster than the MessageRef
        self._poll_of_message: dict[tuple[str, str, str], int] = {}
        self._poll_lookups: dict[tuple[str, str, str], asyncio.Task[int | None]] = {}  # under way, by message
        # per circle: its scheduled meetings ending after a time, as last read; every meeting write clears it
        self._upcoming: dict[str, tuple[datetime, list[Meeting]]] = {}
        # the change counts as last read (None: not read yet); a kind's epoch counts its caches' drops, so a
        # read that began before a drop does not put what it read into the cache after it
        self._counts: dict[str, int] | None = None
        self._epoch = {MEETINGS: 0, POLLS: 0, LINKS: 0, MEMBERS: 0}
        self._unannounced: set[str] = set()  # kinds another process changed that `watch` has not reported yet
        self._circles_changed: set[str] = set()  # and the circles whose meetings it changed (ANY_CIRCLE: unknown)
        self._looking: asyncio.Task[None] | None = None  # the read of the counts under way
        self._next_look: asyncio.Future[None] | None = None  # done when the read after it is

    # what other processes change -----------------------------------------------------------------
    def _drop(self, kind: str) -> None:
        """Forget the cached rows of a kind (they are read again when next needed); a cache kept outside the
        store (the web's links) compares `epoch`."""
        self._epoch[kind] += 1
        if kind == MEETINGS:
            self._upcoming.clear()
        elif kind == POLLS:
            self._polls.clear()
            self._poll_of_message.clear()
        elif kind == MEMBERS:  # an identity was linked or unlinked: each is looked up again when next seen
            self._members.clear()
            self._names.clear()
            self._identity_names.clear()
            self._persons = None
            self._standing = {}

    def epoch(self, kind: str) -> int:
        """How many times the cached rows of a kind were dropped: a cache of them made at one epoch is good
        while the epoch stays the same. No I/O."""
        return self._epoch[kind]

    @contextlib.asynccontextmanager
    async def changing(self, kind: str, *, circle: str | None = None, meeting_id: int | None = None,
                       counted: Callable[[], bool] | None = None) -> AsyncIterator[Connection]:
        """A transaction that changes rows of a kind other processes may keep in memory, counted in
        `change_counts` (unless `counted` says, at its end, that it changed nothing); this process's caches of
        that kind are dropped once it is over. Meetings: the circle changed (or the meeting's) is noted too."""
        count: int | None = None
        try:
            async with self.db.transaction() as conn:
                yield conn
                if counted is None or counted():
                    count = await self._count_change(conn, kind)
                    if kind == MEETINGS:
                        if circle is None and meeting_id is not None:
                            await conn.execute(_MEETINGS_CIRCLE_CHANGED_SQL, (count, meeting_id))
                        else:
                            await conn.execute(_CIRCLE_CHANGED_SQL, (circle or ANY_CIRCLE, count))
        finally:
            self._changed_here(kind, count)

    async def _count_change(self, conn: Connection, kind: str) -> int:
        """Inside a transaction that changes `kind`: count the change; the new count."""
        rows = list(await conn.execute_fetchall(_COUNT_CHANGE_SQL, (kind,)))
        return int(rows[0][0])

    def _changed_here(self, kind: str, count: int | None) -> None:
        """After a transaction of this process's that changed `kind` (counted `count`, None if it failed):
        drop the cached rows, and take the count as seen if no other process counted a change meanwhile."""
        self._drop(kind)
        if count is not None and self._counts is not None and self._counts.get(kind, 0) == count - 1:
            self._counts[kind] = count

    async def look_for_changes(self) -> None:
        """Read the change counts and drop the caches of what another process changed since the last look.

        The read starts after the call: so the caller's answer matches the database as of then. Callers arriving
        while a read is under way share the next one, which starts when it ends; so however many commands come
        at once, at most one read of the counts is in flight and one waits."""
        if self._looking is None:
            await asyncio.shield(self._begin_look(None))
            return
        if self._next_look is None:
            self._next_look = asyncio.get_running_loop().create_future()
            self._next_look.add_done_callback(_retrieved)
        await asyncio.shield(self._next_look)

    def _begin_look(self, waiting: asyncio.Future[None] | None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._read_counts(), name="circlebot-change-counts")
        task.add_done_callback(lambda t: self._looked(t, waiting))
        self._looking = task
        return task

    def _looked(self, task: asyncio.Task[None], waiting: asyncio.Future[None] | None) -> None:
        """A read of the counts ended: tell those who waited for it, and start the one others wait for."""
        self._looking = None
        error = None if task.cancelled() else task.exception()  # retrieved here: its waiters may be gone
        if waiting is not None and not waiting.done():
            if task.cancelled():
                waiting.cancel()
            elif error is not None:
                waiting.set_exception(error)
            else:
                waiting.set_result(None)
        following, self._next_look = self._next_look, None
        if following is not None:
            self._begin_look(following)

    async def _read_counts(self) -> None:
        rows = await self.db.fetchall("SELECT kind, n FROM change_counts")
        first = self._counts is None
        counts = self._counts if self._counts is not None else {}
        for row in rows:
            kind, n = str(row[0]), int(row[1])
            if kind in self._epoch and n > counts.get(kind, 0):
                seen = counts.get(kind, 0)
                counts[kind] = n
                self._drop(kind)
                if not first:
                    self._unannounced.add(kind)
                    if kind == MEETINGS:
                        await self._note_circles(seen)
        self._counts = counts

    async def _note_circles(self, seen: int) -> None:
        """The circles whose meetings changed after the meetings change count `seen` (every one if that cannot
        be read)."""
        try:
            rows = await self.db.fetchall("SELECT circle FROM meeting_changes WHERE at_count > ?", (seen,))
        except Exception:
            log.exception("could not read which circles' meetings changed; planning every circle again")
            self._circles_changed.add(ANY_CIRCLE)
            return
        self._circles_changed.update(str(r[0]) for r in rows)

    async def watch(self, on_change: Callable[[frozenset[str], frozenset[str] | None], Awaitable[None]], *,
                    every: float = WATCH_EVERY) -> None:
        """Until cancelled: look at the change counts every `every` seconds, drop the caches of what another
        process changed, and tell `on_change` which kinds (`MEETINGS`, `POLLS`, `LINKS`) it changed (also
        those a command's read found first), with the circles whose meetings it changed (None: not known, or
        more than REPLAN_ALL_ABOVE: every circle). A failure is logged and the next look goes on."""
        while True:
            try:
                await self.look_for_changes()
                if self._unannounced:
                    kinds = frozenset(self._unannounced)
                    circles: frozenset[str] | None = frozenset(self._circles_changed)
                    self._unannounced.clear()
                    self._circles_changed.clear()
                    if circles is not None and (ANY_CIRCLE in circles or len(circles) > REPLAN_ALL_ABOVE):
                        circles = None
                    await on_change(kinds, circles)
            except Exception:
                log.exception("could not look for changes other processes made; looking again in %.2f s", every)
            await asyncio.sleep(every)

    # members ---------------------------------------------------------------------------------------
    def known_member(self, user: UserRef) -> int | None:
        """The member id if this identity (with this shown name) is already cached; no I/O."""
        mid = self._members.get((user.platform, user.id))
        if mid is not None and (not user.name or self._names.get(mid) == user.name):
            return mid
        return None

    async def ensure_member(self, user: UserRef) -> int:
        """The member id of a platform identity, created on first sight; the shown name kept current.

        New identities seen at the same moment (the first votes of a crowd) are created together, in one
        transaction and one statement."""
        mid = self.known_member(user)
        if mid is not None:
            return mid
        key = (user.platform, user.id)
        joining = self._joining.get(key)
        if joining is None:
            joining = self._joining[key] = _Joining(user.name, asyncio.get_running_loop().create_future())
        else:
            joining.name = user.name
        if self._join_task is None:
            self._join_task = asyncio.create_task(self._add_members(), name="circlebot-new-members")
        return await asyncio.shield(joining.done)  # one waiter cancelled does not cancel the others

    async def _add_members(self) -> None:
        """Create (or rename) the members waiting in `_joining`, a group at a time."""
        group: dict[tuple[str, str], _Joining] = {}
        try:
            await asyncio.sleep(0)  # let everyone new at this moment join the group
            while self._joining:
                group, self._joining = self._joining, {}
                epoch = self._epoch[MEMBERS]
                try:
                    rows = await self._upsert_members([(p, u, j.name) for (p, u), j in group.items()])
                    if self._persons is None:
                        persons, standing = await self._read_persons()
                        if self._epoch[MEMBERS] == epoch:
                            self._persons, self._standing = persons, standing
                except Exception as e:
                    for j in group.values():
                        if not j.done.done():
                            j.done.set_exception(e)
                    continue
                found: dict[tuple[str, str], int] = {}
                for row in rows:
                    mid, key = int(row[0]), (row[1], row[2])  # the person's member id (linked accounts)
                    found[key] = mid
                    if self._epoch[MEMBERS] != epoch:
                        continue  # linked or unlinked meanwhile: not cached, looked up again when next seen
                    self._members[key] = mid
                    self._names[mid] = self._seen_name(mid, key, row[3])
                for key, j in group.items():
                    if not j.done.done():
                        j.done.set_result(found[key])
        except BaseException:  # cancelled (the loop is closing): nobody waits for ever
            for j in (*group.values(), *self._joining.values()):
                j.done.cancel()
            self._joining = {}
            raise
        finally:
            self._join_task = None

    async def _upsert_members(self, people: list[tuple[str, str, str]]) -> list[Row]:
        out: list[Row] = []
        async with self.db.transaction() as conn:
            for i in range(0, len(people), _MEMBERS_PER_STATEMENT):
                chunk = people[i : i + _MEMBERS_PER_STATEMENT]
                out += await conn.execute_fetchall(
                    "INSERT INTO members (platform, user_id, name) VALUES "
                    + ", ".join(["(?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT (platform, user_id) DO UPDATE SET name = CASE WHEN excluded.name = '' "
                    "THEN members.name ELSE excluded.name END RETURNING coalesce(linked_to, id), platform, user_id, "
                    "name",
                    [v for person in chunk for v in person],
                )
        return out

    def _seen_name(self, mid: int, key: tuple[str, str], name: str) -> str:
        """What `_names` holds for member `mid` once identity `key` was seen named `name`: the name, or for a
        linked person seen under several identities, all their names."""
        if self._persons is None or key not in self._persons:
            return name
        seen = self._identity_names.setdefault(mid, {})
        seen[key] = name
        if len(set(seen.values())) == 1:
            return name
        shown = _SeenNames(name)
        shown.names = frozenset(seen.values())
        return shown

    async def _read_persons(self) -> tuple[dict[tuple[str, str], tuple[UserRef, ...]],
                                           dict[tuple[str, str, str], datetime]]:
        """Every linked person's identities, by each of its identities; and when identities were last seen as
        organisers by standing (`note_standing`)."""
        rows = await self.db.fetchall(
            "SELECT coalesce(linked_to, id) AS person, platform, user_id, name FROM members WHERE linked_to IS NOT "
            "NULL OR id IN (SELECT linked_to FROM members WHERE linked_to IS NOT NULL) ORDER BY person, id")
        people: dict[int, list[UserRef]] = {}
        for r in rows:
            people.setdefault(int(r[0]), []).append(UserRef(r[1], r[2], r[3]))
        standing = await self.db.fetchall(
            "SELECT s.circle, m.platform, m.user_id, s.seen_at FROM organiser_standing s "
            "JOIN members m ON m.id = s.member_id")
        return ({(u.platform, u.id): tuple(group) for group in people.values() for u in group},
                {(r[0], r[1], r[2]): from_ts(r[3]) for r in standing})

    def note_standing(self, circle: str, user: UserRef, now: datetime) -> None:
        """A linked identity was seen as an organiser of `circle` by its platform's standing (a role, a power
        level): its person's other identities are organisers there for STANDING_LIFE (`has_standing`). Kept in
        the database (at most once per STANDING_REFRESH), counted as a change of members so other processes
        read it. No I/O here: the write is a task of the store's."""
        if self._persons is None or (user.platform, user.id) not in self._persons:
            return
        key = (circle, user.platform, user.id)
        seen = self._standing.get(key)
        if seen is not None and now - seen < STANDING_REFRESH:
            return
        self._standing[key] = now
        task = asyncio.get_running_loop().create_task(self._keep_standing(circle, user, now),
                                                      name="circlebot-organiser-standing")
        self._noting.add(task)
        task.add_done_callback(self._kept_standing)

    def _kept_standing(self, task: asyncio.Task[None]) -> None:
        self._noting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not keep an organiser's standing", exc_info=task.exception())

    async def _keep_standing(self, circle: str, user: UserRef, now: datetime) -> None:
        """Write a standing `note_standing` cached already; other processes drop their member caches to read
        it, this one keeps them (a drop here would lose the standing until the next look-up)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO organiser_standing (circle, member_id, seen_at) SELECT ?, id, ? FROM members "
                "WHERE platform = ? AND user_id = ? ON CONFLICT (circle, member_id) DO UPDATE SET "
                "seen_at = excluded.seen_at", (circle, ts(now), user.platform, user.id))
            count = await self._count_change(conn, MEMBERS)
        if self._counts is not None and self._counts.get(MEMBERS, 0) == count - 1:
            self._counts[MEMBERS] = count

    def has_standing(self, circle: str, user: UserRef, now: datetime) -> bool:
        """Whether this linked identity was seen as an organiser of `circle` by standing within STANDING_LIFE
        (as cached with the person's identities). No I/O."""
        seen = self._standing.get((circle, user.platform, user.id))
        return seen is not None and now - seen < STANDING_LIFE

    def linked_identities(self, user: UserRef) -> tuple[UserRef, ...]:
        """The other identities of this identity's person (linked accounts), as cached when the identity was
        last seen (`ensure_member`); none if it is not linked, or not seen since a link changed. No I/O."""
        group = self._persons.get((user.platform, user.id), ()) if self._persons is not None else ()
        return tuple(u for u in group if (u.platform, u.id) != (user.platform, user.id))

    async def member(self, member_id: int) -> UserRef | None:
        """The platform identity of a member id."""
        row = await self.db.fetchone("SELECT platform, user_id, name FROM members WHERE id = ?", (member_id,))
        return UserRef(row["platform"], row["user_id"], row["name"]) if row else None

    async def find_member(self, platform: str, text: str) -> UserRef | None:
        """A member of `platform` by id or shown name (case-insensitive)."""
        row = await self.db.fetchone(
            "SELECT platform, user_id, name FROM members WHERE platform = ? AND (user_id = ? OR lower(name) = "
            "lower(?)) ORDER BY user_id = ? DESC LIMIT 1",
            (platform, text, text, text),
        )
        return UserRef(row["platform"], row["user_id"], row["name"]) if row else None

    # meetings --------------------------------------------------------------------------------------
    def _meeting_write(self, circle: str | None = None, meeting_id: int | None = None
                       ) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction that changes meetings of a circle (or a meeting's), counted in `change_counts`; the
        cached upcoming meetings are dropped once it is over."""
        return self.changing(MEETINGS, circle=circle, meeting_id=meeting_id)

    async def add_meeting(
        self,
        circle: str,
        starts_at: datetime,
        ends_at: datetime,
        reading: str,
        created_by: int | None,
        now: datetime,
        part: int | None = None,
        parts: int | None = None,
        *,
        calendar_uid: str | None = None,
    ) -> Meeting:
        """Store a meeting; `calendar_uid`: the UID the syllabus published it under while planned
        (`planned_uid`), which it keeps."""
        uid = calendar_uid
        async with self._meeting_write(circle) as conn:
            cur = await conn.execute(
                "INSERT INTO meetings (circle, starts_at, ends_at, reading, part, parts, created_by, created_at, "
                "modified_at, calendar_uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (circle, ts(starts_at), ts(ends_at), reading, part, parts, created_by, ts(now), ts(now), uid),
            )
            mid = cur.lastrowid
        meeting = await self.meeting(int(mid or 0))
        assert meeting is not None
        return meeting

    async def meeting(self, meeting_id: int) -> Meeting | None:
        row = await self.db.fetchone("SELECT * FROM meetings WHERE id = ?", (meeting_id,))
        return Meeting.from_row(row) if row else None

    async def meetings_by_id(self, ids: Iterable[int]) -> dict[int, Meeting]:
        """The meetings with these ids (any status), as stored now."""
        wanted = sorted(set(ids))
        out: dict[int, Meeting] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = await self.db.fetchall(f"SELECT * FROM meetings WHERE id IN ({','.join('?' * len(part))})", part)
            out.update((int(r["id"]), Meeting.from_row(r)) for r in rows)
        return out

    def forget_meetings(self) -> None:
        """Another process changed meetings (a decision it made moved or cancelled one): read them again."""
        self._drop(MEETINGS)

    def meeting_transaction(self, circle: str | None = None, counted: Callable[[], bool] | None = None
                            ) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction that may change meetings of a circle, for the store's other query modules (a decided
        post's move or cancellation, `decisions`; `counted`, asked at its end, says whether it did): the
        cached upcoming meetings are dropped once it is over."""
        return self.changing(MEETINGS, circle=circle, counted=counted)

    async def cancel_meeting(self, meeting_id: int, now: datetime | None = None) -> None:
        async with self._meeting_write(meeting_id=meeting_id) as conn:
            await conn.execute(CANCEL_MEETING_SQL, (ts(now or datetime.now(UTC)), meeting_id))

    async def meetings(
        self, circle: str, *, ending_after: datetime | None = None, before: datetime | None = None,
        limit: int = 50, newest_first: bool = False, any_status: bool = False,
    ) -> list[Meeting]:
        """Scheduled meetings of a circle (with `any_status`, cancelled ones too), by start time."""
        if ending_after is not None and before is None and not newest_first and not any_status:
            return (await self._upcoming_of(circle, ending_after))[:limit]
        sql = "SELECT * FROM meetings WHERE circle = ?" + ("" if any_status else " AND status = 'scheduled'")
        params: list[Any] = [circle]
        if ending_after is not None:
            sql += " AND ends_at > ?"
            params.append(ts(ending_after))
        if before is not None:
            sql += " AND starts_at < ?"
            params.append(ts(before))
        sql += f" ORDER BY starts_at {'DESC' if newest_first else 'ASC'} LIMIT ?"
        params.append(limit)
        return [Meeting.from_row(r) for r in await self.db.fetchall(sql, params)]

    async def _upcoming_of(self, circle: str, ending_after: datetime) -> list[Meeting]:
        """The hot read of most commands (the next meeting, the upcoming list), served from memory when a
        read for an earlier time is cached and no process has changed meetings since (the change counts)."""
        await self.look_for_changes()
        cached = self._upcoming.get(circle)
        if cached is None or cached[0] > ending_after:
            epoch = self._epoch[MEETINGS]
            rows = await self.db.fetchall(
                "SELECT * FROM meetings WHERE circle = ? AND status = 'scheduled' AND ends_at > ? ORDER BY starts_at",
                (circle, ts(ending_after)),
            )
            cached = (ending_after, [Meeting.from_row(r) for r in rows])
            if self._epoch[MEETINGS] == epoch:  # not changed while it was read
                self._upcoming[circle] = cached
        return [m for m in cached[1] if m.ends_at > ending_after]

    async def all_meetings(self, *, ending_after: datetime) -> list[Meeting]:
        """Scheduled meetings of every circle ending after a time, by start time (the timeline's input)."""
        rows = await self.db.fetchall(
            "SELECT * FROM meetings WHERE status = 'scheduled' AND ends_at > ? ORDER BY starts_at", (ts(ending_after),)
        )
        return [Meeting.from_row(r) for r in rows]

    async def move_meeting(self, meeting_id: int, starts_at: datetime, ends_at: datetime,
                           now: datetime | None = None) -> None:
        async with self._meeting_write(meeting_id=meeting_id) as conn:
            await conn.execute(MOVE_MEETING_SQL, (ts(starts_at), ts(ends_at), ts(now or datetime.now(UTC)), meeting_id))

    async def skip_slot(self, circle: str, starts_at: datetime, ends_at: datetime, now: datetime) -> None:
        """Mark a regular meeting time as skipped: a cancelled placeholder the syllabus will not fill."""
        async with self._meeting_write(circle) as conn:
            await conn.execute(
                "INSERT INTO meetings (circle, starts_at, ends_at, reading, status, created_at, modified_at) "
                "VALUES (?, ?, ?, '', 'cancelled', ?, ?)",
                (circle, ts(starts_at), ts(ends_at), ts(now), ts(now)),
            )

    async def meeting_starting(self, circle: str, starts_at: datetime) -> Meeting | None:
        row = await self.db.fetchone(
            "SELECT * FROM meetings WHERE circle = ? AND status = 'scheduled' AND starts_at = ?",
            (circle, ts(starts_at)),
        )
        return Meeting.from_row(row) if row else None

    # RSVPs and check-ins ---------------------------------------------------------------------------
    async def set_rsvp(self, meeting_id: int, member_id: int, answer: RsvpAnswer | None, at: datetime) -> None:
        """Set or withdraw an RSVP; batched with other small writes, returns once committed."""
        if answer is None:
            await self.batcher.submit(
                "DELETE FROM rsvps WHERE meeting_id = ? AND member_id = ?", (meeting_id, member_id)
            )
        else:
            await self.batcher.submit(
                "INSERT INTO rsvps (meeting_id, member_id, answer, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (meeting_id, member_id) DO UPDATE SET answer = excluded.answer, at = excluded.at",
                (meeting_id, member_id, answer.value, ts(at)),
            )

    async def rsvps(self, meeting_id: int) -> list[tuple[UserRef, RsvpAnswer]]:
        rows = await self.db.fetchall(
            "SELECT m.platform, m.user_id, m.name, r.answer FROM rsvps r JOIN members m ON m.id = r.member_id "
            "WHERE r.meeting_id = ? ORDER BY r.at",
            (meeting_id,),
        )
        return [(UserRef(r["platform"], r["user_id"], r["name"]), RsvpAnswer(r["answer"])) for r in rows]

    async def rsvps_of(self, meeting_ids: Iterable[int]) -> dict[int, list[tuple[UserRef, RsvpAnswer]]]:
        """`rsvps` for many meetings in one query per 500 (a batch of reminders)."""
        ids = sorted(set(meeting_ids))
        out: dict[int, list[tuple[UserRef, RsvpAnswer]]] = {i: [] for i in ids}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = await self.db.fetchall(
                "SELECT r.meeting_id, m.platform, m.user_id, m.name, r.answer FROM rsvps r "
                f"JOIN members m ON m.id = r.member_id WHERE r.meeting_id IN ({','.join('?' * len(part))}) "
                "ORDER BY r.at", part)
            for r in rows:
                out[int(r[0])].append((UserRef(r["platform"], r["user_id"], r["name"]), RsvpAnswer(r["answer"])))
        return out

    async def rsvp_counts(self, meeting_ids: Iterable[int]) -> dict[int, dict[RsvpAnswer, int]]:
        ids = list(meeting_ids)
        out: dict[int, dict[RsvpAnswer, int]] = {i: dict.fromkeys(RsvpAnswer, 0) for i in ids}
        if not ids:
            return out
        rows = await self.db.fetchall(
            f"SELECT meeting_id, answer, count(*) AS n FROM rsvps WHERE meeting_id IN "
            f"({','.join('?' * len(ids))}) GROUP BY meeting_id, answer",
            ids,
        )
        for r in rows:
            out[r["meeting_id"]][RsvpAnswer(r["answer"])] = r["n"]
        return out

    async def check_in(self, meeting_id: int, member_id: int, at: datetime) -> bool:
        """Record a check-in; False if the member had already checked in."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO checkins (meeting_id, member_id, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (meeting_id, member_id, ts(at)),
            )
            return cur.rowcount == 1

    async def checkins(self, meeting_id: int) -> list[tuple[UserRef, datetime]]:
        rows = await self.db.fetchall(
            "SELECT m.platform, m.user_id, m.name, c.at FROM checkins c JOIN members m ON m.id = c.member_id "
            "WHERE c.meeting_id = ? ORDER BY c.at",
            (meeting_id,),
        )
        return [(UserRef(r["platform"], r["user_id"], r["name"]), from_ts(r["at"])) for r in rows]

    async def attendance_of(self, member_id: int, circle: str, before: datetime) -> list[tuple[Meeting, bool]]:
        """Every past or current meeting of a circle, with whether the member checked in."""
        rows = await self.db.fetchall(
            "SELECT mt.*, c.member_id IS NOT NULL AS came FROM meetings mt LEFT JOIN checkins c "
            "ON c.meeting_id = mt.id AND c.member_id = ? WHERE mt.circle = ? AND mt.status = 'scheduled' "
            "AND mt.starts_at <= ? ORDER BY mt.starts_at",
            (member_id, circle, ts(before)),
        )
        return [(Meeting.from_row(r), bool(r["came"])) for r in rows]

    async def checkin_counts(self, meeting_ids: Iterable[int]) -> dict[int, int]:
        ids = list(meeting_ids)
        if not ids:
            return {}
        rows = await self.db.fetchall(
            f"SELECT meeting_id, count(*) AS n FROM checkins WHERE meeting_id IN ({','.join('?' * len(ids))}) "
            "GROUP BY meeting_id",
            ids,
        )
        counts = dict.fromkeys(ids, 0)
        counts.update({r["meeting_id"]: r["n"] for r in rows})
        return counts

    # polls -----------------------------------------------------------------------------------------
    async def create_poll(
        self, circle: str, question: str, answers: tuple[str, ...], *, multi: bool, secret: bool,
        opened_by: int | None, now: datetime, closes_at: datetime | None,
    ) -> PollRow:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO polls (circle, question, multi, secret, opened_by, opened_at, closes_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (circle, question, multi, secret, opened_by, ts(now), ts(closes_at) if closes_at else None),
            )
            pid = int(cur.lastrowid or 0)
            await conn.executemany(
                "INSERT INTO poll_answers (poll_id, idx, text) VALUES (?, ?, ?)",
                [(pid, i, a) for i, a in enumerate(answers)],
            )
        poll = await self.poll(pid)
        assert poll is not None
        return poll

    async def poll(self, poll_id: int, *, fresh: bool = True) -> PollRow | None:
        """A poll as stored now (from the cache unless a process has changed polls since it was read). With
        `fresh=False` the change counts are not read first: as the vote path, the cache is as current as
        `watch` keeps it (a batch of votes costs no read of its own for this)."""
        if fresh:
            await self.look_for_changes()
        return await self._poll_row(poll_id)

    async def _poll_row(self, poll_id: int) -> PollRow | None:
        """`poll` without looking at the change counts (the caller has just looked)."""
        cached = self._polls.get(poll_id)
        if cached is not None:
            return cached
        epoch = self._epoch[POLLS]
        row = await self.db.fetchone("SELECT * FROM polls WHERE id = ?", (poll_id,))
        if row is None:
            return None
        answers = await self.db.fetchall(
            "SELECT text FROM poll_answers WHERE poll_id = ? ORDER BY idx", (poll_id,)
        )
        poll = PollRow(
            id=row["id"], circle=row["circle"], question=row["question"],
            answers=tuple(a["text"] for a in answers), multi=bool(row["multi"]), secret=bool(row["secret"]),
            opened_by=row["opened_by"], opened_at=from_ts(row["opened_at"]),
            closes_at=_opt_ts(row["closes_at"]), closed_at=_opt_ts(row["closed_at"]),
        )
        if self._epoch[POLLS] == epoch:  # not changed while it was read
            self._polls[poll_id] = poll
        return poll

    async def _polls_of(self, rows: Iterable[Row]) -> list[PollRow]:
        await self.look_for_changes()
        return [p for r in rows if (p := await self._poll_row(r["id"])) is not None]

    async def polls(self, circle: str, *, open_only: bool = False, limit: int = 25) -> list[PollRow]:
        sql = "SELECT id FROM polls WHERE circle = ?" + (" AND closed_at IS NULL" if open_only else "")
        rows = await self.db.fetchall(sql + " ORDER BY id DESC LIMIT ?", (circle, limit))
        return await self._polls_of(rows)

    async def open_polls_closing(self, *, before: datetime) -> list[PollRow]:
        rows = await self.db.fetchall(
            "SELECT id FROM polls WHERE closed_at IS NULL AND closes_at IS NOT NULL AND closes_at <= ?", (ts(before),)
        )
        return await self._polls_of(rows)

    async def due_polls(self, now: datetime) -> list[PollRow]:
        rows = await self.db.fetchall(
            "SELECT id FROM polls WHERE closed_at IS NULL AND closes_at IS NOT NULL AND closes_at <= ?", (ts(now),)
        )
        return await self._polls_of(rows)

    async def close_poll(self, poll_id: int, at: datetime) -> bool:
        """Close a poll; False if it was already closed."""
        count: int | None = None
        try:
            async with self.db.transaction() as conn:
                cur = await conn.execute(
                    "UPDATE polls SET closed_at = ? WHERE id = ? AND closed_at IS NULL", (ts(at), poll_id)
                )
                if cur.rowcount == 1:
                    count = await self._count_change(conn, POLLS)
        finally:
            self._changed_here(POLLS, count)
        return cur.rowcount == 1

    async def delete_poll(self, poll_id: int) -> None:
        """Remove a poll that never opened anywhere (its answers, messages and votes go with it)."""
        async with self.changing(POLLS) as conn:
            await conn.execute("DELETE FROM polls WHERE id = ?", (poll_id,))

    def cached_poll(self, poll_id: int | None, message: MessageRef | None) -> PollRow | None:
        """The poll by its id, or else by a message that carries it, if both are cached (a poll's row stays
        cached until it closes or is deleted, here or, seen by `watch`, in another process); None otherwise.
        No I/O: the vote path's look-up."""
        if poll_id is None:
            if message is None:
                return None
            channel = message.channel
            poll_id = self._poll_of_message.get((channel.platform, channel.id, message.id))
            if poll_id is None:
                return None
        return self._polls.get(poll_id)

    async def add_poll_message(self, poll_id: int, ref: MessageRef) -> None:
        """Record a message that carries a poll; this process then knows it without a look-up (its votes take
        the no-I/O path from the first)."""
        epoch = self._epoch[POLLS]
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO poll_messages (poll_id, platform, channel, message_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (platform, channel, message_id) DO UPDATE SET poll_id = excluded.poll_id",
                (poll_id, ref.channel.platform, ref.channel.id, ref.id),
            )
        if self._epoch[POLLS] == epoch:
            self._poll_of_message[(ref.channel.platform, ref.channel.id, ref.id)] = poll_id

    async def poll_messages(self, poll_id: int) -> list[MessageRef]:
        rows = await self.db.fetchall(
            "SELECT platform, channel, message_id FROM poll_messages WHERE poll_id = ?", (poll_id,)
        )
        return [MessageRef(ChannelRef(r["platform"], r["channel"]), r["message_id"]) for r in rows]

    async def poll_for_message(self, ref: MessageRef) -> int | None:
        """The poll a message carries, if any. Callers asking at the same moment about a message not cached
        (the first votes of a crowd) share one look-up."""
        key = (ref.channel.platform, ref.channel.id, ref.id)
        cached = self._poll_of_message.get(key)
        if cached is not None:
            return cached
        lookup = self._poll_lookups.get(key)
        if lookup is None:
            lookup = self._poll_lookups[key] = asyncio.create_task(self._look_up_poll_message(key),
                                                                   name="circlebot-poll-message")
            lookup.add_done_callback(lambda _: self._poll_lookups.pop(key, None))
        return await asyncio.shield(lookup)  # one waiter cancelled does not cancel the others

    async def _look_up_poll_message(self, key: tuple[str, str, str]) -> int | None:
        epoch = self._epoch[POLLS]
        row = await self.db.fetchone(
            "SELECT poll_id FROM poll_messages WHERE platform = ? AND channel = ? AND message_id = ?", key)
        if row is None:
            return None
        if self._epoch[POLLS] == epoch:
            self._poll_of_message[key] = int(row[0])
        return int(row[0])

    async def record_vote(self, poll_id: int, member_id: int, answers: tuple[int, ...], at: datetime) -> None:
        """Store a member's ballot (replacing an older one); returns once committed."""
        await self.record_votes([(poll_id, member_id, answers, at)])

    async def record_votes(self, ballots: Sequence[tuple[int, int, tuple[int, ...], datetime]]) -> None:
        """Store many ballots (poll, member, answers, cast at) in one go; returns once committed. Raises
        `PollClosed` if the database refused them because their poll is closed."""
        try:
            await self.write_vote_rows([self.vote_row(*b) for b in ballots])
        except Exception as e:
            if refused_as_closed(e) and len({b[0] for b in ballots}) == 1:
                raise PollClosed(ballots[0][0]) from e
            raise

    @staticmethod
    def vote_row(poll_id: int, member_id: int, answers: tuple[int, ...], at: datetime) -> tuple[int, int, str, int]:
        """A ballot as the votes table stores it (cast time in microseconds since the epoch)."""
        answer_text = str(answers[0]) if len(answers) == 1 else ",".join(map(str, answers))
        return (poll_id, member_id, answer_text, (at - _EPOCH) // _MICROSECOND)

    def write_vote_rows(self, rows: Sequence[tuple[int, int, str, int]]) -> Awaitable[None]:
        """Write ballots made by `vote_row`; done once committed (batched with other small writes). A plain
        function returning the batcher's awaitable: one coroutine less on the vote path."""
        return self.batcher.submit_many(_VOTE_SQL, rows)

    def write_native_vote_rows(
        self, rows: Sequence[tuple[int, int, str, int]], *, exact: bool = False
    ) -> Awaitable[None]:
        """Write ballots from platforms' native polls (rows made by `vote_row`); the latest by cast time wins,
        unless `exact` (a read-back sets each ballot to what the platform holds). Done once committed; a ballot
        the database refuses because its poll is closed is dropped (logged), the others are written."""
        return _closed_dropped(self.batcher.submit_many(_NATIVE_UPSERT if exact else _NATIVE_VOTE_SQL, rows), rows)

    def enqueue_native_vote(self, poll_id: int, member_id: int, answers: tuple[int, ...], at: datetime) -> Pending:
        """One native ballot queued at once (no I/O, no coroutine; see `WriteBatcher.enqueue`): the latest by
        cast time wins. `written(pending)` waits for its commit."""
        return self.batcher.enqueue(_NATIVE_VOTE_SQL, (self.vote_row(poll_id, member_id, answers, at),))

    async def native_ballot_of(self, poll_id: int, member_id: int) -> tuple[int, ...]:
        """The member's native ballot last seen on their platform (empty if none)."""
        row = await self.db.fetchone(
            "SELECT native FROM votes WHERE poll_id = ? AND member_id = ?", (poll_id, member_id)
        )
        return _answers(row[0]) if row else ()

    async def platform_ballots(self, poll_id: int, platform: str) -> dict[str, StoredBallot]:
        """Every stored ballot of a poll from members on `platform`, by their platform user id (a linked
        person's ballot by the user id of each of its identities on `platform`, marked `linked`)."""
        rows = await self.db.fetchall(
            "SELECT v.member_id, m.user_id, v.answers, v.cast_at, v.source, v.native, "
            "CASE WHEN m.linked_to IS NOT NULL OR EXISTS (SELECT 1 FROM members l WHERE l.linked_to = m.id) "
            "THEN 1 ELSE 0 END AS linked FROM votes v JOIN members m ON (m.id = v.member_id OR m.linked_to = "
            "v.member_id) WHERE v.poll_id = ? AND m.platform = ?", (poll_id, platform)
        )
        return {r["user_id"]: StoredBallot(r["member_id"], _answers(r["answers"]), r["cast_at"], r["source"],
                                           None if r["native"] is None else _answers(r["native"]),
                                           bool(r["linked"])) for r in rows}

    async def ballots(self, poll_id: int) -> list[tuple[int, tuple[int, ...]]]:
        rows = await self.db.fetchall("SELECT member_id, answers FROM votes WHERE poll_id = ?", (poll_id,))
        return [(r[0], tuple(int(a) for a in r[1].split(",") if a)) for r in rows]

    async def ballot_of(self, poll_id: int, member_id: int) -> tuple[int, ...] | None:
        row = await self.db.fetchone(
            "SELECT answers FROM votes WHERE poll_id = ? AND member_id = ?", (poll_id, member_id)
        )
        return tuple(int(a) for a in row[0].split(",") if a) if row else None

    # post log --------------------------------------------------------------------------------------
    async def claim_post(self, key: str, circle: str, meeting_id: int | None, kind: str, due_at: datetime,
                         now: datetime) -> bool:
        """Claim a scheduled post before sending it; False if it was claimed (or sent) already."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(_POST_LOG_SQL, (key, circle, meeting_id, kind, ts(due_at), "claimed", ts(now),
                                                     None, None))
            return cur.rowcount == 1

    async def finish_post(self, key: str, state: str, now: datetime, refs: Iterable[MessageRef] = (),
                          detail: str | None = None) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE post_log SET state = ?, done_at = ?, detail = ? WHERE key = ?", (state, ts(now), detail, key)
            )
            await conn.executemany(
                "INSERT INTO post_messages (post_key, platform, channel, message_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (platform, channel, message_id) DO UPDATE SET post_key = excluded.post_key",
                [(key, r.channel.platform, r.channel.id, r.id) for r in refs],
            )

    async def post_states(self, meeting_id: int) -> dict[str, str]:
        rows = await self.db.fetchall("SELECT kind, state FROM post_log WHERE meeting_id = ?", (meeting_id,))
        return {r["kind"]: r["state"] for r in rows}

    async def post_states_of(self, keys: Iterable[str]) -> dict[str, str]:
        """The state of each of these posts (by key) that has one."""
        wanted = list(keys)
        if not wanted:
            return {}
        rows = await self.db.fetchall(
            f"SELECT key, state FROM post_log WHERE key IN ({', '.join('?' * len(wanted))})", wanted
        )
        return {r["key"]: r["state"] for r in rows}

    async def post_for_message(self, ref: MessageRef) -> tuple[int | None, str] | None:
        """(meeting id, kind) of the scheduled post a platform message belongs to."""
        row = await self.db.fetchone(
            "SELECT p.meeting_id, p.kind FROM post_messages m JOIN post_log p ON p.key = m.post_key "
            "WHERE m.platform = ? AND m.channel = ? AND m.message_id = ?",
            (ref.channel.platform, ref.channel.id, ref.id),
        )
        return (row[0], row[1]) if row else None

    async def post_messages(self, key: str) -> list[MessageRef]:
        rows = await self.db.fetchall(
            "SELECT platform, channel, message_id FROM post_messages WHERE post_key = ?", (key,)
        )
        return [MessageRef(ChannelRef(r["platform"], r["channel"]), r["message_id"]) for r in rows]

    async def unfinished_posts(self) -> list[tuple[str, str]]:
        """Posts claimed but not finished that have no per-location deliveries (claimed before those existed)."""
        rows = await self.db.fetchall(
            "SELECT key, kind FROM post_log p WHERE state = 'claimed' "
            "AND NOT EXISTS (SELECT 1 FROM post_deliveries d WHERE d.post_key = p.key)"
        )
        return [(r[0], r[1]) for r in rows]

    async def claim_posts(self, claims: Sequence[PostClaim], now: datetime, *, owner: str | None = None,
                          lease_until: datetime | None = None) -> dict[str, tuple[ChannelRef, ...]]:
        """Claim posts per location, in one transaction: each location not claimed before gets a delivery
        (state 'sending', first try `now`, held by `owner` until `lease_until`); returns, by post key, the
        locations claimed now (so two processes, or two platforms' processes, never claim one location twice).
        A post seen for the first time is logged; one with no location at all is recorded as failed (there is
        nowhere to post it)."""
        if not claims:
            return {}
        async with self.db.transaction() as conn:
            new = await _unlogged(conn, claims)
            stamp = ts(now)
            await conn.executemany(
                _POST_LOG_SQL,
                [(c.key, c.circle, c.meeting_id, c.kind, ts(c.due_at), "claimed" if c.locations else "failed",
                  stamp, None if c.locations else stamp, None if c.locations else "no platform to post on")
                 for c in new],
            )
            held = await _delivered(conn, [c for c in claims if c.locations])
            # a location may be claimed for a post seen now, or one delivered per location already (another
            # process claimed its other platforms); a post logged without deliveries (recorded missed, failed,
            # or claimed before deliveries were kept per location) is done with
            open_keys = {c.key for c in new} | {key for key, _, _ in held}
            fresh = {c.key: locs for c in claims if c.key in open_keys
                     and (locs := tuple(loc for loc in c.locations if (c.key, loc.platform, loc.id) not in held))}
            lease = ts(lease_until) if lease_until is not None else None
            await conn.executemany(
                "INSERT INTO post_deliveries (post_key, platform, channel, state, first_try_at, owner, lease_until) "
                "VALUES (?, ?, ?, 'sending', ?, ?, ?) ON CONFLICT (post_key, platform, channel) DO NOTHING",
                [(key, loc.platform, loc.id, stamp, owner, lease) for key, locs in fresh.items() for loc in locs],
            )
            new_keys = {c.key for c in new}
            again = [key for key in fresh if key not in new_keys]  # logged before, by a process on other platforms
            for i in range(0, len(again), 500):
                part = again[i : i + 500]
                await conn.execute(f"UPDATE post_log SET state = 'claimed', done_at = NULL WHERE state <> 'claimed' "
                                   f"AND key IN ({','.join('?' * len(part))})", part)
        return fresh | {c.key: () for c in new if not c.locations}

    async def take_over_deliveries(self, owner: str, platforms: Iterable[str], *, now: datetime,
                                   lease_until: datetime, held_too: bool) -> list[Delivery]:
        """Take the locations still 'sending' on these platforms whose holder stopped renewing its lease
        (`held_too`: every one, whoever holds it: at the start of the one process a SQLite file has), to send
        them again with their idempotency keys; returns them."""
        wanted = sorted(set(platforms))
        if not wanted:
            return []
        sql = (f"UPDATE post_deliveries SET owner = ?, lease_until = ? WHERE state = 'sending' "
               f"AND platform IN ({','.join('?' * len(wanted))})")
        params: list[Any] = [owner, ts(lease_until), *wanted]
        if not held_too:
            sql += " AND (lease_until IS NULL OR lease_until < ?)"
            params.append(ts(now))
        async with self.db.transaction() as conn:
            rows = await conn.execute_fetchall(sql + " RETURNING post_key, platform, channel, first_try_at", params)
        return [Delivery(r[0], ChannelRef(r[1], r[2]), from_ts(r[3])) for r in rows]

    async def renew_leases(self, owner: str, lease_until: datetime) -> int:
        """Keep holding the locations this process is sending; returns how many it holds."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("UPDATE post_deliveries SET lease_until = ? WHERE owner = ? AND state = 'sending'",
                                     (ts(lease_until), owner))
        return max(cur.rowcount, 0)

    async def record_missed(self, claims: Sequence[PostClaim], now: datetime, detail: str) -> set[str]:
        """Record posts that were never claimed as missed (in one transaction); returns the keys recorded now."""
        if not claims:
            return set()
        async with self.db.transaction() as conn:
            new = await _unlogged(conn, claims)
            stamp = ts(now)
            await conn.executemany(
                _POST_LOG_SQL,
                [(c.key, c.circle, c.meeting_id, c.kind, ts(c.due_at), "missed", stamp, stamp, detail) for c in new],
            )
        return {c.key for c in new}

    async def pending_deliveries(self) -> list[Delivery]:
        """Every location of a claimed post still 'sending'."""
        rows = await self.db.fetchall(
            "SELECT post_key, platform, channel, first_try_at FROM post_deliveries WHERE state = 'sending'"
        )
        return [Delivery(r[0], ChannelRef(r[1], r[2]), from_ts(r[3])) for r in rows]

    async def finish_deliveries(self, rows: Sequence[tuple[str, ChannelRef, str, datetime, str | None,
                                                           str | None]]) -> None:
        """Mark locations done: (post key, where, 'sent' | 'missed', when, message id, detail). Batched with
        other small writes; returns once committed. The post is marked done with its last location."""
        await self.batcher.submit_many(
            _DELIVERY_SQL,
            [(state, ts(at), message_id, detail, key, where.platform, where.id)
             for key, where, state, at, message_id, detail in rows],
        )

    # adapter state ---------------------------------------------------------------------------------
    async def get_state(self, platform: str, key: str) -> str | None:
        """A platform's own setting that lives as long as the bot does (a sync token, its DM rooms); state that
        belongs to a meeting or a poll goes through `adapter_state` instead, and is cleaned up."""
        return await self.adapter_state(platform).setting(key)

    async def set_state(self, platform: str, key: str, value: str) -> None:
        await self.adapter_state(platform).set_setting(key, value)

    def adapter_state(self, platform: str) -> AdapterState:
        """One platform's state: items by namespace and key, each tied to its meeting or poll (cleaned up with
        it), and its long-lived settings."""
        return AdapterState(self.db, platform)

    async def clean_up(self, now: datetime, keep: timedelta = KEEP_STATE) -> int:
        """Remove adapter state that belongs to meetings that ended, and polls that closed, more than `keep`
        ago (and state that belongs to neither, written that long ago). Returns how many items went."""
        cutoff = ts(now - keep)
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM adapter_items WHERE meeting_id IN (SELECT id FROM meetings WHERE ends_at < ?) "
                "OR poll_id IN (SELECT id FROM polls WHERE closed_at < ?) "
                "OR (meeting_id IS NULL AND poll_id IS NULL AND written_at < ?)",
                (cutoff, cutoff, cutoff),
            )
            return int(cur.rowcount)

    # meeting questions -----------------------------------------------------------------------------
    async def meeting_questions(self, meeting_id: int) -> list[tuple[int, str]]:
        """Questions organisers added to a meeting: (id, text) in the order they were added."""
        rows = await self.db.fetchall(
            "SELECT id, text FROM meeting_questions WHERE meeting_id = ? ORDER BY id", (meeting_id,)
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    async def add_meeting_question(self, meeting_id: int, text: str, member_id: int, at: datetime) -> int:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO meeting_questions (meeting_id, text, added_by, added_at) VALUES (?, ?, ?, ?)",
                (meeting_id, text, member_id, ts(at)),
            )
            return int(cur.lastrowid or 0)

    async def remove_meeting_question(self, question_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM meeting_questions WHERE id = ?", (question_id,))

    async def hidden_questions(self, meeting_id: int) -> set[str]:
        """Texts of the reading's own (or starter) questions hidden for one meeting."""
        rows = await self.db.fetchall(
            "SELECT text FROM meeting_hidden_questions WHERE meeting_id = ?", (meeting_id,)
        )
        return {str(r[0]) for r in rows}

    async def hide_question(self, meeting_id: int, text: str, member_id: int, at: datetime) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO meeting_hidden_questions (meeting_id, text, hidden_by, hidden_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (meeting_id, text, member_id, ts(at)),
            )


async def _delivered(conn: Connection, claims: Sequence[PostClaim]) -> set[tuple[str, str, str]]:
    """(post key, platform, channel) of every location of these posts claimed before (500 posts a look-up)."""
    keys = [c.key for c in claims]
    out: set[tuple[str, str, str]] = set()
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        rows = await conn.execute_fetchall(
            f"SELECT post_key, platform, channel FROM post_deliveries WHERE post_key IN ({','.join('?' * len(part))})",
            part)
        out.update((str(r[0]), str(r[1]), str(r[2])) for r in rows)
    return out


async def _unlogged(conn: Connection, claims: Sequence[PostClaim]) -> list[PostClaim]:
    """The claims whose post is not in the post log yet (looked up 500 keys at a time, SQLite's limit being 999
    parameters in older builds)."""
    keys = [c.key for c in claims]
    existing: set[str] = set()
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        rows = await conn.execute_fetchall(f"SELECT key FROM post_log WHERE key IN ({','.join('?' * len(part))})",
                                           part)
        existing.update(str(r[0]) for r in rows)
    return [c for c in claims if c.key not in existing]

"""Posts decided once (the RSVP deadline's outcome, the nudge): what was decided, one row per post for every
process and location of a shared database.

The first process to decide a post writes its decision (INSERT ... ON CONFLICT DO NOTHING, then read back) in
the transaction that does what it decided to the meeting (a move, a cancellation), so the meeting changes once
and only with the decision that says so. Every other process, and a retry after a crash, reads the decision and
sends the post it holds (stored as JSON, `post_to_json`). Standard SQL only."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from circlebot.core.domain import Post, UserRef, post_from_json, post_to_json
from circlebot.store.queries import CANCEL_MEETING_SQL, MOVE_MEETING_SQL, from_ts, ts

if TYPE_CHECKING:
    from circlebot.store.db import Row
    from circlebot.store.queries import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided for one post (`key`, as the post log names it) of a meeting: the post every location
    is sent, or None (nothing to post: its deliveries end as `state`, with `detail`); the members to tell
    privately (`tell`), and the platforms the deciding process ran, whose members among them it told (`told`).
    `due_at` and `expires_at` are the post's, so any process can send it while it is still useful, even after
    the meeting moved."""

    key: str
    circle: str
    meeting_id: int
    kind: str
    due_at: datetime
    expires_at: datetime
    post: Post | None
    state: str = "post"
    detail: str | None = None
    tell: tuple[UserRef, ...] = ()
    told: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MeetingChange:
    """What a decision does to its meeting, in the transaction that stores the decision: moved to a new time
    (`starts_at`, `ends_at`), or cancelled."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cancel: bool = False


_COLUMNS = "post_key, circle, meeting_id, kind, due_at, expires_at, post, state, detail, tell, told"


class Decisions:
    """The decided posts, on the store's database (`Decisions(store)` wherever needed)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def decide(self, decision: Decision, change: MeetingChange | None, now: datetime) -> tuple[Decision, bool]:
        """Store `decision` unless the post was decided already, and do `change` to its meeting with it, in one
        transaction. Returns the decision that stands and whether it is this one (first wins: another
        process's, decided meanwhile, is returned instead, and `change` is not done)."""
        mine = secrets.token_hex(8)
        d = decision
        changed = [False]  # whether it moved or cancelled the meeting (only then is it counted as a change)
        async with self.store.meeting_transaction(d.circle, counted=lambda: changed[0]) as conn:
            await conn.execute(
                f"INSERT INTO post_decisions ({_COLUMNS}, decided_by, decided_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (post_key) DO NOTHING",
                (d.key, d.circle, d.meeting_id, d.kind, ts(d.due_at), ts(d.expires_at),
                 None if d.post is None else post_to_json(d.post), d.state, d.detail,
                 json.dumps([[u.platform, u.id, u.name] for u in d.tell]), json.dumps(list(d.told)), mine, ts(now)))
            rows = list(await conn.execute_fetchall(
                f"SELECT {_COLUMNS}, decided_by FROM post_decisions WHERE post_key = ?", (d.key,)))
            won = rows[0]["decided_by"] == mine
            if won and change is not None:
                changed[0] = True
                if change.cancel:
                    await conn.execute(CANCEL_MEETING_SQL, (ts(now), d.meeting_id))
                elif change.starts_at is not None and change.ends_at is not None:
                    await conn.execute(MOVE_MEETING_SQL, (ts(change.starts_at), ts(change.ends_at), ts(now),
                                                          d.meeting_id))
        return (decision if won else _decision(rows[0])), won

    async def of(self, keys: Iterable[str]) -> dict[str, Decision]:
        """The decisions made for these posts, by key (a post not decided yet has none)."""
        wanted = sorted(set(keys))
        out: dict[str, Decision] = {}
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            rows = await self.store.db.fetchall(
                f"SELECT {_COLUMNS} FROM post_decisions WHERE post_key IN ({','.join('?' * len(part))})", part)
            out.update((r["post_key"], _decision(r)) for r in rows)
        return out

    async def still_useful(self, now: datetime) -> list[Decision]:
        """Every decided post still worth sending at `now`: a process that has not sent one to its locations yet
        (it started later, or the post's meeting moved before it got there) sends it as decided."""
        rows = await self.store.db.fetchall(
            f"SELECT {_COLUMNS} FROM post_decisions WHERE expires_at > ? ORDER BY due_at, post_key", (ts(now),))
        return [_decision(r) for r in rows]


def _decision(row: Row) -> Decision:
    """A stored decision. One whose stored post cannot be read back (written by hand, or by a circlebot with
    another format) is a decision to post nothing: its deliveries are recorded as missed, saying why."""
    post: Post | None = None
    tell: tuple[UserRef, ...] = ()
    told: tuple[str, ...] = ()
    state, detail = row["state"], row["detail"]
    try:
        post = None if row["post"] is None else post_from_json(row["post"])
        tell = tuple(UserRef(str(p), str(i), str(n)) for p, i, n in json.loads(row["tell"]))
        told = tuple(str(p) for p in json.loads(row["told"]))
    except (ValueError, TypeError) as e:
        log.error("the decision stored for post %s cannot be read (%s): it is recorded as missed", row["post_key"], e)
        post, state, detail = None, "missed", "failed: its stored decision cannot be read"
    return Decision(row["post_key"], row["circle"], int(row["meeting_id"]), row["kind"], from_ts(row["due_at"]),
                    from_ts(row["expires_at"]), post, state, detail, tell, told)

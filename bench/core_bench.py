"""Benchmark: votes and mixed commands through the core, beside a raw aiosqlite floor (run on demand).

    .venv/bin/python bench/core_bench.py                       # this tree
    .venv/bin/python bench/core_bench.py --baseline 3e7ee28    # votes: this tree and git revision REV, alternating

With `--baseline REV` the vote measurements run in separate processes, `--runs` times each, alternating between
this tree's src/ and REV's (extracted with `git archive`; REV must have the store and core API this file uses:
from f4e8c83 on), so that "before" and "after" are measured in the same run on the same machine state. Each
process measures its own floor, and every ratio is to the floor of its own process.

`--cpus 0` runs everything on one CPU. One dispatch per vote is mostly hand-offs between the event loop and
SQLite's thread (100 commits, one after another, each a round trip): on a virtual machine a wake-up across CPUs
can cost three times one on the same CPU (27-29 us against 73-110 us a round trip on the team's VM), while the
two threads never run at the same time anyway. So that figure depends on where the OS puts the threads; the
floor hardly does.

1. 10,000 votes from 1,000 members on one poll, through the core's own vote path (App.dispatch(VoteCast)),
   each acknowledged only once committed; beside it, measured in the same run, one raw aiosqlite
   `executemany` of the same 10,000 rows in one transaction (the floor). Nothing may be lost: every member's
   final ballot must be their last vote. The ways votes arrive: one event at a time (Discord's gateway, a
   console) with 100 in flight at once, or all 10,000 at once; a Matrix sync page of 100; one back-fill
   batch. Before them, the first vote of each of the 1,000 members, which also creates the member.
2. 10,000 mixed commands (rsvp, vote, upcoming, poll results, questions, help) as chat text through parser,
   router and store, beside the floor for the rows they write.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import aiosqlite

REPO = Path(__file__).resolve().parent.parent
_early = argparse.ArgumentParser(add_help=False)
_early.add_argument("--src", type=Path, default=REPO / "src")
_early.add_argument("--cpus", help="run on these CPUs only (Linux; as taskset -c: 0 or 0,1): see the module doc")
_known = _early.parse_known_args()[0]
sys.path.insert(0, str(_known.src))  # the circlebot to measure: this tree's, or a baseline's
if _known.cpus:  # inherited by the processes --baseline starts
    os.sched_setaffinity(0, {int(c) for c in _known.cpus.split(",")})

from benchlib import export_src  # noqa: E402

from circlebot.app import App  # noqa: E402
from circlebot.config import validate  # noqa: E402
from circlebot.core.adapter import PollLimits  # noqa: E402
from circlebot.core.domain import ChannelRef, Invocation, MessageRef, PollResults, PollSpec, Post, UserRef, VoteCast  # noqa: E402
from circlebot.readings import load_collection  # noqa: E402
from circlebot.store import Database, PollRow, Store  # noqa: E402
from circlebot.store.migrations import MIGRATIONS, sqlite_statements  # noqa: E402

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
MEMBERS = 1_000
VOTES = 10_000
COMMANDS = 10_000


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def now(self) -> datetime:
        return self.t


class NullAdapter:
    """Counts what the bot says; sends nothing anywhere."""

    platform = "console"
    prefix = ""
    poll_limits = PollLimits()
    ready = None
    syntax = None
    dedup_window = timedelta(0)

    def __init__(self) -> None:
        self.replies = 0

    async def serve(self, dispatch: object) -> None:
        await asyncio.Event().wait()

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        return MessageRef(where, "1")

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        self.replies += 1

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        return MessageRef(where, f"poll{poll.id}")

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        pass


async def make_app(tmp: Path, name: str) -> tuple[App, NullAdapter, Clock]:
    settings = validate(
        {
            "database": str(tmp / f"{name}.sqlite3"),
            "readings": str(REPO / "readings"),
            "circles": [{"slug": "bench", "name": "Bench", "timezone": "Europe/London",
                         "meets": {"weekdays": ["thursday"], "time": "19:00"}, "organisers": {"console": ["olga"]}}],
        },
        tmp / "bench.toml",
    )
    db = await Database.open(settings.database)
    clock = Clock()
    app = App(settings, Store(db), load_collection(settings.readings), clock)
    adapter = NullAdapter()
    app.add_adapter(adapter)
    app.store.batcher.start()
    return app, adapter, clock


async def floor(tmp: Path, name: str, rows: list[tuple[object, ...]], sql: str) -> float:
    """One raw executemany of the same rows in one transaction, on the same schema and pragmas, with the poll
    and the members already there."""
    setup = ["INSERT INTO polls (id, circle, question, multi, secret, opened_at) VALUES (1, 'b', 'q', 0, 0, 'x')"]
    setup += [f"INSERT INTO members (id, platform, user_id) VALUES ({i + 1}, 'c', 'm{i}')" for i in range(MEMBERS)]
    async with aiosqlite.connect(tmp / f"{name}.sqlite3", isolation_level=None) as conn:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        for _, statements in MIGRATIONS:
            for stmt in sqlite_statements(statements):
                await conn.execute(stmt)
        for stmt in setup:
            await conn.execute(stmt)
        start = time.perf_counter()
        await conn.execute("BEGIN IMMEDIATE")
        await conn.executemany(sql, rows)
        await conn.execute("COMMIT")
        return time.perf_counter() - start


ROUNDS = 5
IN_FLIGHT = 100


async def open_poll(app: App) -> PollRow:
    poll = await app.store.create_poll("bench", "Next?", tuple(f"A{i}" for i in range(5)), multi=False,
                                       secret=False, opened_by=None, now=NOW, closes_at=None)
    await app.store.add_poll_message(poll.id, MessageRef(ChannelRef("console", "bench"), f"poll{poll.id}"))
    return poll


def make_votes(poll: PollRow, users: list[UserRef], count: int, seed: int) -> list[VoteCast]:
    rng = random.Random(seed)
    where = MessageRef(ChannelRef("console", "bench"), f"poll{poll.id}")
    return [VoteCast(users[i % len(users)], (rng.randrange(5),), NOW + timedelta(milliseconds=i), message=where)
            for i in range(count)]


Deliver = Callable[[list[VoteCast]], Awaitable[None]]
IN_FLIGHT_WAY = f"one dispatch per vote, {IN_FLIGHT} in flight"
BACK_FILL_WAY = "one batch of 10,000 (a back-fill)"


def vote_ways(app: App) -> dict[str, Deliver]:
    """The ways votes arrive, each handing a list of votes to `app` and returning once all are acknowledged."""

    async def in_flight(batch: list[VoteCast]) -> None:  # one event at a time, IN_FLIGHT handled at any moment
        arriving = iter(batch)

        async def handler() -> None:
            for v in arriving:
                await app.dispatch(v)

        await asyncio.gather(*(handler() for _ in range(IN_FLIGHT)))

    async def all_at_once(batch: list[VoteCast]) -> None:  # as 10,000 separate events arriving together would
        await asyncio.gather(*(app.dispatch(v) for v in batch))

    def batches_of(size: int) -> Deliver:
        async def deliver(batch: list[VoteCast]) -> None:
            for i in range(0, len(batch), size):
                await app.dispatch(batch[i : i + size])

        return deliver

    return {
        IN_FLIGHT_WAY: in_flight,
        "one dispatch per vote, all at once": all_at_once,
        "batches of 100 (a Matrix sync page)": batches_of(100),
        BACK_FILL_WAY: batches_of(VOTES),
    }


def floor_rows(votes: list[VoteCast]) -> list[tuple[int, int, str, int]]:
    """The floor's rows: the same ballots as `votes`, for poll 1 and members 1..MEMBERS made beforehand."""
    return [(1, (i % MEMBERS) + 1, str(v.answers[0]), int(v.at.timestamp() * 1e6)) for i, v in enumerate(votes)]


async def vote_rounds(ways: dict[str, Deliver], votes: list[VoteCast], rounds: int,
                      floor: Callable[[int], Awaitable[float]]) -> tuple[dict[str, list[float]], list[float]]:
    """Each way `rounds` times, interleaved, each round's votes cast an hour after the last round's (so every
    vote replaces a ballot), and after each round the floor (`floor(round)`, seconds): each way's times and
    the floors."""
    times: dict[str, list[float]] = {label: [] for label in ways}
    floors: list[float] = []
    for r in range(rounds):
        for n, (label, deliver) in enumerate(ways.items()):
            later = [replace(v, at=v.at + timedelta(hours=1 + r * len(ways) + n)) for v in votes]
            start = time.perf_counter()
            await deliver(later)
            times[label].append(time.perf_counter() - start)
        floors.append(await floor(r))
    return times, floors


async def bench_first_votes(tmp: Path) -> list[float]:
    """The first vote of each of 1,000 members, all arriving at once, which also creates the member (once in
    a member's life): ROUNDS times, each on a fresh database."""
    times: list[float] = []
    for r in range(ROUNDS):
        app, _, _ = await make_app(tmp, f"first-votes-{r}")
        poll = await open_poll(app)
        users = [UserRef("console", f"member{i}", f"Member {i}") for i in range(MEMBERS)]
        votes = make_votes(poll, users, MEMBERS, r)
        start = time.perf_counter()
        await asyncio.gather(*(app.dispatch(v) for v in votes))
        times.append(time.perf_counter() - start)
        assert len(await app.store.ballots(poll.id)) == MEMBERS, "first votes lost"
        await app.store.batcher.stop()
        await app.store.db.close()
    return times


async def bench_votes(tmp: Path) -> dict[str, object]:
    """Each way of delivering the votes, and the floor, measured ROUNDS times interleaved; best and median."""
    cold = await bench_first_votes(tmp)
    app, _, _ = await make_app(tmp, "votes")
    poll = await open_poll(app)
    users = [UserRef("console", f"member{i}", f"Member {i}") for i in range(MEMBERS)]
    votes = make_votes(poll, users, VOTES, 7)
    await asyncio.gather(*(app.dispatch(v) for v in votes[:MEMBERS]))  # the members exist, as in a running circle

    ways = vote_ways(app)
    rows = floor_rows(votes)
    times, floors = await vote_rounds(ways, votes, ROUNDS,
                                      lambda r: floor(tmp, f"votes-floor-{r}", rows, Store.VOTE_SQL))
    last = {v.user.id: v.answers for v in votes}
    ballots = dict(await app.store.ballots(poll.id))
    ids = {u.id: await app.store.ensure_member(u) for u in users}
    lost = sum(1 for uid, answers in last.items() if ballots.get(ids[uid]) != answers)
    await app.store.batcher.stop()
    await app.store.db.close()

    return {"floors": floors, "times": times, "cold": cold, "lost": lost}


def print_votes(result: dict[str, object]) -> None:
    floors = cast(list[float], result["floors"])
    times = cast(dict[str, list[float]], result["times"])
    cold = cast(list[float], result["cold"])
    best_floor = min(floors)
    print(f"votes: {VOTES:,} votes from {MEMBERS:,} members on one poll, best and median of {ROUNDS} rounds")
    print(f"  floor, raw executemany in one transaction: {best_floor * 1000:7.1f} ms (median "
          f"{statistics.median(floors) * 1000:.1f})  {VOTES / best_floor:10,.0f} rows/s")
    for label, measured in times.items():
        best = min(measured)
        print(f"  core, {label:<38} {best * 1000:7.1f} ms (median {statistics.median(measured) * 1000:.1f})"
              f"  {VOTES / best:10,.0f} votes/s  {best / best_floor:5.2f}x the floor")
    print(f"  first vote of each of {MEMBERS:,} members (creates the member): {min(cold) * 1000:.1f} ms (median "
          f"{statistics.median(cold) * 1000:.1f}; target 100 ms)")
    print(f"  lost or wrong ballots: {result['lost']} (targets: a back-fill within 3x of the floor; one dispatch "
          f"per vote with {IN_FLIGHT} in flight within 4x)")


def compare(baseline: str, runs: int) -> None:
    """The vote measurements of this tree and of `baseline`, in separate processes, alternating `runs` times."""
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this tree": REPO / "src", f"baseline {baseline}": export_src(baseline, Path(scratch))}
        results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
        for run in range(runs):
            for name, src in trees.items():
                out = subprocess.run([sys.executable, __file__, "--src", str(src), "--json"], check=True,
                                     capture_output=True, text=True).stdout
                results[name].append(json.loads(out))
                print(f"  run {run + 1}/{runs}: {name} done", file=sys.stderr)
    print(f"votes: {VOTES:,} votes from {MEMBERS:,} members; {runs} processes each, alternating; in each process "
          f"the best of {ROUNDS} rounds over the best of its {ROUNDS} floors; range over processes (median)")
    labels = list(cast(dict[str, list[float]], results["this tree"][0]["times"]))
    for name, per_run in results.items():
        floors = [min(cast(list[float], r["floors"])) for r in per_run]
        print(f"  {name}: floor {min(floors) * 1000:.1f}-{max(floors) * 1000:.1f} ms; lost ballots "
              f"{sum(cast(int, r['lost']) for r in per_run)}")
        for label in labels:
            ratios = [min(cast(dict[str, list[float]], r["times"])[label]) / f for r, f in zip(per_run, floors,
                                                                                               strict=True)]
            ms = [min(cast(dict[str, list[float]], r["times"])[label]) * 1000 for r in per_run]
            print(f"    {label:<38} {min(ratios):5.2f}-{max(ratios):5.2f}x the floor (median "
                  f"{statistics.median(ratios):.2f}x; {min(ms):.1f}-{max(ms):.1f} ms)")
        cold = [min(cast(list[float], r["cold"])) * 1000 for r in per_run]
        print(f"    first vote of each of {MEMBERS:,} new members       {min(cold):5.1f}-{max(cold):5.1f} ms "
              f"(median {statistics.median(cold):.1f}; target 100 ms)")


async def bench_commands(tmp: Path) -> None:
    app, adapter, clock = await make_app(tmp, "commands")
    channel = ChannelRef("console", "bench")
    olga = UserRef("console", "olga", "olga")

    async def say(user: UserRef, text: str) -> None:
        await app.dispatch(Invocation(user, channel, clock.now(), text=text))

    await say(olga, "schedule bolivia-2003-first-balance-sheet")
    await say(olga, 'poll "Next?" "A" "B" "C"')
    users = [UserRef("console", f"member{i}", f"Member {i}") for i in range(MEMBERS)]
    rng = random.Random(11)
    kinds = ["rsvp yes", "rsvp maybe", "vote 1 2", "vote 1 3", "upcoming", "poll results 1", "questions", "help"]
    lines = [(users[i % MEMBERS], rng.choice(kinds)) for i in range(COMMANDS)]
    writes = sum(1 for _, text in lines if text.startswith(("rsvp", "vote")))
    for u in users:  # members known, as in a running circle
        await app.store.ensure_member(u)
    before = adapter.replies
    start = time.perf_counter()
    await asyncio.gather(*(say(u, text) for u, text in lines))
    elapsed = time.perf_counter() - start
    answered = adapter.replies - before
    await app.store.batcher.stop()
    await app.store.db.close()

    rows = [(1, (i % MEMBERS) + 1, "2", int(NOW.timestamp() * 1e6)) for i in range(writes)]
    raw = await floor(tmp, "commands-floor", rows, Store.VOTE_SQL)
    print(f"mixed commands: {COMMANDS:,} ({writes:,} of them write) through parser, router and store")
    print(f"  core: {elapsed * 1000:8.1f} ms  {COMMANDS / elapsed:10,.0f} commands/s; answered {answered:,}")
    print(f"  floor, raw executemany of the {writes:,} written rows: {raw * 1000:.1f} ms")


async def run_here(as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        votes = await bench_votes(Path(tmp))
        if as_json:
            print(json.dumps(votes))
            return
        print_votes(votes)
        await bench_commands(Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(parents=[_early], description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV's votes, alternating")
    parser.add_argument("--runs", type=int, default=3, help="processes of each tree with --baseline (3)")
    parser.add_argument("--json", action="store_true", help="only the vote measurements, as JSON (internal)")
    args = parser.parse_args()
    if args.baseline:
        compare(args.baseline, args.runs)
    else:
        asyncio.run(run_here(args.json))


if __name__ == "__main__":
    main()

"""The poll lifecycle, in one place: opening a poll on every platform, casting votes (from commands and from
native polls), the tally and its text, closing (by command, at its time, or ended on a platform)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, PlatformRefused
from circlebot.core.clock import Clock
from circlebot.core.commands import CommandTable, Syntax
from circlebot.core.domain import (
    Authority,
    ChannelRef,
    MessageRef,
    PollEndCast,
    PollReadBack,
    PollResults,
    PollSpec,
    Post,
    UserRef,
    VoteCast,
    VoteChange,
)
from circlebot.core.text import count
from circlebot.store import PollRow, Store
from circlebot.store.db import Pending, written

log = logging.getLogger(__name__)
_SET = VoteChange.SET  # looked up once: an enum member's lookup costs about 80 ns on the vote path

BAR = 12


class PollHost(Protocol):
    """What the poll lifecycle needs of the router: the store, the clock, the running platforms."""

    settings: Settings
    store: Store
    clock: Clock
    commands: CommandTable

    @property
    def adapters(self) -> Mapping[str, ChatAdapter]: ...

    def syntax(self, platform: str) -> Syntax: ...

    def locations(self, circle: CircleSettings) -> list[ChannelRef]: ...

    async def post_to_circle(self, circle: CircleSettings, post: Post) -> list[MessageRef]: ...

    def is_organiser(self, circle: CircleSettings, user: UserRef, authority: Authority) -> bool: ...


def results_text(results: PollResults, *, hide_counts: bool = False) -> str:
    """The results of a poll as text: counts, shares, a bar, the winner once closed."""
    poll = results.poll
    state = "closed" if results.closed else "open"
    if hide_counts:  # not even the turnout: how many voted is part of what a secret poll keeps until it closes
        lines = [f"**Poll #{poll.id}: {poll.question}** ({state})"]
        lines += [f"{i}. {a}" for i, a in enumerate(poll.answers, 1)]
        lines.append("This is a secret poll: counts are shown when it closes.")
        return "\n".join(lines)
    lines = [f"**Poll #{poll.id}: {poll.question}** ({state}, {count(results.voters, 'voter')})"]
    # a share is of the voters: in a multi-answer poll one voter counts for several answers, so the shares of
    # votes would not say how many people want an answer
    total = (results.voters if poll.multi else sum(results.counts)) or 1
    for i, (answer, n) in enumerate(zip(poll.answers, results.counts, strict=True), 1):
        bar = "█" * round(BAR * n / total)
        lines.append(f"{i}. {answer}: {n} ({100 * n / total:.0f}%) {bar}")
    if poll.multi and results.voters:
        lines.append(f"(Percentages are shares of the {results.voters} voters; each could pick several answers.)")
    if results.closed:
        winners = results.winners()
        if not winners:
            lines.append("Nobody voted.")
        elif len(winners) == 1:
            lines.append(f"Result: **{poll.answers[winners[0]]}**")
        else:
            lines.append("Tie between: " + ", ".join(f"**{poll.answers[w]}**" for w in winners))
    return "\n".join(lines)


class Polls:
    """Every poll of every circle, from open to closed."""

    def __init__(self, bot: PollHost) -> None:
        self.bot = bot
        self._ballot_locks: dict[tuple[int, int], asyncio.Lock] = {}

    @staticmethod
    def spec(poll: PollRow) -> PollSpec:
        return PollSpec(poll.id, poll.question, poll.answers, poll.multi, poll.secret, poll.closes_at)

    def vote_hint(self, platform: str, poll_id: int) -> str:
        """How to vote in a poll by command on a platform, in its syntax (`!vote 3 <n>`)."""
        vote = self.bot.commands.get(("vote",))
        syntax = self.bot.syntax(platform)
        return syntax.example(vote, poll=poll_id, answers="<n>") if vote else f"{syntax.prefix}vote {poll_id} <n>"

    async def start_poll(self, circle: CircleSettings, poll: PollRow) -> tuple[list[MessageRef], list[str]]:
        """Start a poll on every running location of its circle: the messages that carry it, and for each
        location that refused it, what failed and what to do (as a sentence for the organiser)."""
        refs: list[MessageRef] = []
        failed: list[str] = []
        spec = self.spec(poll)
        for loc in self.bot.locations(circle):
            try:
                ref = await self.bot.adapters[loc.platform].start_poll(
                    loc, replace(spec, vote_hint=self.vote_hint(loc.platform, poll.id)))
            except PlatformRefused as e:
                log.warning("%s refused poll %d in %s: %s", loc.platform, poll.id, loc.id, e)
                failed.append(f"{loc.platform.capitalize()} refused it: {e}")
                continue
            except Exception:
                error_id = secrets.token_hex(4)
                log.exception("error %s: could not start poll %d on %s %s", error_id, poll.id, loc.platform, loc.id)
                failed.append(f"{loc.platform.capitalize()} failed (error `{error_id}`, logged); try again later")
                continue
            await self.bot.store.add_poll_message(poll.id, ref)
            refs.append(ref)
        return refs, failed

    async def tally(self, poll: PollRow) -> PollResults:
        counts = [0] * len(poll.answers)
        voters = 0
        for _member, answers in await self.bot.store.ballots(poll.id):
            if answers:
                voters += 1
            for a in answers:
                if 0 <= a < len(counts):
                    counts[a] += 1
        return PollResults(self.spec(poll), tuple(counts), voters, poll.closed)

    async def close_poll(self, poll: PollRow) -> PollResults | None:
        """Close a poll and end it on every platform; None if it was closed already."""
        now = self.bot.clock.now()
        # a poll closes at its closing time, even when the bot was down then and closes it only now
        at = min(now, poll.closes_at) if poll.closes_at is not None else now
        if not await self.bot.store.close_poll(poll.id, at):
            return None
        closed = await self.bot.store.poll(poll.id)
        assert closed is not None
        results = await self.tally(closed)
        text = results_text(results)
        for ref in await self.bot.store.poll_messages(poll.id):
            adapter = self.bot.adapters.get(ref.channel.platform)
            if adapter is None:
                continue
            try:
                await adapter.end_poll(ref, results, text)
            except Exception:
                log.exception("could not end poll %d on %s", poll.id, ref.channel.platform)
        return results

    def cast_votes(self, votes: Sequence[VoteCast]) -> Awaitable[None]:
        """Votes from platforms' native polls, cleaned the lenient way (clipped, not refused) and stored
        together: one short transaction for the lot, done once it is committed.

        One vote that `quick_vote` can queue at once goes straight to the store's write, with no coroutine of
        its own; anything else takes the general path."""
        if len(votes) == 1:
            pending = self.quick_vote(votes[0])
            if pending is not None:
                return written(pending)
        return self._cast_votes(votes)

    def quick_vote(self, vote: VoteCast) -> Pending | None:
        """Queue the common vote at once, with no I/O and no coroutine (a gateway's or a console's event: one
        ballot in a poll still open by the bot's clock, from a member whose name is cached as given); None for
        anything else, which `cast_votes` handles in full (a poll closed or past its closing time, where the
        vote may be too late; a change of one answer; a new member)."""
        store = self.bot.store
        poll = store.cached_poll(vote.poll_id, vote.message)
        if poll is None or vote.change is not _SET or poll.closed_at is not None:
            return None
        if poll.closes_at is not None and self.bot.clock.now() >= poll.closes_at:
            return None
        member_id = store.known_member(vote.user)
        if member_id is None:
            return None
        answers = vote.answers
        if len(answers) != 1 or not 0 <= answers[0] < len(poll.answers):  # one known answer: as it is
            answers = _ballot(poll, answers)
        return store.enqueue_native_vote(poll.id, member_id, answers, vote.at)

    async def _cast_votes(self, votes: Sequence[VoteCast]) -> None:
        store = self.bot.store
        rows: list[tuple[int, int, str, int]] = []
        polls: dict[object, PollRow | None] = {}  # a batch is mostly votes in the same poll: look it up once
        now = self.bot.clock.now()
        for vote in votes:
            msg = vote.message
            key: object = vote.poll_id if msg is None or vote.poll_id is not None else (
                msg.channel.platform, msg.channel.id, msg.id)
            if key in polls:
                poll = polls[key]
            else:
                poll_id = vote.poll_id
                if poll_id is None and msg is not None:
                    poll_id = await store.poll_for_message(msg)
                poll = polls[key] = await store.poll(poll_id, fresh=False) if poll_id is not None else None
            if poll is None or _too_late(poll, vote, now):
                continue
            answers = _ballot(poll, vote.answers, cut=vote.change is VoteChange.SET)
            member_id = store.known_member(vote.user) or await store.ensure_member(vote.user)
            if vote.change is VoteChange.SET:
                rows.append(store.vote_row(poll.id, member_id, answers, vote.at))
            else:
                if rows:  # keep the order of this member's earlier whole-ballot votes
                    await store.write_native_vote_rows(rows)
                    rows = []
                await self._change_ballot(poll, member_id, vote.change, answers, vote.at)
        if rows:
            await store.write_native_vote_rows(rows)

    async def reconcile_poll(self, event: PollReadBack) -> None:
        """Make a poll's native ballots on one platform exactly what the platform holds now (`PollReadBack`).

        A ballot cast by command is left alone unless the platform shows a native vote made after it (timed),
        or a native ballot other than the one last seen (untimed: it changed while the bot was away). A
        native ballot the platform no longer has (withdrawn, redacted) is withdrawn, so nothing gone counts.

        A linked person (accounts on several platforms, one ballot) is held to "the latest vote wins": a timed
        native vote counts if it is later than their ballot; what one platform no longer shows, or shows
        untimed, is left as it is, since their ballot may be a later one from another platform."""
        store = self.bot.store
        poll_id = await store.poll_for_message(event.message)
        poll = await store.poll(poll_id) if poll_id is not None else None
        if poll is None or poll.closed:
            return
        stored = await store.platform_ballots(poll.id, event.message.channel.platform)
        now = self.bot.clock.now()
        end = poll.closes_at if poll.closes_at is not None and now >= poll.closes_at else None
        rows: list[tuple[int, int, str, int]] = []
        seen: set[str] = set()
        for vote in event.ballots:
            seen.add(vote.user.id)
            answers = _ballot(poll, vote.answers)
            held = stored.get(vote.user.id)
            cast = store.vote_row(poll.id, 0, answers, vote.at)[3]
            if event.timed:
                if end is not None and vote.at >= end:
                    continue  # cast after the poll's end
                later_command = (held is not None and (held.source == "command" or held.linked)
                                 and held.cast_at > cast)  # a linked person's later vote, from any platform
                same = held is not None and held.source == "native" and (held.answers, held.cast_at) == (answers, cast)
                if later_command or same:
                    continue
            elif ((held.native or ()) if held else ()) == answers or (held is not None and held.linked):
                continue  # nothing changed on the platform since the bot last saw it (or cannot tell: linked)
            member_id = held.member_id if held else (
                store.known_member(vote.user) or await store.ensure_member(vote.user))
            rows.append(store.vote_row(poll.id, member_id, answers, vote.at))
        for user_id, held in stored.items():
            if user_id in seen or held.linked:  # a linked person's ballot may come from another platform
                continue
            if event.timed and held.source == "native" and held.answers:
                rows.append((poll.id, held.member_id, "", held.cast_at))  # its responses are gone (redacted)
            elif not event.timed and held.native:
                rows.append(store.vote_row(poll.id, held.member_id, (), event.at))  # withdrawn while away
        if rows:
            log.info("poll %d: %d ballot(s) on %s set to what the platform holds", poll.id, len(rows),
                     event.message.channel.platform)
            await store.write_native_vote_rows(rows, exact=True)

    async def _change_ballot(
        self, poll: PollRow, member_id: int, change: VoteChange, answers: tuple[int, ...], at: datetime
    ) -> None:
        key = (poll.id, member_id)
        lock = self._ballot_locks.setdefault(key, asyncio.Lock())
        async with lock:  # add/remove read the native ballot, so one member's changes go one at a time
            store = self.bot.store
            current = await store.native_ballot_of(poll.id, member_id)
            if change is VoteChange.ADD:
                new = tuple(dict.fromkeys((*current, *answers))) if poll.multi else answers[:1] or current
            else:
                new = tuple(a for a in current if a not in answers)
            await store.write_native_vote_rows([store.vote_row(poll.id, member_id, new, at)])
        if not lock.locked():
            self._ballot_locks.pop(key, None)

    async def poll_ended_on_platform(self, event: PollEndCast) -> None:
        """A poll ended on a platform (in Element): closed everywhere if the one who ended it is an organiser
        by the same rule as `poll close`; otherwise it stays open and the room is told so."""
        poll_id = await self.bot.store.poll_for_message(event.message)
        poll = await self.bot.store.poll(poll_id) if poll_id is not None else None
        circle = self.bot.settings.circle(poll.circle) if poll is not None else None
        if poll is None or poll.closed or circle is None:
            return
        where = event.message.channel
        if not self.bot.is_organiser(circle, event.user, event.authority):
            log.info("%s ended poll %d on %s but is not an organiser; it stays open", event.user.id, poll.id,
                     where.platform)
            adapter = self.bot.adapters.get(where.platform)
            if adapter is not None:
                await adapter.send(where, Post(
                    f"{event.user.display} ended poll #{poll.id} here, but only the organisers of {circle.name} "
                    f"may close it: it stays open. Vote with `{self.vote_hint(where.platform, poll.id)}`."))
            return
        results = await self.close_poll(poll)
        if results is not None:
            await self.bot.post_to_circle(circle, Post(f"Poll #{poll.id} was ended by {event.user.display} on "
                                                       f"{where.platform}.\n{results_text(results)}"))

    async def close_due_polls(self) -> int:
        """Close every poll whose closing time has passed and announce its results."""
        closed = 0
        for poll in await self.bot.store.due_polls(self.bot.clock.now()):
            results = await self.close_poll(poll)
            if results is None:
                continue
            closed += 1
            circle = self.bot.settings.circle(poll.circle)
            if circle is not None:
                await self.bot.post_to_circle(circle, Post(f"Poll #{poll.id} has closed.\n{results_text(results)}"))
        return closed


def _too_late(poll: PollRow, vote: VoteCast, now: datetime) -> bool:
    """A vote cast at or after the poll's end does not count; the end is its closing time once that has passed
    (by the bot's clock: a vote that arrives before then counts, though a server's clock may stamp it a little
    later), even if the bot was down then and closes the poll only now."""
    end = poll.closed_at or (poll.closes_at if poll.closes_at is not None and now >= poll.closes_at else None)
    if end is not None and vote.at >= end:
        log.info("ignoring a vote in poll %d cast after it closed", poll.id)
        return True
    return False


def _ballot(poll: PollRow, answers: tuple[int, ...], *, cut: bool = True) -> tuple[int, ...]:
    """A native ballot cleaned the lenient way: the same answer twice counts once; an unknown answer spoils the
    ballot (as MSC3381 counts it); a one-answer poll keeps the first (`cut`)."""
    n = len(poll.answers)
    if len(answers) != 1 or not 0 <= answers[0] < n:
        answers = tuple(dict.fromkeys(answers)) if all(0 <= a < n for a in answers) else ()
    return answers if poll.multi or not cut else answers[:1]

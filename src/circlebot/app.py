"""The core: routing, the permission check, and the single place that catches handler errors.

Adapters hand events to `App.dispatch`; handlers (in `circlebot.features`) return their answer and the core
sends it. Nothing here knows which platform an event came from beyond the names in the config.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, PlatformRefused, PollLimits
from circlebot.core.commands import Command, CommandTable, Reply, Syntax, UsageError, bind_words
from circlebot.core.domain import (
    Authority,
    ChannelRef,
    CheckInCast,
    Event,
    Invocation,
    MessageRef,
    PollEndCast,
    PollResults,
    PollSpec,
    Post,
    RsvpCast,
    UserRef,
    VoteCast,
    VoteChange,
)
from circlebot.core.text import Text, clean
from circlebot.readings import Collection
from circlebot.store import PollRow, Store

if TYPE_CHECKING:
    from circlebot.core.timeline import Timeline

log = logging.getLogger(__name__)

CLEAN_UP_EVERY = 24 * 3600.0  # seconds between clean-ups of old adapter state
STOP_GRACE = 7.0  # seconds a stopping bot gives what is in hand; `docker stop` kills after 10


class Clock(Protocol):
    """Where the core gets the time; tests inject a fake one."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Refused(UsageError):
    """The user may not do that (not an organiser, not their data); no usage text is added."""


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a handler needs about one invocation."""

    app: App
    circle: CircleSettings
    zone: ZoneInfo
    user: UserRef
    member_id: int
    organiser: bool
    now: datetime
    invocation: Invocation
    prefix: str

    @property
    def store(self) -> Store:
        return self.app.store

    @property
    def readings(self) -> Collection:
        return self.app.readings

    @property
    def syntax(self) -> Syntax:
        """How the asker types commands: hints in answers are written with it."""
        return self.app.syntax(self.invocation.channel.platform)


class App:
    """The platform-free bot."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        readings: Collection,
        clock: Clock | None = None,
        commands: Sequence[Command] | None = None,
    ) -> None:
        from circlebot.features import all_commands

        self.settings = settings
        self.store = store
        self.readings = readings
        self.clock: Clock = clock or SystemClock()
        self.commands = CommandTable(list(commands) if commands is not None else all_commands())
        self.adapters: dict[str, ChatAdapter] = {}
        self._ballot_locks: dict[tuple[int, int], asyncio.Lock] = {}
        self.timeline: Timeline | None = None
        self._stop = asyncio.Event()
        self._channels: dict[tuple[str, str], CircleSettings] = {}
        for c in settings.circles:
            if c.where.console:
                self._channels[("console", c.slug)] = c
            for ch in c.where.discord_channels:
                self._channels[("discord", ch)] = c
            for room in c.where.matrix_rooms:
                self._channels[("matrix", room)] = c

    # wiring ----------------------------------------------------------------------------------------
    def add_adapter(self, adapter: ChatAdapter) -> None:
        self.adapters[adapter.platform] = adapter

    def circle_for(self, channel: ChannelRef) -> CircleSettings | None:
        return self._channels.get((channel.platform, channel.id))

    def locations(self, circle: CircleSettings) -> list[ChannelRef]:
        """Every channel of a circle on the platforms that are running."""
        where = [*((("console", circle.slug),) if circle.where.console else ()),
                 *(("discord", ch) for ch in circle.where.discord_channels),
                 *(("matrix", room) for room in circle.where.matrix_rooms)]
        return [ChannelRef(p, cid) for p, cid in where if p in self.adapters and self._channels.get((p, cid)) is circle]

    def zone(self, circle: CircleSettings) -> ZoneInfo:
        return self.settings.zone_of(circle)

    def prefix(self, platform: str) -> str:
        adapter = self.adapters.get(platform)
        return adapter.prefix if adapter else ""

    def syntax(self, platform: str) -> Syntax:
        """How commands are written on a platform (an adapter may declare its own `syntax`)."""
        adapter = self.adapters.get(platform)
        declared = getattr(adapter, "syntax", None)
        return declared if isinstance(declared, Syntax) else Syntax(self.prefix(platform))

    def is_organiser(self, circle: CircleSettings, user: UserRef, authority: Authority) -> bool:
        """The one permission rule: configured ids, or the platform's own standing as configured."""
        org = circle.organisers
        if user.platform == "console":
            return user.id in org.console
        if user.platform == "discord":
            return (
                user.id in org.discord_users
                or bool(authority.roles & set(org.discord_roles))
                or (org.discord_manage_server and authority.manages_server)
            )
        if user.platform == "matrix":
            return user.id in org.matrix_users or (
                org.matrix_power_level is not None
                and authority.power_level is not None
                and authority.power_level >= org.matrix_power_level
            )
        return False

    def poll_limits(self, circle: CircleSettings) -> list[tuple[str, PollLimits]]:
        return [(loc.platform, self.adapters[loc.platform].poll_limits) for loc in self.locations(circle)]

    # dispatch --------------------------------------------------------------------------------------
    async def dispatch(self, event: Event | Sequence[Event]) -> Text | str | None:
        """Handle an inbound event, or a batch of them (a sync response, a back-fill: votes in a batch are
        stored in one transaction). Never raises: every error is answered or logged here.

        For an RSVP or check-in from a button or reaction, returns what to tell the member (a platform whose
        buttons can answer shows it); otherwise None: commands are answered through the adapter's reply."""
        if not isinstance(event, _SINGLE_EVENTS):
            event = [_cleaned(e) for e in event]
            votes = [e for e in event if isinstance(e, VoteCast)]
            if votes:
                try:
                    await self.cast_votes(votes)
                except Exception:
                    log.exception("error storing %d votes", len(votes))
            for e in event:
                if not isinstance(e, VoteCast):
                    await self.dispatch(e)
            return None
        event = _cleaned(event)
        try:
            if isinstance(event, Invocation):
                await self._invoke(event)
            elif isinstance(event, VoteCast):
                await self.cast_vote(event)
            elif isinstance(event, RsvpCast):
                from circlebot.features.attendance import rsvp_from_event

                return await rsvp_from_event(self, event)
            elif isinstance(event, CheckInCast):
                from circlebot.features.attendance import checkin_from_event

                return await checkin_from_event(self, event)
            elif isinstance(event, PollEndCast):
                await self.poll_ended_on_platform(event)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("error %s handling %s", error_id, type(event).__name__)
            return f"Sorry, something went wrong on my side (error `{error_id}`)."
        return None

    async def _invoke(self, inv: Invocation) -> None:
        prefix = self.prefix(inv.channel.platform)
        command: Command | None = None
        try:
            circle = self.circle_for(inv.channel)
            if circle is None:
                raise UsageError("this channel is not part of any study circle; an admin can add it in the config.")
            if inv.text is not None:
                command, words = self.commands.resolve(inv.text, prefix)
            else:
                command = self.commands.get(inv.path)
                if command is None:
                    raise UsageError(f"there is no command {' '.join(inv.path)!r}.")
            organiser = self.is_organiser(circle, inv.user, inv.authority)
            if command.organiser and not organiser:
                raise Refused(f"`{self.syntax(inv.channel.platform).name(command)}` is for the organisers of "
                              f"{circle.name}.")
            kwargs = bind_words(command, words) if inv.text is not None else self.commands.bind(command, inv.options)
            member_id = await self.store.member(inv.user)
            ctx = Context(self, circle, self.zone(circle), inv.user, member_id, organiser, self.clock.now(), inv,
                          prefix)
            result = await command.handler(ctx, **kwargs)
            reply = result if isinstance(result, Reply) else Reply(result)
            await self._answer(inv, Post(reply.text), private=reply.private or command.private)
        except Refused as e:
            await self._answer(inv, Post("Sorry: " + e.text), private=True)
        except UsageError as e:
            cmd = e.command or command
            text = _capital(e.text)
            if cmd is not None:
                syntax = self.syntax(inv.channel.platform)
                text += f"\nUsage: `{syntax.usage(cmd)}` ({syntax.help_hint(cmd)} for more)"
            await self._answer(inv, Post(text), private=True)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("error %s in command %r from %s", error_id, inv.text or inv.path, inv.user.id)
            await self._answer(
                inv,
                Post(f"Sorry, something went wrong on my side (error `{error_id}`). It is logged; "
                     "an admin can look it up. Nothing you did was lost."),
                private=True,
            )

    async def _answer(self, inv: Invocation, post: Post, *, private: bool) -> None:
        adapter = self.adapters.get(inv.channel.platform)
        if adapter is None:
            log.warning("no adapter for %s to answer on", inv.channel.platform)
            return
        try:
            await adapter.reply(inv, post, private=private)
        except Exception:
            log.exception("could not send an answer on %s", inv.channel.platform)

    # posting ---------------------------------------------------------------------------------------
    async def post_to_circle(self, circle: CircleSettings, post: Post) -> list[MessageRef]:
        """Send a post to every running location of a circle; a platform that fails does not stop the others."""
        refs: list[MessageRef] = []
        for loc in self.locations(circle):
            try:
                refs.append(await self.adapters[loc.platform].send(loc, post))
            except Exception:
                log.exception("could not post to %s %s", loc.platform, loc.id)
        return refs

    # polls -----------------------------------------------------------------------------------------
    @staticmethod
    def spec(poll: PollRow) -> PollSpec:
        return PollSpec(poll.id, poll.question, poll.answers, poll.multi, poll.secret, poll.closes_at)

    def vote_hint(self, platform: str, poll_id: int) -> str:
        """How to vote in a poll by command on a platform, in its syntax (`!vote 3 <n>`)."""
        vote = self.commands.get(("vote",))
        syntax = self.syntax(platform)
        return syntax.example(vote, poll=poll_id, answers="<n>") if vote else f"{syntax.prefix}vote {poll_id} <n>"

    async def start_poll(self, circle: CircleSettings, poll: PollRow) -> tuple[list[MessageRef], list[str]]:
        """Start a poll on every running location of its circle: the messages that carry it, and for each
        location that refused it, what failed and what to do (as a sentence for the organiser)."""
        from dataclasses import replace

        refs: list[MessageRef] = []
        failed: list[str] = []
        spec = self.spec(poll)
        for loc in self.locations(circle):
            try:
                ref = await self.adapters[loc.platform].start_poll(
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
            await self.store.add_poll_message(poll.id, ref)
            refs.append(ref)
        return refs, failed

    async def tally(self, poll: PollRow) -> PollResults:
        counts = [0] * len(poll.answers)
        voters = 0
        for _member, answers in await self.store.ballots(poll.id):
            if answers:
                voters += 1
            for a in answers:
                if 0 <= a < len(counts):
                    counts[a] += 1
        return PollResults(self.spec(poll), tuple(counts), voters, poll.closed)

    async def close_poll(self, poll: PollRow) -> PollResults | None:
        """Close a poll and end it on every platform; None if it was closed already."""
        from circlebot.features.polls import results_text

        now = self.clock.now()
        # a poll closes at its closing time, even when the bot was down then and closes it only now
        at = min(now, poll.closes_at) if poll.closes_at is not None else now
        if not await self.store.close_poll(poll.id, at):
            return None
        closed = await self.store.poll(poll.id)
        assert closed is not None
        results = await self.tally(closed)
        text = results_text(results)
        for ref in await self.store.poll_messages(poll.id):
            adapter = self.adapters.get(ref.channel.platform)
            if adapter is None:
                continue
            try:
                await adapter.end_poll(ref, results, text)
            except Exception:
                log.exception("could not end poll %d on %s", poll.id, ref.channel.platform)
        return results

    async def cast_vote(self, vote: VoteCast) -> PollRow | None:
        """One vote from a platform's native poll (see `cast_votes`); the poll it counted in, if any."""
        polls = await self.cast_votes([vote])
        return polls[0] if polls else None

    async def cast_votes(self, votes: Sequence[VoteCast]) -> list[PollRow]:
        """Votes from platforms' native polls, cleaned the lenient way (clipped, not refused) and stored
        together: one short transaction for the lot, returning once it is committed."""
        store = self.store
        rows: list[tuple[int, int, str, int]] = []
        counted: list[PollRow] = []
        polls: dict[object, PollRow | None] = {}  # a batch is mostly votes in the same poll: look it up once
        now = self.clock.now()
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
                poll = polls[key] = await store.poll(poll_id) if poll_id is not None else None
            if poll is None:
                continue
            # A vote cast at or after the poll's end does not count; the end is its closing time once that has
            # passed (by the bot's clock: a vote that arrives before then counts, though a server's clock may
            # stamp it a little later), even if the bot was down then and closes the poll only now.
            end = poll.closed_at or (poll.closes_at if poll.closes_at is not None and now >= poll.closes_at else None)
            if end is not None and vote.at >= end:
                log.info("ignoring a vote in poll %d cast after it closed", poll.id)
                continue
            answers = vote.answers
            n = len(poll.answers)
            if len(answers) != 1 or not 0 <= answers[0] < n:
                # the same answer twice counts once; an unknown answer spoils the ballot, as MSC3381 counts it
                answers = tuple(dict.fromkeys(answers)) if all(0 <= a < n for a in answers) else ()
            member_id = store.known_member(vote.user) or await store.member(vote.user)
            counted.append(poll)
            if vote.change is VoteChange.SET:
                rows.append(store.vote_row(poll.id, member_id, answers if poll.multi else answers[:1], vote.at))
            else:
                if rows:  # keep the order of this member's earlier whole-ballot votes
                    await store.write_vote_rows(rows)
                    rows = []
                await self._change_ballot(poll, member_id, vote.change, answers, vote.at)
        if rows:
            await store.write_vote_rows(rows)
        return counted

    async def _change_ballot(
        self, poll: PollRow, member_id: int, change: VoteChange, answers: tuple[int, ...], at: datetime
    ) -> None:
        key = (poll.id, member_id)
        lock = self._ballot_locks.setdefault(key, asyncio.Lock())
        async with lock:  # add/remove read the ballot, so one member's changes go one at a time
            current = await self.store.ballot_of(poll.id, member_id) or ()
            if change is VoteChange.ADD:
                new = tuple(dict.fromkeys((*current, *answers))) if poll.multi else answers[:1] or current
            else:
                new = tuple(a for a in current if a not in answers)
            await self.store.record_vote(poll.id, member_id, new, at)
        if not lock.locked():
            self._ballot_locks.pop(key, None)

    async def poll_ended_on_platform(self, event: PollEndCast) -> None:
        """A poll ended on a platform by someone entitled to: close it everywhere and post its results."""
        from circlebot.features.polls import results_text

        poll_id = await self.store.poll_for_message(event.message)
        poll = await self.store.poll(poll_id) if poll_id is not None else None
        if poll is None or poll.closed:
            return
        results = await self.close_poll(poll)
        circle = self.settings.circle(poll.circle)
        if results is not None and circle is not None:
            where = event.message.channel.platform
            await self.post_to_circle(circle, Post(f"Poll #{poll.id} was ended by {event.user.display} on {where}.\n"
                                                   f"{results_text(results)}"))

    async def close_due_polls(self) -> int:
        """Close every poll whose closing time has passed and announce its results."""
        from circlebot.features.polls import results_text

        closed = 0
        for poll in await self.store.due_polls(self.clock.now()):
            results = await self.close_poll(poll)
            if results is None:
                continue
            closed += 1
            circle = self.settings.circle(poll.circle)
            if circle is not None:
                await self.post_to_circle(circle, Post(f"Poll #{poll.id} has closed.\n{results_text(results)}"))
        return closed

    # running ---------------------------------------------------------------------------------------
    async def changed(self, circle: CircleSettings | None = None) -> None:
        """Meetings or polls changed (in one circle, or anywhere): the timeline re-plans from the database."""
        if self.timeline is not None:
            await self.timeline.rebuild(circle)

    async def _clean_up_daily(self) -> None:
        """Remove adapter state of meetings and polls long past, at start and then once a day."""
        while True:
            try:
                removed = await self.store.clean_up(self.clock.now())
                if removed:
                    log.info("clean-up: removed %d item(s) of adapter state of meetings and polls long past", removed)
            except Exception:
                log.exception("clean-up failed; trying again in a day")
            await asyncio.sleep(CLEAN_UP_EVERY)

    def stop(self) -> None:
        """Ask `run` to stop (SIGTERM, SIGINT): no new events are taken, those in hand are finished, the
        writes flushed and the platforms closed. Safe to call from a signal handler, and more than once."""
        if not self._stop.is_set():
            log.info("stopping: finishing what is in hand")
        self._stop.set()

    async def run(self, ready_timeout: float = 60.0) -> None:
        """Run every adapter and the timeline until the first adapter finishes, `stop` is called, or the task
        is cancelled.

        The timeline starts (and catches up on what fell due while the bot was down) once every adapter that
        has a `ready` event has set it, so catch-up posts are not sent into a platform still connecting.

        Stopping, in order: the scheduler takes no new job; each adapter is cancelled, which is how it is told
        to stop taking events, finish those in hand and close (given until STOP_GRACE after the stop began,
        then cancelled again); the timeline jobs already running finish (within the same bound); then every
        queued write is committed. The caller closes the database."""
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobEvent
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        from circlebot.core.timeline import Timeline

        self.store.batcher.start()
        scheduler = AsyncIOScheduler(timezone=UTC)
        jobs_running: list[int] = [0]
        jobs_idle = asyncio.Event()

        def job_counted(event: JobEvent) -> None:
            jobs_running[0] += 1 if event.code == EVENT_JOB_SUBMITTED else -1
            if jobs_running[0] <= 0:
                jobs_idle.set()
            else:
                jobs_idle.clear()

        scheduler.add_listener(job_counted, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.timeline = Timeline(self, scheduler)
        stop_by: float | None = None
        loop = asyncio.get_running_loop()
        try:
            await self.timeline.prepare()  # the syllabus's meetings exist before the first command arrives
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(a.run(self.dispatch), name=f"adapter-{p}") for p, a in self.adapters.items()]
                stopping = tg.create_task(self._stop.wait(), name="circlebot-stop")
                cleaning = tg.create_task(self._clean_up_daily(), name="circlebot-clean-up")
                for adapter in self.adapters.values():
                    ready = getattr(adapter, "ready", None)
                    if isinstance(ready, asyncio.Event) and not stopping.done():
                        waiting = asyncio.ensure_future(ready.wait())
                        await asyncio.wait([waiting, stopping], timeout=ready_timeout,
                                           return_when=asyncio.FIRST_COMPLETED)
                        waiting.cancel()
                        if not ready.is_set() and not stopping.done():
                            log.warning("%s is not ready after %.0f s; starting the timeline anyway",
                                        adapter.platform, ready_timeout)
                if not stopping.done():
                    scheduler.start()
                    await self.timeline.start()
                    await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
                stop_by = loop.time() + STOP_GRACE
                if scheduler.running:
                    scheduler.pause()  # no new job; those running finish below
                stopping.cancel()
                cleaning.cancel()
                for t in tasks:
                    t.cancel()
                _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
                for t in late:
                    log.warning("%s did not stop within %.0f s; cut short", t.get_name(), STOP_GRACE)
                    t.cancel()
        finally:
            if scheduler.running:
                scheduler.pause()
                if jobs_running[0] > 0:
                    left = (stop_by or loop.time() + STOP_GRACE) - loop.time()
                    try:
                        await asyncio.wait_for(jobs_idle.wait(), max(left, 0.5))
                    except TimeoutError:
                        log.warning("%d timeline job(s) still running at stop; cut short", jobs_running[0])
                scheduler.shutdown(wait=False)
            self.timeline = None
            await self.store.batcher.stop()


_SINGLE_EVENTS = (VoteCast, Invocation, RsvpCast, CheckInCast, PollEndCast)  # built once: dispatch is hot


def _cleaned(event: Event) -> Event:
    """An event with the user's text and name as the core keeps user text (see `text.clean`)."""
    user = event.user
    if not user.name.isascii():
        user = dataclasses.replace(user, name=clean(user.name))
    if isinstance(event, Invocation):
        text = clean(event.text, balance=False) if event.text is not None else None  # its words: when bound
        options = {k: clean(v, balance=False) if isinstance(v, str) else v for k, v in event.options.items()}
        return dataclasses.replace(event, user=user, text=text, options=options)
    return event if user is event.user else dataclasses.replace(event, user=user)


def _capital(text: Text) -> Text:
    first = text.segments[0] if text.segments else ""
    if not isinstance(first, str):
        return text
    return Text(first[:1].upper() + first[1:], *text.segments[1:])


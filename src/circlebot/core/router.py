"""The router: the platform-free bot. It finds the circle of a channel, checks who may do what, dispatches each
inbound event by its type to the handler a feature declared (commands through their declarations), and is the
one place that catches handler errors. It names no feature: the commands and event handlers are given to it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import cast
from zoneinfo import ZoneInfo

from circlebot.config import CircleSettings, Settings
from circlebot.core.adapter import ChatAdapter, NotStored, PollLimits, storage_failed
from circlebot.core.clock import Clock, SystemClock
from circlebot.core.commands import Command, CommandTable, Refused, Reply, Syntax, UsageError, Word, bind_words
from circlebot.core.context import Context, EventHandler
from circlebot.core.domain import (
    Authority,
    ChannelRef,
    Event,
    FileUpload,
    Invocation,
    MessageRef,
    PollReadBack,
    Post,
    UserRef,
    VoteCast,
)
from circlebot.core.metrics import Metrics
from circlebot.core.polls import Polls
from circlebot.core.text import Text, clean
from circlebot.core.timeline import DirectPost, PostKind, PostLines, Timeline
from circlebot.core.weblinks import WebLinks
from circlebot.readings import Collection
from circlebot.store import Meeting, Store, refused_as_closed
from circlebot.store.db import cancelling

log = logging.getLogger(__name__)

_NO_AUTHORITY = Authority()  # another identity's standing on its platform is not known here

QuestionsOf = Callable[[Meeting, CircleSettings], Awaitable[list[str]]]
"""The discussion questions of a meeting, as the timeline posts them when it starts."""


async def _no_questions(meeting: Meeting, circle: CircleSettings) -> list[str]:
    return []


class Router:
    """The platform-free bot: adapters hand it events; handlers return their answer and it sends it."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        readings: Collection,
        clock: Clock | None = None,
        commands: Sequence[Command] = (),
        event_handlers: Sequence[EventHandler] = (),
        questions: QuestionsOf = _no_questions,
        post_lines: Sequence[PostLines] = (),
        direct_posts: Sequence[DirectPost] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.readings = readings
        self.clock: Clock = clock or SystemClock()
        self.commands = CommandTable(list(commands))
        self.handlers: dict[type, EventHandler] = {h.event: h for h in event_handlers}
        self._questions = questions
        self._post_lines = list(post_lines)
        self._direct_posts = {d.kind: d for d in direct_posts}
        self.adapters: dict[str, ChatAdapter] = {}
        self.polls = Polls(self)
        self.timeline: Timeline | None = None
        self.metrics = Metrics()
        self.web_links: WebLinks | None = None  # set by the app when it runs a web server
        self.generation = 0  # bumped by `changed`: with the database's writes, what tells the web pages to render again
        self.events = 0  # events dispatched: what stands for the writes where the database does not count them
        self._channels: dict[tuple[str, str], CircleSettings] = {}
        for c in settings.circles:
            if c.where.console:
                self._channels[("console", c.slug)] = c
            for ch in c.where.discord_channels:
                self._channels[("discord", ch)] = c
            for room in c.where.matrix_rooms:
                self._channels[("matrix", room)] = c

    async def meeting_questions(self, meeting: Meeting, circle: CircleSettings) -> list[str]:
        """The discussion questions the timeline posts when a meeting starts."""
        return await self._questions(meeting, circle)

    async def direct_post(self, kind: PostKind, meeting: Meeting, circle: CircleSettings
                          ) -> tuple[UserRef, Post] | None:
        """A timeline post for one member alone, from the feature that declared its kind (`DirectPost`)."""
        made = self._direct_posts.get(kind)
        return await made.make(self, meeting, circle) if made is not None else None

    async def post_lines(self, kind: PostKind, meeting: Meeting, circle: CircleSettings) -> list[Text | str]:
        """What features add to a timeline post of `kind` (their `POST_LINES`); one that fails is left out."""
        out: list[Text | str] = []
        for extra in self._post_lines:
            if extra.kind is kind:
                try:
                    out += await extra.lines(self, meeting, circle)
                except Exception:
                    log.exception("could not add %s's lines to the %s post of meeting %d",
                                  getattr(extra.lines, "__module__", "?"), kind.value, meeting.id)
        return out

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
        declared = adapter.syntax if adapter else None
        return declared if declared is not None else Syntax(self.prefix(platform))

    def is_organiser(self, circle: CircleSettings, user: UserRef, authority: Authority) -> bool:
        """The one permission rule: configured ids, or the platform's own standing as configured. A linked
        person (`Store.linked_identities`) is an organiser if one of its identities is configured as one, or was
        seen as one by its standing within `STANDING_LIFE` (noted here, as each command shows it)."""
        itself = self._organiser_itself(circle, user, authority)
        others = self.store.linked_identities(user)
        if not others:
            return itself
        now = self.clock.now()
        if itself and not self._organiser_itself(circle, user, _NO_AUTHORITY):
            self.store.note_standing(circle.slug, user, now)
        return itself or any(self._organiser_itself(circle, other, _NO_AUTHORITY)
                             or self.store.has_standing(circle.slug, other, now) for other in others)

    def _organiser_itself(self, circle: CircleSettings, user: UserRef, authority: Authority) -> bool:
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
        """Handle an inbound event, or a batch of them (a sync response, a back-fill), by its type: a command
        through its declaration, any other event through the handler a feature declared for its type (the
        events of a `batch` handler's type in a batch go to it together: votes are stored in one transaction).
        Every error is answered or logged here, except one: when what the events change could not be stored (the
        database failed), this raises `NotStored`, so the adapter offers the events again instead of losing them
        (every handler may see an event twice: they are idempotent).

        For an RSVP or check-in from a button or reaction, returns what to tell the member (a platform whose
        buttons can answer shows it); otherwise None: commands are answered through the adapter's reply."""
        self.events += 1
        handler = self.handlers.get(type(event))  # None for a batch (a list or tuple)
        if handler is not None and handler.batch:
            # one event of a kind handled in batches (a vote from a gateway, a console): the common case, so the
            # shortest path, with the same effects and error handling as below
            quick = handler.quick
            try:
                pending = quick(self, event) if quick is not None else None
                if pending is not None:  # `written(pending)` inlined: a coroutine less per vote
                    batch = pending[0]
                    try:
                        await batch.done
                    except asyncio.CancelledError:
                        if cancelling():
                            raise
                        await batch.until_written()
                    if batch.errors:
                        batch.raise_error(pending[1])
                else:
                    await handler.handle(self, (_cleaned(cast(Event, event)),))
            except Exception as error:
                return self._failed(cast(Event, event), error)
            if type(event) is VoteCast:
                self.metrics.votes.inc()
            return None
        if isinstance(event, (list, tuple)):
            events = [_cleaned(e) for e in event]
            batched: dict[type, list[Event]] = {}
            for e in events:
                handler = self.handlers.get(type(e))
                if handler is not None and handler.batch:
                    batched.setdefault(type(e), []).append(e)
            for kind, group in batched.items():
                try:
                    await self.handlers[kind].handle(self, group)
                    if kind is VoteCast:
                        self.metrics.votes.inc(len(group))
                except Exception as error:
                    if storage_failed(error):
                        log.warning("could not store %d %s event(s): %s; offered again later", len(group),
                                    kind.__name__, error)
                        raise NotStored(str(error)) from error
                    self.metrics.errors.labels("event").inc()
                    log.exception("error handling %d %s events", len(group), kind.__name__)
            for e in events:
                if type(e) not in batched:
                    await self.dispatch(e)
            return None
        event = _cleaned(cast(Event, event))
        try:
            if isinstance(event, Invocation):
                await self._invoke(event)
                return None
            if handler is None:
                log.warning("no handler for %s", type(event).__name__)
                return None
            answer = await handler.handle(self, event)
            if isinstance(event, VoteCast):
                self.metrics.votes.inc()
            return answer
        except Exception as error:
            return self._failed(event, error)

    def _failed(self, event: Event, error: Exception) -> str | None:
        """What `dispatch` does when handling one event failed: raises `NotStored` if storing failed (the
        adapter offers the event again), else counts and logs the error and returns the apology to show. A vote
        the database refused because its poll is closed is dropped (logged, nothing to show: the platform's poll
        has ended too)."""
        if isinstance(event, VoteCast) and refused_as_closed(error):
            poll, message = self.store.cached_poll(event.poll_id, event.message), event.message
            where = (f"#{poll.id}" if poll is not None else f"#{event.poll_id}" if event.poll_id is not None
                     else f"of {message.channel.platform} message {message.id}" if message is not None else "?")
            log.info("not counting a vote from %s in poll %s: the poll is closed (it closed before the vote reached "
                     "the database)", event.user.id, where)
            return None
        if storage_failed(error):
            log.warning("could not store a %s: %s; it is offered again later", type(event).__name__, error)
            raise NotStored(str(error)) from error
        error_id = secrets.token_hex(4)
        self.metrics.errors.labels("event").inc()
        log.exception("error %s handling %s", error_id, type(event).__name__, exc_info=error)
        return f"Sorry, something went wrong on my side (error `{error_id}`)."

    async def _invoke(self, inv: Invocation) -> None:
        prefix = self.prefix(inv.channel.platform)
        command: Command | None = None
        words: list[Word] = []
        try:
            circle = self.circle_for(inv.channel)
            if circle is None and not inv.direct:
                raise UsageError("this channel is not part of any study circle; an admin can add it in the config.")
            if inv.text is not None:
                command, words = self.commands.resolve(inv.text, prefix)
            else:
                command = self.commands.get(inv.path)
                if command is None:
                    raise UsageError(f"there is no command {' '.join(inv.path)!r}.")
            if circle is None:
                circle = await self._direct_circle(inv, command, words)
            member_id = await self.store.ensure_member(inv.user)  # first: it caches a linked person's identities
            organiser = self.is_organiser(circle, inv.user, inv.authority)
            if command.organiser and not organiser:
                raise Refused(f"`{self.syntax(inv.channel.platform).name(command)}` is for the organisers of "
                              f"{circle.name}.")
            kwargs = bind_words(command, words) if inv.text is not None else self.commands.bind(command, inv.options)
            ctx = Context(self, circle, self.zone(circle), inv.user, member_id, organiser, self.clock.now(), inv,
                          prefix)
            result = await command.handler(ctx, **kwargs)
            reply = result if isinstance(result, Reply) else Reply(result)
            self._count(command, "ok")
            if command.path == ("vote",):
                self.metrics.votes.inc()
            if reply.file is not None:
                await self._answer_file(inv, reply.file, Post(reply.text), private=reply.private or command.private)
            else:
                await self._answer(inv, Post(reply.text), private=reply.private or command.private)
        except Refused as e:
            self._count(command, "refused")
            await self._answer(inv, Post("Sorry: " + e.text), private=True)
        except UsageError as e:
            self._count(e.command or command, "usage")
            cmd = e.command or command
            text = _capital(e.text)
            if cmd is not None:
                syntax = self.syntax(inv.channel.platform)
                text += f"\nUsage: `{syntax.usage(cmd)}` ({syntax.help_hint(cmd)} for more)"
            await self._answer(inv, Post(text), private=True)
        except Exception:
            error_id = secrets.token_hex(4)
            self._count(command, "error")
            self.metrics.errors.labels("command").inc()
            log.exception("error %s in command %r from %s", error_id, inv.text or inv.path, inv.user.id)
            await self._answer(
                inv,
                Post(f"Sorry, something went wrong on my side (error `{error_id}`). It is logged; "
                     "an admin can look it up. Nothing you did was lost."),
                private=True,
            )

    def _count(self, command: Command | None, outcome: str) -> None:
        self.metrics.commands.labels(" ".join(command.path) if command else "(unknown)", outcome).inc()

    async def _direct_circle(self, inv: Invocation, command: Command, words: list[Word]) -> CircleSettings:
        """The circle a command sent in a direct conversation is for: the only circle on that platform, or
        the circle of the poll the command names."""
        circles = list({c.slug: c for (p, _), c in self._channels.items() if p == inv.channel.platform}.values())
        if len(circles) == 1 or (command.any_circle and circles):
            return circles[0]
        if any(p.name == "poll" for p in command.params):
            kwargs = bind_words(command, words) if inv.text is not None else self.commands.bind(command, inv.options)
            poll = await self.store.poll(kwargs["poll"]) if kwargs.get("poll") else None
            found = next((c for c in circles if poll is not None and c.slug == poll.circle), None)
            if found is not None:
                return found
        raise UsageError("I cannot tell which study circle this is for here; send the command in your circle's "
                         "room.", command)

    async def _answer(self, inv: Invocation, post: Post, *, private: bool) -> None:
        adapter = self.adapters.get(inv.channel.platform)
        if adapter is None:
            log.warning("no adapter for %s to answer on", inv.channel.platform)
            return
        try:
            await adapter.reply(inv, post, private=private)
        except Exception:
            log.exception("could not send an answer on %s", inv.channel.platform)

    async def _answer_file(self, inv: Invocation, file: FileUpload, post: Post, *, private: bool) -> None:
        """Hand over a file with its answer; if the platform cannot take it, say so instead of failing silently."""
        adapter = self.adapters.get(inv.channel.platform)
        if adapter is None:
            log.warning("no adapter for %s to answer on", inv.channel.platform)
            return
        try:
            await adapter.send_file(inv, file, post, private=private)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("error %s: could not send the file %s on %s", error_id, file.name, inv.channel.platform)
            await self._answer(inv, Post(f"Sorry, I could not send the file {file.name} here (error `{error_id}`). "
                                         "It is logged; an admin can look it up, or export it with the "
                                         "`circlebot export csv` command."), private=True)

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

    # running ---------------------------------------------------------------------------------------
    async def changed(self, circle: CircleSettings | None = None) -> None:
        """Meetings or polls changed (in one circle, or anywhere): the timeline re-plans from the database."""
        self.generation += 1
        if self.timeline is not None:
            await self.timeline.rebuild(circle)

    async def changed_elsewhere(self, kinds: frozenset[str], circles: frozenset[str] | None = None) -> None:
        """Another process on the database changed meetings or polls (`Store.watch`, which has dropped the
        store's cached rows): when meetings changed, the timeline re-plans from the database the circles whose
        meetings changed (`circles`; None: every circle), so its scheduler holds a moved meeting's posts for
        its new time; web pages render anew either way."""
        self.generation += 1
        if "meetings" not in kinds:
            return
        if circles is None:
            await self.changed()
            return
        for slug in sorted(circles):
            circle = self.settings.circle(slug)
            if circle is not None:
                await self.changed(circle)


def _cleaned(event: Event) -> Event:
    """An event with the user's text and name as the core keeps user text (see `text.clean`)."""
    if isinstance(event, PollReadBack):
        return dataclasses.replace(event, ballots=tuple(cast(VoteCast, _cleaned(b)) for b in event.ballots))
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


"""The Discord adapter: slash commands, native polls and buttons, with discord.py 2.7.

What it translates:

- Slash commands are generated from the core's command declarations (`command_payloads`): one top-level command
  per first word; a first word with sub-commands becomes a group, and a command that is both a command and a
  group head (``poll`` beside ``poll close``) becomes the sub-command named in `BARE_SUBCOMMANDS` (``/poll open``).
  Greedy parameters are one text option (``answers: "Mon" "Wed"``). The tree is synced per configured guild.
- Every interaction is answered within Discord's 3 s: the answer goes out directly when the core has it within
  `defer_after` seconds, otherwise the interaction is deferred and the answer follows up. After 15 min the token is
  dead and public answers fall back to a channel message. Private answers are ephemeral.
- Native polls carry the votes: each raw poll-vote add/remove event becomes a `VoteCast` (ADD/REMOVE) on the
  poll's message, handled one at a time in arrival order. After a restart the votes are read back from each open
  poll's answer voters. Secret polls are plain messages (Discord shows native poll counts to every voter), voted
  on with ``/vote``.
- RSVP and check-in buttons are `DynamicItem`s whose custom ids carry the meeting id
  (``circlebot:rsvp:yes:12``, ``circlebot:here:12``), so they keep working after a restart.
- Nothing the bot sends pings anyone unless the post asks to notify its `mentions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands

from circlebot.adapters.render import discord_markdown, plain_text, split_text
from circlebot.core.adapter import (
    DirectRefused,
    Dispatch,
    Lookups,
    MeetingEvent,
    NotStored,
    PlatformRefused,
    PollLimits,
    idempotency_token,
)
from circlebot.core.commands import Command, Param, Syntax
from circlebot.core.domain import (
    Authority,
    ChannelRef,
    CheckInCast,
    Control,
    Event,
    FileUpload,
    Invocation,
    MessageRef,
    PollReadBack,
    PollResults,
    PollSpec,
    Post,
    ProgressCast,
    RsvpAnswer,
    RsvpCast,
    UserRef,
    VoteCast,
    VoteChange,
)
from circlebot.core.text import CommandRef, Text

if TYPE_CHECKING:
    from circlebot.config import CircleSettings, DiscordSettings

log = logging.getLogger(__name__)

PLATFORM = "discord"
MESSAGE_LIMIT = 2000
TOKEN_LIFETIME = timedelta(minutes=14, seconds=30)  # Discord's is 15 min; keep a margin
DEFAULT_POLL_HOURS = 24 * 32  # a poll without a closing time stays open as long as Discord allows
VOTE_BATCH = 500  # the most vote events handed to the core at once
STOP_DRAIN = 5.0  # seconds a stopping adapter waits for the votes and interactions in hand
# the Discord name of a command that also heads a group
BARE_SUBCOMMANDS = {"poll": "open", "attendance": "show", "facilitate": "take", "links": "show"}
NO_MENTIONS = discord.AllowedMentions.none()
MISSING_PERMISSIONS = 50013  # Discord's JSON error code with 403 Forbidden
ORIGINAL_DELETED_OK = (discord.NotFound, discord.Forbidden)
NONCE_CHARS = 25  # the longest nonce Discord takes

_OPTION_TYPE = {
    "str": discord.AppCommandOptionType.string.value,
    "int": discord.AppCommandOptionType.integer.value,
    "float": discord.AppCommandOptionType.number.value,
    "bool": discord.AppCommandOptionType.boolean.value,
}


# ---------------------------------------------------------------------------------------------------------
# the slash-command tree, generated from the declarations


def _describe(text: str) -> str:
    text = text.replace("`", "").strip() or "-"
    return text if len(text) <= 100 else text[:99] + "…"


def discord_path(command: Command, all_commands: Sequence[Command]) -> tuple[str, ...]:
    """The path a command has on Discord: ``("poll",)`` beside ``("poll", "close")`` becomes ``("poll", "open")``."""
    if len(command.path) == 1 and any(c.path[0] == command.path[0] and len(c.path) > 1 for c in all_commands):
        return (command.path[0], BARE_SUBCOMMANDS.get(command.path[0], "run"))
    return command.path


def option_payload(param: Param) -> dict[str, Any]:
    """One parameter as a slash-command option. Greedy parameters take several words, so they are text."""
    kind = "str" if param.greedy else param.type.kind
    opt: dict[str, Any] = {
        "type": _OPTION_TYPE[kind],
        "name": param.name,
        "description": _describe(param.help),
        "required": param.required and not param.option,
    }
    if param.type.choices and not param.greedy:
        opt["choices"] = [{"name": c, "value": c} for c in param.type.choices]
    elif param.type.complete is not None:
        opt["autocomplete"] = True
    return opt


def _options(command: Command) -> list[dict[str, Any]]:
    opts = [option_payload(p) for p in command.params]
    return sorted(opts, key=lambda o: not o["required"])  # Discord wants the required ones first


def command_payloads(commands: Sequence[Command]) -> list[dict[str, Any]]:
    """The body of ``PUT .../commands``: every declared command as a chat-input command or sub-command.

    Organiser rights are checked by the core, so no ``default_member_permissions`` is set: it would hide whole
    groups (``/poll results`` is for everyone) and organisers by role may lack Manage Server.
    """
    heads: dict[str, list[Command]] = {}
    for c in commands:
        heads.setdefault(c.path[0], []).append(c)
    out: list[dict[str, Any]] = []
    for head, group in heads.items():
        if len(group) == 1 and len(group[0].path) == 1:
            c = group[0]
            out.append({"type": 1, "name": head, "description": _describe(c.help), "options": _options(c),
                        "contexts": [0]})
            continue
        subs = []
        for c in group:
            path = discord_path(c, commands)
            subs.append({"type": 1, "name": path[1], "description": _describe(c.help), "options": _options(c)})
        bare = next((c for c in group if len(c.path) == 1), None)
        description = bare.help if bare else f"{head} commands"
        out.append({"type": 1, "name": head, "description": _describe(description), "options": subs,
                    "contexts": [0]})
    return out


def core_paths(commands: Sequence[Command]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Discord path -> the core's path, for every command."""
    return {discord_path(c, commands): c.path for c in commands}


def parse_command_data(data: dict[str, Any], paths: dict[tuple[str, ...], tuple[str, ...]]) -> tuple[
        tuple[str, ...], dict[str, Any], str | None]:
    """An interaction's ``data`` as the core's command path (`paths` from `core_paths`), its options by name, and
    the focused option. Whatever is not as Discord documents it (an option without a name, a sub-command that
    is not an object) is left out: the core then refuses the command for what is missing."""

    def objects(value: object) -> list[Mapping[str, Any]]:
        return [o for o in value if isinstance(o, Mapping)] if isinstance(value, list) else []

    path = [str(data.get("name", ""))]
    options = objects(data.get("options"))
    while options and options[0].get("type") in (1, 2):  # SUB_COMMAND, SUB_COMMAND_GROUP
        path.append(str(options[0].get("name", "")))
        options = objects(options[0].get("options"))
    values: dict[str, Any] = {}
    focused: str | None = None
    for o in options:
        name = o.get("name")
        if not isinstance(name, str):
            continue
        values[name] = o.get("value")
        if o.get("focused"):
            focused = name
    return paths.get(tuple(path), tuple(path)), values, focused


def _clip(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------------------------------------------------
# buttons that survive restarts


def _adapter_of(interaction: discord.Interaction[Any]) -> DiscordAdapter | None:
    client = interaction.client
    return client.adapter if isinstance(client, _Client) else None


_RSVP_STYLE = {"yes": discord.ButtonStyle.success, "maybe": discord.ButtonStyle.secondary,
               "no": discord.ButtonStyle.danger}


class RsvpButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                 template=r"circlebot:rsvp:(?P<answer>yes|maybe|no):(?P<meeting>\d{1,12})"):
    """Yes / maybe / no on a meeting's post; the custom id carries the meeting."""


    def __init__(self, answer: str, meeting: int) -> None:
        super().__init__(discord.ui.Button(label=answer.capitalize(), style=_RSVP_STYLE[answer],
                                           custom_id=f"circlebot:rsvp:{answer}:{meeting}"))
        self.answer = RsvpAnswer(answer)
        self.meeting = meeting

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> RsvpButton:
        return cls(match["answer"], int(match["meeting"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = _adapter_of(interaction)
        if adapter is not None:
            await adapter._on_button(interaction, self.meeting, self.answer)


class CheckInButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"circlebot:here:(?P<meeting>\d{1,12})"):
    """"I'm here" on a meeting's post while it is open."""

    def __init__(self, meeting: int) -> None:
        super().__init__(discord.ui.Button(label="I'm here", style=discord.ButtonStyle.primary,
                                           custom_id=f"circlebot:here:{meeting}"))
        self.meeting = meeting

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> CheckInButton:
        return cls(int(match["meeting"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = _adapter_of(interaction)
        if adapter is not None:
            await adapter._on_button(interaction, self.meeting, None)


_READ_LABEL = {"all": "Read it all", "part": "Read part", "not": "Not read yet"}


class ReadButton(discord.ui.DynamicItem[discord.ui.Button[Any]],
                 template=r"circlebot:read:(?P<answer>all|part|not):(?P<meeting>\d{1,12})"):
    """How much of the reading one read, on the reading's post; answered privately (ephemeral)."""

    def __init__(self, answer: str, meeting: int) -> None:
        super().__init__(discord.ui.Button(label=_READ_LABEL[answer], style=discord.ButtonStyle.secondary,
                                           custom_id=f"circlebot:read:{answer}:{meeting}", row=1))
        self.answer = answer
        self.meeting = meeting

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any],
                             match: re.Match[str], /) -> ReadButton:
        return cls(match["answer"], int(match["meeting"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        adapter = _adapter_of(interaction)
        if adapter is not None:
            await adapter._on_read_button(interaction, self.meeting, self.answer)


def controls_view(post: Post) -> discord.ui.View | None:
    """The buttons a post asks for, or None."""
    if post.meeting_id is None or not post.controls:
        return None
    view = discord.ui.View(timeout=None)
    if Control.RSVP in post.controls:
        for answer in RsvpAnswer:
            view.add_item(RsvpButton(answer.value, post.meeting_id))
    if Control.CHECK_IN in post.controls:
        view.add_item(CheckInButton(post.meeting_id))
    if Control.READ in post.controls:
        for read in _READ_LABEL:
            view.add_item(ReadButton(read, post.meeting_id))
    return view


# ---------------------------------------------------------------------------------------------------------
# the client


class _Client(discord.Client):
    """discord.py's client, forwarding what matters to the adapter."""

    def __init__(self, adapter: DiscordAdapter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.adapter = adapter

    async def setup_hook(self) -> None:
        await self.adapter._setup(self)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial:  # Discord allows one IDENTIFY per 5 s: wait as discord.py does (adjustable)
            await asyncio.sleep(self.adapter.reidentify_pause)

    async def on_ready(self) -> None:
        await self.adapter._on_ready()

    async def on_connect(self) -> None:
        self.adapter._connection(up=True)

    async def on_disconnect(self) -> None:
        self.adapter._connection(up=False)

    async def on_resumed(self) -> None:
        self.adapter._connection(up=True)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self.adapter._on_interaction(interaction)

    async def on_raw_poll_vote_add(self, payload: discord.RawPollVoteActionEvent) -> None:
        self.adapter._on_vote(payload, VoteChange.ADD)

    async def on_raw_poll_vote_remove(self, payload: discord.RawPollVoteActionEvent) -> None:
        self.adapter._on_vote(payload, VoteChange.REMOVE)


class _ShardedClient(_Client, discord.AutoShardedClient):
    """The same client holding several gateway shards (`[discord] shard_count` / `shard_ids`): Discord sends
    each shard the events of its guilds ((guild id >> 22) % shard_count), and direct messages to shard 0."""


@dataclass
class _Pending:
    """An interaction the core has not answered yet; `Invocation.handle` on Discord."""

    interaction: discord.Interaction[Any]
    private_guess: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    deferred: bool | None = None  # None: not deferred; else whether the deferral was ephemeral
    answered: bool = False


def intents(*, members: bool = False) -> discord.Intents:
    """Only what the bot needs: guilds (channels, threads, roles) and poll votes; with `members` (`[discord]
    members_intent`) the privileged GUILD_MEMBERS too, which lets it list a server's members."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_polls = True
    wanted.members = members
    return wanted


MEMBERS_INTENT_REFUSED = (
    "Discord refused the Server Members intent (gateway close code 4014, Disallowed intent(s)), which "
    "[discord] members_intent = true asks for: it is off for this bot. Turn on \"Server Members Intent\" under "
    "Privileged Gateway Intents on the bot's page in the Developer Portal "
    "(https://discord.com/developers/applications) and restart circlebot, or set members_intent = false. Running "
    "without it meanwhile: of the organisers by role or Manage Server, only those the bot has seen use it "
    "(a command or a button) are told what organisers are told.")


def apply_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Point discord.py at a REST proxy / another gateway (process-wide, as discord.py has it)."""
    if api_base:
        discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class DiscordAdapter:
    """Circlebot on Discord. Construct it, hand it to the core, and the core runs it."""

    platform = PLATFORM
    prefix = "/"
    reidentify_pause = 5.0  # seconds before identifying again after a session was lost (discord.py's default)
    poll_limits = PollLimits(question_chars=300, answers=10, answer_chars=55, min_hours=1, max_hours=768)
    # Discord checks a nonce "in the past few minutes": count on two
    dedup_window = timedelta(minutes=2)
    direct_interval = 1.0  # seconds between direct messages: Discord blocks bots that open many DMs quickly
    STANDING = "organisers"  # its PlatformState namespace: "guild/user" -> the organiser standing seen last
    STANDING_REFRESH = timedelta(days=1)  # rewritten when seen again after this, so clean-up (30 days) keeps it

    def __init__(
        self,
        settings: DiscordSettings,
        circles: Sequence[CircleSettings],
        commands: Sequence[Command],
        lookups: Lookups,
        *,
        token: str | None = None,
        clock: Callable[[], datetime] | None = None,
        defer_after: float = 2.0,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        self._settings = settings
        self._token = token if token is not None else os.environ.get(settings.token_env, "")
        if not self._token:
            raise ValueError(f"the Discord bot token is missing: set the environment variable {settings.token_env}")
        self._commands = list(commands)
        self.syntax = Syntax("/", slash=True, label=lambda c: " ".join(discord_path(c, self._commands)))
        self._paths = core_paths(commands)
        self._private = {c.path: c.private for c in commands}
        self._by_path = {c.path: c for c in commands}
        self._params = {c.path: {p.name: p for p in c.params} for c in commands}
        self._lookups = lookups
        self._clock = clock or (lambda: datetime.now(UTC))
        self._defer_after = defer_after
        self._guild_ready_timeout = guild_ready_timeout
        self._guilds = [int(g) for g in settings.guilds]
        self._channels = {ch for c in circles for ch in c.where.discord_channels}
        # what makes an organiser in some circle: these roles, and Manage Server where a circle counts it
        self._organiser_roles = frozenset(r for c in circles for r in c.organisers.discord_roles)
        self._manage_counts = any(c.organisers.discord_manage_server for c in circles)
        # (guild, user) -> (organiser roles held, manages the server, when written); None until read
        self._standing: dict[tuple[str, str], tuple[frozenset[str], bool, datetime]] | None = None
        self._standing_lock = asyncio.Lock()
        self.members_intent = False  # whether the gateway took GUILD_MEMBERS (asked for by `members_intent`)
        self._dispatch: Dispatch | None = None
        self._client: _Client | None = None
        # raw vote events in arrival order, and read-back requests (a future, set once done) among them
        self._votes: asyncio.Queue[VoteCast | asyncio.Future[None]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy: set[asyncio.Task[Any]] = set()
        self.ready = asyncio.Event()
        self.mirrors_meetings = settings.scheduled_events  # [discord] scheduled_events
        self.connected = False  # the gateway's connection, as /readyz and /metrics report it
        self.reconnects = 0
        self._was_connected = False
        self.votes_handled = 0
        self.synced: list[dict[str, Any]] = []

    # running --------------------------------------------------------------------------------------
    async def serve(self, dispatch: Dispatch) -> None:
        """Log in, sync the slash commands, and serve (reconnecting as needed) until cancelled."""
        self._dispatch = dispatch
        apply_endpoints(self._settings.api_base, self._settings.gateway_url)
        kind: type[_Client] = _Client
        shards: dict[str, Any] = {}
        if self._settings.shard_count is not None:
            kind = _ShardedClient
            shards = {"shard_count": self._settings.shard_count}
            if self._settings.shard_ids is not None:
                shards["shard_ids"] = list(self._settings.shard_ids)
            log.info("Discord: shards %s of %d", ", ".join(map(str, self._settings.shard_ids
                                                              or range(self._settings.shard_count))),
                     self._settings.shard_count)
        self._spawn(self._vote_worker(), "discord-votes")
        members = self._settings.members_intent
        try:
            while True:
                # members are listed by REST when needed (any process can, whichever shard has the server), so
                # the gateway need not send them all at start
                client = kind(self, intents=intents(members=members), guild_ready_timeout=self._guild_ready_timeout,
                              allowed_mentions=NO_MENTIONS, chunk_guilds_at_startup=False, **shards)
                self._client = client
                self.members_intent = members
                try:
                    await client.start(self._token, reconnect=True)
                    break
                except discord.PrivilegedIntentsRequired:
                    if not members:
                        raise
                    log.error(MEMBERS_INTENT_REFUSED)
                    members = False
                    with contextlib.suppress(Exception):
                        await client.close()
        finally:
            try:
                if self.ready.is_set():  # stopping: what was received is stored and answered first
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.drain(), STOP_DRAIN)
            finally:
                self.ready.clear()
                if self._client is not None:
                    with contextlib.suppress(Exception):
                        await self._client.close()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def drain(self) -> None:
        """Wait until every interaction in hand has been answered and every vote received has been stored."""
        while self._busy:
            await asyncio.wait(set(self._busy))
        await self._votes.join()

    async def _setup(self, client: _Client) -> None:
        client.add_dynamic_items(RsvpButton, CheckInButton, ReadButton)
        payload = command_payloads(self._commands)
        app_id = client.application_id
        assert app_id is not None
        if self._guilds:
            for gid in self._guilds:
                await client.http.bulk_upsert_guild_commands(app_id, gid, payload)
        else:
            await client.http.bulk_upsert_global_commands(app_id, payload)
        self.synced = payload
        log.info("synced %d slash commands to %s", len(payload),
                 f"{len(self._guilds)} guild(s)" if self._guilds else "all guilds (global)")

    def _connection(self, *, up: bool) -> None:
        """The gateway connected (first, again, or resumed) or dropped; a connection after a drop is a reconnect."""
        if up and not self.connected and self._was_connected:
            self.reconnects += 1
        self.connected = up
        self._was_connected = self._was_connected or up

    async def _on_ready(self) -> None:
        """Every READY (the first, and each new session after a reconnect that could not resume, when vote
        events may have been missed): read the open polls' votes back, in turn with the live vote events."""
        request: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._votes.put_nowait(request)
        try:
            await request
        except Exception:
            log.exception("could not read back the votes cast while the bot was away")
        self.ready.set()

    # inbound: votes -------------------------------------------------------------------------------
    def _on_vote(self, payload: discord.RawPollVoteActionEvent, change: VoteChange) -> None:
        """Queue a raw vote event; one worker stores them in arrival order (add and remove of one answer do not
        commute)."""
        client = self._client
        user = client.get_user(payload.user_id) if client else None
        self._votes.put_nowait(VoteCast(
            UserRef(PLATFORM, str(payload.user_id), user.display_name if user else ""),
            (payload.answer_id - 1,),
            self._clock(),
            message=MessageRef(ChannelRef(PLATFORM, str(payload.channel_id)), str(payload.message_id)),
            change=change,
        ))

    async def _vote_worker(self) -> None:
        """Store vote events in arrival order (a burst in one go) and run read-backs in their turn, so live
        events apply on top of what was read. Votes the database could not take are offered again."""
        delay = 0.05
        while True:
            item = await self._votes.get()
            batch: list[VoteCast] = []
            request: asyncio.Future[None] | None = None
            while True:
                if not isinstance(item, VoteCast):
                    request = item
                    break
                batch.append(item)
                if self._votes.empty() or len(batch) >= VOTE_BATCH:
                    break
                item = self._votes.get_nowait()
            try:
                while batch and self._dispatch is not None:
                    try:
                        await self._dispatch(batch)
                        delay = 0.05
                        break
                    except NotStored as e:
                        log.warning("could not store %d vote(s) (%s); trying again in %.2f s", len(batch), e, delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                    except Exception:
                        log.exception("could not store %d vote(s)", len(batch))
                        break
                if request is not None:
                    try:
                        await self._recover_votes()
                        if not request.done():
                            request.set_result(None)
                    except Exception as e:
                        if not request.done():
                            request.set_exception(e)
            finally:
                self.votes_handled += len(batch)
                for _ in range(len(batch) + (request is not None)):
                    self._votes.task_done()

    async def _recover_votes(self) -> None:
        """Read every open native poll's voters back from Discord; the core makes the native ballots exactly what
        Discord holds (a vote withdrawn while the bot was away is withdrawn; a later ``/vote`` stays)."""
        client = self._client
        if client is None or self._dispatch is None:
            return
        now = self._clock()
        # a secret poll is a plain message: its votes are all /vote
        for ref, n_answers in [(p.message, p.answers) for p in await self._lookups.open_polls() if not p.secret]:
            ballots: dict[int, list[int]] = {}
            names: dict[int, str] = {}
            try:
                for answer_id in range(1, n_answers + 1):
                    after: int | None = None
                    while True:
                        page = await client.http.get_poll_answer_voters(int(ref.channel.id), int(ref.id), answer_id,
                                                                        after=after, limit=100)
                        users = page.get("users", [])
                        for u in users:
                            uid = int(u["id"])
                            ballots.setdefault(uid, []).append(answer_id - 1)
                            names[uid] = str(u.get("global_name") or u.get("username") or "")
                        if len(users) < 100:
                            break
                        after = max(int(u["id"]) for u in users)
            except discord.HTTPException as e:
                log.warning("could not read the voters of poll message %s (%s)", ref.id, e.status)
                continue
            await self._dispatch(PollReadBack(ref, tuple(
                VoteCast(UserRef(PLATFORM, str(uid), names[uid]), tuple(answers), now, message=ref)
                for uid, answers in ballots.items()), now, timed=False))
            if ballots:
                log.info("read back %d native ballot(s) of poll message %s", len(ballots), ref.id)

    # inbound: interactions ------------------------------------------------------------------------
    def _user(self, interaction: discord.Interaction[Any]) -> tuple[UserRef, Authority]:
        user = interaction.user
        roles: frozenset[str] = frozenset()
        if isinstance(user, discord.Member):
            roles = frozenset(str(r.id) for r in user.roles)
        perms = interaction.permissions
        return (UserRef(PLATFORM, str(user.id), user.display_name),
                Authority(roles=roles, manages_server=perms.manage_guild or perms.administrator))

    async def _on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        self._note_standing(interaction)
        task = asyncio.current_task()
        if task is not None:
            self._busy.add(task)
        try:
            if interaction.type is discord.InteractionType.application_command:
                await self._on_command(interaction)
            elif interaction.type is discord.InteractionType.autocomplete:
                await self._on_autocomplete(interaction)
        except Exception:
            log.exception("could not handle a Discord interaction")
        finally:
            if task is not None:
                self._busy.discard(task)

    # organisers by role -----------------------------------------------------------------------------
    def _standing_of(self, member: discord.Member, manages: bool) -> tuple[frozenset[str], bool]:
        """What makes `member` an organiser of some circle: the organiser roles they hold, and whether they
        manage the server where a circle counts that."""
        return (frozenset(str(r.id) for r in member.roles) & self._organiser_roles, manages and self._manage_counts)

    def _note_standing(self, interaction: discord.Interaction[Any]) -> None:
        """Every interaction carries its member's roles and permissions (no intent needed): remember who holds an
        organiser role or Manage Server, and forget who no longer does, writing only what changed (or, once a
        day, what is still so)."""
        user = interaction.user
        if interaction.guild_id is None or not isinstance(user, discord.Member) or user.bot:
            return
        perms = interaction.permissions
        roles, manages = self._standing_of(user, perms.manage_guild or perms.administrator)
        key = (str(interaction.guild_id), str(user.id))
        if self._standing is not None:
            known = self._standing.get(key)
            if known is None and not roles and not manages:
                return
            if known is not None and known[:2] == (roles, manages) and (
                    self._clock() - known[2] < self.STANDING_REFRESH):
                return
        self._spawn(self._keep_standing(key, roles, manages), "discord-standing")

    async def _keep_standing(self, key: tuple[str, str], roles: frozenset[str], manages: bool) -> None:
        """Record (guild, user)'s organiser standing as seen now in the database, or forget it when there is
        none; reads what earlier runs recorded the first time, one at a time."""
        state = self._lookups.state
        async with self._standing_lock:
            if self._standing is None:
                loaded: dict[tuple[str, str], tuple[frozenset[str], bool, datetime]] = {}
                for item, value in await state.items(self.STANDING):
                    guild, _, user = item.partition("/")
                    data = json.loads(value)
                    loaded[(guild, user)] = (frozenset(data.get("roles", ())), bool(data.get("manage")),
                                             datetime.min.replace(tzinfo=UTC))
                self._standing = loaded
            known = self._standing.get(key)
            if not roles and not manages:
                if known is not None:
                    await state.delete(self.STANDING, "/".join(key))
                    del self._standing[key]
                return
            now = self._clock()
            if known is not None and known[:2] == (roles, manages) and now - known[2] < self.STANDING_REFRESH:
                return
            await state.put(self.STANDING, "/".join(key), json.dumps({"roles": sorted(roles), "manage": manages}))
            self._standing[key] = (roles, manages, now)

    async def organisers_by_role(self, where: ChannelRef, roles: Sequence[str], manage_server: bool
                                 ) -> list[UserRef]:
        """The members of the server of channel `where` holding one of `roles` now (or, with `manage_server`,
        Manage Server or Administrator; the owner has both), people only.

        With the members intent (`[discord] members_intent`, granted) every member of the server is listed
        (List Guild Members, 1,000 a page). Without it Discord lets a bot list nobody, so these are the
        members the bot has seen act (every interaction carries the member's roles and permissions), each
        checked again now with Get Guild Member (which needs no intent): one who left, or whose role was taken
        away, is not told, and forgotten."""
        client = self._live()
        channel = client.get_channel(int(where.id)) or await client.fetch_channel(int(where.id))
        place = getattr(channel, "guild", None)
        if place is None:
            return []
        guild = client.get_guild(place.id) or await client.fetch_guild(place.id)
        wanted = frozenset(roles)

        def organiser(m: discord.Member) -> bool:
            perms = m.guild_permissions
            return not m.bot and (bool(wanted & {str(r.id) for r in m.roles})
                                  or (manage_server and (perms.manage_guild or perms.administrator)))

        def person(m: discord.Member) -> UserRef:
            return UserRef(PLATFORM, str(m.id), m.display_name)

        if self.members_intent:
            try:
                return [person(m) async for m in guild.fetch_members(limit=None) if organiser(m)]
            except discord.HTTPException as e:
                log.warning("could not list the members of Discord server %s (%s %s: %s); telling the organisers "
                            "by role the bot has seen act", guild.id, e.status, e.code, e.text)
        out: list[UserRef] = []
        held: set[str] = set()  # the roles of `roles` someone known holds
        for item, _ in await self._lookups.state.items(self.STANDING):
            gid, _, uid = item.partition("/")
            if gid != str(guild.id) or not uid.isdigit():
                continue
            try:
                member: discord.Member | None = await guild.fetch_member(int(uid))
            except discord.NotFound:
                member = None  # left the server
            if member is not None and organiser(member):
                out.append(person(member))
                held |= wanted & {str(r.id) for r in member.roles}
            perms = member.guild_permissions if member is not None else None
            now_held = (self._standing_of(member, bool(perms and (perms.manage_guild or perms.administrator)))
                        if member is not None else (frozenset[str](), False))
            await self._keep_standing((gid, uid), *now_held)
        # the roles of this server (a circle on two servers names the roles of both) whose holders are unknown
        unknown = sorted(r for r in wanted - held if r.isdigit() and guild.get_role(int(r)) is not None)
        if unknown:
            log.warning("the bot has not seen anyone holding the organiser role(s) %s of Discord server %s use it, "
                        "so no holder of them is told: set [discord] members_intent = true (with \"Server Members "
                        "Intent\" on in the Developer Portal), have them use the bot once (any command), or name "
                        "them in discord_users", ", ".join(unknown), guild.id)
        return out

    async def _on_command(self, interaction: discord.Interaction[Any]) -> None:
        assert self._dispatch is not None
        path, options, _ = parse_command_data(dict(interaction.data or {}), self._paths)
        user, authority = self._user(interaction)
        pending = _Pending(interaction, self._private.get(path, False))
        inv = Invocation(user, _circle_channel(interaction), self._clock(), path=path,
                         options=options, authority=authority, handle=pending)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._defer_after, lambda: self._spawn(self._defer(pending), "discord-defer"))
        try:
            await self._dispatch(inv)
        finally:
            timer.cancel()

    async def _defer(self, pending: _Pending) -> None:
        async with pending.lock:
            if pending.answered or pending.interaction.response.is_done():
                return
            await pending.interaction.response.defer(ephemeral=pending.private_guess, thinking=True)
            pending.deferred = pending.private_guess

    async def _on_autocomplete(self, interaction: discord.Interaction[Any]) -> None:
        path, options, focused = parse_command_data(dict(interaction.data or {}), self._paths)
        param = self._params.get(path, {}).get(focused or "")
        found: list[tuple[str, str | int]] = []
        if param is not None and param.type.complete is not None:
            channel = _circle_channel(interaction)
            found = await self._lookups.choices(param.type.complete, channel, str(options.get(param.name) or ""))
        await interaction.response.autocomplete(
            [app_commands.Choice(name=label, value=value) for label, value in found[:25]]
        )

    async def _on_button(self, interaction: discord.Interaction[Any], meeting: int, answer: RsvpAnswer | None) -> None:
        def event(user: UserRef, now: datetime, ref: MessageRef | None) -> Event:
            if answer is None:
                return CheckInCast(user, now, meeting_id=meeting, message=ref)
            return RsvpCast(user, answer, now, meeting_id=meeting, message=ref)

        await self._on_click(interaction, meeting, event)

    async def _on_read_button(self, interaction: discord.Interaction[Any], meeting: int, answer: str) -> None:
        await self._on_click(interaction, meeting, lambda user, now, ref: ProgressCast(
            user, answer, now, meeting_id=meeting, message=ref))

    async def _on_click(self, interaction: discord.Interaction[Any], meeting: int,
                        event: Callable[[UserRef, datetime, MessageRef | None], Event]) -> None:
        """A button on a meeting's post: its event dispatched, and what the bot says told to the clicker alone."""
        assert self._dispatch is not None
        user, _ = self._user(interaction)
        ref = MessageRef(ChannelRef(PLATFORM, str(interaction.channel_id)), str(interaction.message.id)) if (
            interaction.message) else None
        try:
            outcome = await self._dispatch(event(user, self._clock(), ref))
        except NotStored:  # a click is not offered again by Discord: the member is asked to
            outcome = "Sorry, that was not saved (the bot's database is busy). Please click again in a moment."
        text = self._markdown(outcome) if outcome else f"Noted (meeting #{meeting})."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # outbound -------------------------------------------------------------------------------------
    def _markdown(self, text: Text | str) -> str:
        """A post's text as Discord Markdown, commands written as the slash commands they are."""
        return discord_markdown(text, self._slash)

    def _slash(self, ref: CommandRef) -> str:
        command = self._by_path.get(ref.path)
        return self.syntax.example(command, **dict(ref.values)) if command else "/" + ref.words

    def _live(self) -> _Client:
        if self._client is None or self._client.is_closed():
            raise RuntimeError("the Discord adapter is not connected")
        return self._client

    async def _channel(self, channel_id: str) -> discord.abc.Messageable:
        client = self._live()
        channel = client.get_channel(int(channel_id)) or await client.fetch_channel(int(channel_id))
        if not isinstance(channel, discord.abc.Messageable):
            raise RuntimeError(f"Discord channel {channel_id} cannot take messages")
        return channel

    def _content(self, post: Post) -> tuple[list[str], discord.AllowedMentions]:
        text = self._markdown(post.content)
        allowed = NO_MENTIONS
        if post.mentions and post.notify:
            pings = " ".join(f"<@{u.id}>" for u in post.mentions if u.platform == PLATFORM and u.id.isdigit())
            if pings:
                text = f"{pings} {text}"
                allowed = discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                                  users=[discord.Object(int(u.id)) for u in post.mentions
                                                         if u.platform == PLATFORM and u.id.isdigit()])
        return split_text(text, MESSAGE_LIMIT) or ["…"], allowed

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Post into a channel (or into a thread on `post.thread_of`, created on first use); buttons for the
        post's controls go on its last message.

        With `key`, each message goes with a nonce derived from it and discord.py sets `enforce_nonce`, so
        sending the post again within Discord's few minutes (`dedup_window`) returns the messages already
        posted, buttons and all, instead of posting twice."""
        target = await self._thread_for(post) if post.thread_of is not None else await self._channel(where.id)
        chunks, allowed = self._content(post)
        view = controls_view(post)
        first: discord.Message | None = None
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            extra: dict[str, Any] = {}
            if key is not None:
                extra["nonce"] = idempotency_token(key, f"chunk{i}", NONCE_CHARS)
            if view is not None and last:
                extra["view"] = view
            msg = await target.send(chunk, allowed_mentions=allowed, **extra)
            first = first or msg
        assert first is not None
        return MessageRef(ChannelRef(PLATFORM, str(first.channel.id)), str(first.id))

    async def mirror_meeting(self, circle: str, channels: Sequence[ChannelRef], event: MeetingEvent | None,
                             cancelled: frozenset[int]) -> None:
        """The circle's next meeting as a Guild Scheduled Event in each guild it lives in (external, with its
        channel as the location): created, modified when the meeting moves, cancelled with it, deleted (and
        replaced by the next meeting's) once it ended. What the bot made is kept as a setting per circle and
        guild, so it edits its own event after a restart."""
        client = self._live()
        guilds: dict[int, discord.abc.GuildChannel] = {}
        for where in channels:
            found = client.get_channel(int(where.id))
            if isinstance(found, discord.abc.GuildChannel) and found.guild.id not in guilds:
                guilds[found.guild.id] = found
        for place in guilds.values():
            await self._mirror_in(circle, place, event, cancelled)

    async def _mirror_in(self, circle: str, channel: discord.abc.GuildChannel, event: MeetingEvent | None,
                         cancelled: frozenset[int]) -> None:
        guild, state = channel.guild, self._lookups.state
        key = f"scheduled_event:{circle}:{guild.id}"
        raw = await state.setting(key)
        stored: dict[str, Any] | None = json.loads(raw) if raw else None
        if stored is not None and (event is None or stored["meeting"] != event.meeting_id):
            old = await self._scheduled_event(guild, int(stored["event"]))
            if old is not None and old.status in (discord.EventStatus.scheduled, discord.EventStatus.active):
                if stored["meeting"] in cancelled and old.status is discord.EventStatus.scheduled:
                    await old.cancel(reason="the meeting is cancelled")
                else:
                    await old.delete(reason="the meeting is over, or another comes first")
            stored = None
            await state.set_setting(key, "")
        if event is None:
            return
        shown = {"meeting": event.meeting_id, "name": event.name, "description": event.description,
                 "start": event.starts_at.isoformat(), "end": event.ends_at.isoformat()}
        if stored is not None and all(stored.get(k) == v for k, v in shown.items()):
            return
        location = f"#{channel.name}"[:100]
        current = await self._scheduled_event(guild, int(stored["event"])) if stored is not None else None
        if current is not None:
            made = await current.edit(name=event.name, description=event.description, start_time=event.starts_at,
                                      end_time=event.ends_at, location=location, reason="the meeting moved")
        else:
            made = await guild.create_scheduled_event(
                name=event.name, description=event.description, start_time=event.starts_at, end_time=event.ends_at,
                location=location, entity_type=discord.EntityType.external,
                privacy_level=discord.PrivacyLevel.guild_only)
        await state.set_setting(key, json.dumps({**shown, "event": made.id}))

    @staticmethod
    async def _scheduled_event(guild: discord.Guild, event_id: int) -> discord.ScheduledEvent | None:
        found = guild.get_scheduled_event(event_id)
        if found is not None:
            return found
        try:
            return await guild.fetch_scheduled_event(event_id)
        except discord.NotFound:
            return None

    async def send_direct(self, user: UserRef, post: Post, *, key: str | None = None) -> MessageRef:
        """A direct message (`POST /users/@me/channels` opens the DM channel, or returns the one there is). A
        member who does not take them (50007, or 50278: no server in common) or is unknown raises
        `DirectRefused`."""
        if user.platform != PLATFORM or not user.id.isdigit():
            raise DirectRefused(f"{user.id!r} is not a Discord user")
        client = self._live()
        text = self._markdown(post.content)
        try:
            target = client.get_user(int(user.id)) or await client.fetch_user(int(user.id))
            channel = target.dm_channel or await target.create_dm()
            first: discord.Message | None = None
            for i, chunk in enumerate(split_text(text, MESSAGE_LIMIT) or ["…"]):
                extra: dict[str, Any] = {}
                if key is not None:
                    extra["nonce"] = idempotency_token(key, f"chunk{i}", NONCE_CHARS)
                msg = await channel.send(chunk, allowed_mentions=NO_MENTIONS, **extra)
                first = first or msg
        except discord.Forbidden as e:
            if e.code in (50007, 50278):
                raise DirectRefused(f"Discord: {e.text} ({e.code})") from e
            raise
        except discord.NotFound as e:
            raise DirectRefused(f"Discord: {e.text} ({e.code})") from e
        assert first is not None
        return MessageRef(ChannelRef(PLATFORM, str(first.channel.id)), str(first.id))

    async def _thread_for(self, post: Post) -> discord.abc.Messageable:
        assert post.thread_of is not None
        client = self._live()
        existing = client.get_channel(int(post.thread_of.id))  # a thread on a message has the message's id
        if isinstance(existing, discord.Thread):
            return existing
        parent = await self._channel(post.thread_of.channel.id)
        if not isinstance(parent, discord.TextChannel):
            raise RuntimeError(f"cannot start a thread in Discord channel {post.thread_of.channel.id}")
        message = parent.get_partial_message(int(post.thread_of.id))
        first_line = (plain_text(self._markdown(post.content)).splitlines() or [""])[0]
        name = _clip(first_line.strip() or "Discussion", 100)
        try:
            return await message.create_thread(name=name, auto_archive_duration=1440)
        except discord.HTTPException as e:
            if e.code != 160004:  # a thread exists already (not in our cache)
                raise
            fetched = await client.fetch_channel(int(post.thread_of.id))
            assert isinstance(fetched, discord.Thread)
            return fetched

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        """Answer an interaction; follow up if it was deferred; after the token expired, post in the channel."""
        pending = to.handle if isinstance(to.handle, _Pending) else None
        chunks, allowed = self._content(post)
        if pending is None:
            await self._fallback(to, chunks, allowed, private)
            return
        inter = pending.interaction
        async with pending.lock:
            if datetime.now(UTC) - inter.created_at > TOKEN_LIFETIME:
                pending.answered = True
                await self._fallback(to, chunks, allowed, private)
                return
            rest = chunks
            if not inter.response.is_done():
                await inter.response.send_message(chunks[0], ephemeral=private, allowed_mentions=allowed)
                rest = chunks[1:]
            elif pending.deferred is not None and pending.deferred != private and not pending.answered:
                # the "thinking…" message has the wrong visibility: remove it, then follow up with the right one
                with contextlib.suppress(*ORIGINAL_DELETED_OK):
                    await inter.delete_original_response()
            try:
                for chunk in rest:
                    await inter.followup.send(chunk, ephemeral=private, allowed_mentions=allowed)
            except discord.NotFound:
                await self._fallback(to, rest, allowed, private)
            finally:
                pending.answered = True

    async def send_file(self, to: Invocation, file: FileUpload, post: Post, *, private: bool = False) -> None:
        """Answer an interaction with `post` and the file attached to its last message (a multipart upload),
        as `reply` answers: the response, else a follow-up; after the token expired, in the channel (never
        when private)."""
        pending = to.handle if isinstance(to.handle, _Pending) else None
        chunks, allowed = self._content(post)
        *first, last = chunks or [""]

        def attachment() -> discord.File:
            return discord.File(io.BytesIO(file.data), filename=file.name)

        if pending is None or datetime.now(UTC) - pending.interaction.created_at > TOKEN_LIFETIME:
            if pending is not None:
                pending.answered = True
            if private:
                log.warning("a private file for %s could not be delivered (interaction expired)", to.user.id)
                return
            channel = await self._channel(to.channel.id)
            for chunk in first:
                await channel.send(chunk, allowed_mentions=allowed)
            await channel.send(last, file=attachment(), allowed_mentions=allowed)
            return
        inter = pending.interaction
        async with pending.lock:
            try:
                rest = [*first, last]
                if not inter.response.is_done():
                    if first:
                        await inter.response.send_message(first[0], ephemeral=private, allowed_mentions=allowed)
                        rest = rest[1:]
                    else:
                        await inter.response.send_message(last, file=attachment(), ephemeral=private,
                                                          allowed_mentions=allowed)
                        rest = []
                elif pending.deferred is not None and pending.deferred != private and not pending.answered:
                    with contextlib.suppress(*ORIGINAL_DELETED_OK):
                        await inter.delete_original_response()
                for i, chunk in enumerate(rest):
                    if i == len(rest) - 1:
                        await inter.followup.send(chunk, file=attachment(), ephemeral=private, allowed_mentions=allowed)
                    else:
                        await inter.followup.send(chunk, ephemeral=private, allowed_mentions=allowed)
            finally:
                pending.answered = True

    async def _fallback(self, to: Invocation, chunks: list[str], allowed: discord.AllowedMentions,
                        private: bool) -> None:
        if private:
            log.warning("a private answer to %s could not be delivered (interaction expired)", to.user.id)
            return
        channel = await self._channel(to.channel.id)
        for chunk in chunks:
            await channel.send(chunk, allowed_mentions=allowed)

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        """A native Discord poll; a secret poll is a plain message (Discord shows native counts to voters)."""
        channel = await self._channel(where.id)
        rules = self._markdown(poll.rules())
        try:
            if poll.secret:
                lines = [discord_markdown(f"📊 **Poll #{poll.id}** (secret until it closes): {poll.question}")]
                lines += [discord_markdown(f"{i}. {a}") for i, a in enumerate(poll.answers, 1)]
                lines.append(f"({rules}) Vote with `{poll.vote_hint}`; only you see your vote.")
                msg = await channel.send(split_text("\n".join(lines), MESSAGE_LIMIT)[0],
                                         allowed_mentions=NO_MENTIONS)
            else:
                hours = DEFAULT_POLL_HOURS
                if poll.closes_at is not None:
                    left = (poll.closes_at - self._clock()).total_seconds() / 3600
                    hours = min(768, max(1, int(left + 0.999)))
                native = discord.Poll(question=poll.question, duration=timedelta(hours=hours), multiple=poll.multi)
                for answer in poll.answers:
                    native.add_answer(text=answer)
                msg = await channel.send(f"📊 **Poll #{poll.id}** ({rules})", poll=native,
                                         allowed_mentions=NO_MENTIONS)
        except discord.Forbidden as e:
            if e.code != MISSING_PERMISSIONS:
                raise
            raise PlatformRefused(self._missing_permissions(channel, native=not poll.secret)) from e
        return MessageRef(ChannelRef(PLATFORM, str(msg.channel.id)), str(msg.id))

    def _missing_permissions(self, channel: discord.abc.Messageable, *, native: bool) -> str:
        """What to tell an organiser when Discord answered 403 Missing Permissions (code 50013), which does
        not say which permission: the ones the bot lacks there, by discord.py's view of its roles."""
        needed = {"view_channel": "View Channel", "send_messages": "Send Messages"}
        if native:
            needed["send_polls"] = "Send Polls"
        where = f"#{channel.name}" if isinstance(channel, discord.abc.GuildChannel) else "this channel"
        missing = list(needed.values())
        if isinstance(channel, discord.abc.GuildChannel):
            perms = channel.permissions_for(channel.guild.me)
            missing = [label for name, label in needed.items() if not getattr(perms, name)] or missing
        names = " and ".join(", ".join(missing).rsplit(", ", 1))
        return (f"circlebot lacks the {names} permission{'s' if len(missing) > 1 else ''} in {where}. "
                f"Give circlebot's role {names} there (Server Settings → Roles, or the channel's Permissions), "
                "then open the poll again")

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        """End the native poll early (Discord's expire endpoint) and post the results as a reply to it."""
        client = self._live()
        if not results.poll.secret:
            try:
                await client.http.end_poll(int(ref.channel.id), int(ref.id))
            except discord.HTTPException as e:
                if e.code not in (520001, 10008):  # already ended / message gone: the results still go out
                    raise
        channel = await self._channel(ref.channel.id)
        chunks = split_text(self._markdown(text), MESSAGE_LIMIT)
        reference = discord.MessageReference(message_id=int(ref.id), channel_id=int(ref.channel.id),
                                             fail_if_not_exists=False)
        for i, chunk in enumerate(chunks):
            if i == 0:
                await channel.send(chunk, allowed_mentions=NO_MENTIONS, reference=reference)
            else:
                await channel.send(chunk, allowed_mentions=NO_MENTIONS)


def _circle_channel(interaction: discord.Interaction[Any]) -> ChannelRef:
    """The channel a command belongs to: where it was typed, or for a thread (a meeting's questions) the
    channel the thread is in, whose circle it is."""
    channel = interaction.channel
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return ChannelRef(PLATFORM, str(channel.parent_id))
    return ChannelRef(PLATFORM, str(interaction.channel_id))

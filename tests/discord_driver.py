"""The Discord driver: the whole bot (core + DiscordAdapter + real discord.py) against the loopback fake Discord.

Members type slash commands (`say` turns a text command into the equivalent slash-command interaction, the
way a member would fill in the options) and vote in native polls (`vote`); what they see is the interaction's
response or follow-up, ephemeral or not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from circlebot.adapters.discord import DiscordAdapter, discord_path
from circlebot.adapters.lookups import AppLookups
from circlebot.adapters.render import plain_text
from circlebot.app import App
from circlebot.config import Settings
from circlebot.core.commands import Command, CommandTable, Param, UsageError, Word, assign_words
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from drivers import Answer, FakeClock, Unsendable
from fakediscord import FLAG_EPHEMERAL, FakeChannel, FakeDiscord, FakeGuild, FakeMember, FakeRole

TOKEN_ENV = "CIRCLEBOT_TEST_DISCORD_TOKEN"


def discord_settings(tmp_path: Path, fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel,
                     organisers: FakeRole, database: str | None = None, **circle: Any) -> Settings:
    """Settings for one circle living in `channel`, organised by the `organisers` role (on `database`: a
    SQLite file in tmp_path by default)."""
    return make_settings(
        tmp_path,
        **({"database": database} if database is not None else {}),
        circles=[circle_config(where={"console": False, "discord_channels": [str(channel.id)]},
                               organisers={"console": [], "discord_roles": [str(organisers.id)]}, **circle)],
        discord={"token_env": TOKEN_ENV, "guilds": [str(guild.id)], "api_base": fake.api_base,
                 "gateway_url": fake.gateway_url},
    )


def _typed(p: Param, text: str) -> Any:
    """A value as Discord's client would accept it for the option, or Unsendable."""
    if p.type.choices and not p.greedy:
        if text not in p.type.choices:
            raise Unsendable(f"{text!r} is not one of the choices of {p.name}")
        return text
    kind = "str" if p.greedy else p.type.kind
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise Unsendable(f"{text!r} is not a {kind} for {p.name}") from None
    return text


def _quote(w: Word) -> str:
    if w.quoted or any(c.isspace() or c == '"' for c in w.text) or not w.text:
        return '"' + w.text.replace('"', '\\"') + '"'
    return w.text


def to_slash(table: CommandTable, text: str) -> tuple[Command, str, dict[str, Any]]:
    """The slash command (name path and options) a member would fill in for a text command."""
    try:
        command, words = table.resolve(text)
    except UsageError as e:
        raise Unsendable(str(e)) from None
    try:
        assigned = assign_words(command, words)
    except UsageError as e:
        raise Unsendable(str(e)) from None  # a missing option, an unknown one: Discord's form refuses it
    values: dict[str, Any] = {}
    for p in command.params:
        got = assigned.get(p.name)
        if isinstance(got, bool):
            values[p.name] = got
        elif isinstance(got, tuple):
            values[p.name] = " ".join(_quote(w) for w in got)
        elif got is not None:
            values[p.name] = _typed(p, got.text)
    return command, " ".join(discord_path(command, table.commands)), values


class DiscordDriver:
    """Drives the bot through Discord (tier 3)."""

    organiser = "olga"

    def __init__(self, fake: FakeDiscord, app: App, clock: FakeClock, guild: FakeGuild, channel: FakeChannel,
                 organisers: FakeRole) -> None:
        self.fake = fake
        self.app = app
        self.clock = clock
        self.guild = guild
        self.channel = channel
        self.organisers = organisers
        self.members: dict[str, FakeMember] = {}
        self.adapter: DiscordAdapter | None = None
        self._task: asyncio.Task[None] | None = None
        self._expected_votes = 0
        self.defer_after = 2.0

    # lifecycle ----------------------------------------------------------------------------------
    def make_adapter(self) -> DiscordAdapter:
        settings = self.app.settings
        assert settings.discord is not None
        return DiscordAdapter(settings.discord, settings.circles, self.app.commands.commands,
                              AppLookups(self.app, "discord"), clock=self.clock.now, defer_after=self.defer_after,
                              guild_ready_timeout=0.05)

    async def start(self) -> DiscordAdapter:
        adapter = self.make_adapter()
        self.app.add_adapter(adapter)
        self.adapter = adapter
        self._expected_votes = 0
        self._task = asyncio.create_task(adapter.serve(self.app.dispatch), name="discord-adapter")
        ready = asyncio.create_task(adapter.ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._task.done():
                self._task.result()
            raise TimeoutError("the Discord adapter did not get ready")
        return adapter

    async def stop(self) -> None:
        if self._task is not None:
            if self.adapter is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.adapter.drain(), 5)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def restart(self) -> DiscordAdapter:
        await self.stop()
        return await self.start()

    # users ----------------------------------------------------------------------------------------
    def member(self, name: str) -> FakeMember:
        if name not in self.members:
            roles = [self.organisers] if name == self.organiser else []
            self.members[name] = self.fake.add_member(self.guild, name, roles=roles)
        return self.members[name]

    # the Driver interface -------------------------------------------------------------------------
    async def say(self, user: str, text: str) -> Answer:
        _, name, options = to_slash(self.app.commands, text)
        inter = await self.fake.slash(self.member(user), self.channel, name, options)
        response = await inter.wait_response()
        assert self.adapter is not None
        await asyncio.wait_for(self.adapter.drain(), 5)
        if response["type"] == 4:
            assert inter.original is not None
            messages = [inter.original, *inter.followups]
        else:
            messages = await inter.wait_followups()
        texts = [plain_text(m["content"]) for m in messages]
        files = tuple((a["filename"], self.fake.attachment_data[int(a["id"])]) for m in messages
                      for a in m.get("attachments") or [])
        return Answer("\n".join(texts), bool(int(messages[0]["flags"]) & FLAG_EPHEMERAL), files)

    async def poll_message(self, poll_id: int) -> int:
        refs = [r for r in await self.app.store.poll_messages(poll_id) if r.channel.platform == "discord"]
        assert refs, f"poll {poll_id} has no Discord message"
        return int(refs[0].id)

    async def vote(self, user: str, poll_id: int, answers: list[int]) -> None:
        """Vote natively: click the answers (and un-click the others); answers are 1-based."""
        mid = await self.poll_message(poll_id)
        poll = self.fake.polls.get(mid)
        assert poll is not None, f"poll {poll_id} is not a native poll"
        member = self.member(user)
        if poll.finalized:
            return  # Discord's client does not let anyone vote in an ended poll
        before = self.fake.vote_events
        mine = {aid for aid, users in poll.votes.items() if member.id in users}
        for aid in sorted(mine - set(answers)):
            await self.fake.unvote(member, mid, aid)
        for aid in answers:
            await self.fake.vote(member, mid, aid)
        await self.wait_votes(self.fake.vote_events - before)

    async def wait_votes(self, new_events: int) -> None:
        """Wait until the adapter has stored `new_events` more vote events."""
        self._expected_votes += new_events
        adapter = self.adapter
        assert adapter is not None
        await self.fake.wait_for(lambda: adapter.votes_handled >= self._expected_votes)
        await asyncio.wait_for(adapter.drain(), 5)

    def posts(self) -> list[str]:
        """What the bot posted in the circle's channel and its threads (not interaction answers)."""
        threads = [t for t in self.guild.threads.values() if t.parent_id == self.channel.id]
        return [plain_text(m["content"]) for where in (self.channel, *threads)
                for m in self.fake.channel_messages(where)
                if int(m["author"]["id"]) == self.fake.bot.id and not m.get("webhook_id")]

    async def directs(self, user: str) -> list[str]:
        return [plain_text(m["content"]) for m in self.fake.dm_messages(self.member(user))]

    async def refuse_directs(self, user: str) -> None:
        self.fake.refusing_dms.add(self.member(user).id)

    async def fail_directs(self, user: str) -> None:
        self.fake.fail_dms(self.member(user), 503)

    async def mend_directs(self, user: str) -> None:
        self.fake.mend_dms(self.member(user))

    async def pinged(self, post: str) -> set[str]:
        """Whom Discord notified for the post: its `mentions`, as the fake resolves them from the content and
        `allowed_mentions`."""
        found = [m for m in self.fake.channel_messages(self.channel)
                 if int(m["author"]["id"]) == self.fake.bot.id and plain_text(m["content"]) == post]
        assert found, f"the bot posted no {post!r}"
        names = {member.id: name for name, member in self.members.items()}
        return {names.get(int(u["id"]), u["id"]) for u in found[0]["mentions"]}


@contextlib.asynccontextmanager
async def discord_bot(fake: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: Any,
                      commands: list[Command] | None = None, database: str | None = None,
                      **circle: Any) -> AsyncIterator[DiscordDriver]:
    """The whole bot on the fake Discord, with a real SQLite file in `tmp_path` (or on `database`)."""
    guild = fake.add_guild("Study Circle")
    channel = guild.add_text_channel("study")
    organisers = guild.add_role("Organisers")
    settings = discord_settings(tmp_path, fake, guild, channel, organisers, database, **circle)
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), clock, commands)
    driver = DiscordDriver(fake, app, clock, guild, channel, organisers)
    try:
        await driver.start()
        yield driver
    finally:
        await driver.stop()
        await store.batcher.stop()
        await db.close()


@pytest.fixture(name="discord_driver")
async def discord_driver_fixture(fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock,
                                 monkeypatch: pytest.MonkeyPatch, database: str) -> AsyncIterator[DiscordDriver]:
    """The bot on the loopback Discord, driven as members do, on the test's database (SQLite unless the test
    parametrises db_kind); the fake must have seen no unknown request."""
    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch, database=database) as driver:
        yield driver
    fake_discord.assert_clean()

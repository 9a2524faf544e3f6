"""Discord organisers given by role (`discord_roles`) or Manage Server are told privately when the RSVP
deadline's `notify` fires, like those named one by one (`discord_users`), each once: the whole bot with the real
discord.py client against the loopback fake.

Without the privileged members intent the bot knows who holds an organiser role from what Discord sends with
every interaction (the member's `roles` and `permissions`), remembers them, and checks each again with Get Guild
Member (no intent needed) before telling them. With `[discord] members_intent = true` it asks for GUILD_MEMBERS
and lists the server's members (List Guild Members); if Discord refuses the intent (close code 4014) it carries
on without it and says what to do."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import turnout_scenarios
from circlebot.app import App
from circlebot.config import Settings
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from discord_driver import TOKEN_ENV, DiscordDriver
from drivers import FakeClock
from fakediscord import (
    INTENT_GUILD_MEMBERS,
    MANAGE_GUILD,
    OP_IDENTIFY,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeMember,
    FakeRole,
    fake_discord_fixture,
)

__all__ = ["fake_discord_fixture"]  # the fixture, imported so that pytest finds it here

LOW = "Low turnout for meeting #1"


def _settings(tmp_path: Path, fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel, role: FakeRole,
              users: list[FakeMember], **discord: Any) -> Settings:
    """One circle in `channel`, organised by `role`, Manage Server and the `users` named by id; quorum 3 at a
    48 h RSVP deadline, `notify` short of it."""
    return make_settings(
        tmp_path,
        circles=[circle_config(
            where={"console": False, "discord_channels": [str(channel.id)]},
            organisers={"console": [], "discord_roles": [str(role.id)], "discord_users": [str(u.id) for u in users]},
            turnout={"deadline": "48h", "quorum": 3})],
        discord={"token_env": TOKEN_ENV, "guilds": [str(guild.id)], "api_base": fake.api_base,
                 "gateway_url": fake.gateway_url, **discord},
    )


@contextlib.asynccontextmanager
async def _bot(fake: FakeDiscord, settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
               guild: FakeGuild, channel: FakeChannel, role: FakeRole,
               members: dict[str, FakeMember]) -> AsyncIterator[DiscordDriver]:
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    d = DiscordDriver(fake, App(settings, store, load_collection(settings.readings), clock), clock, guild, channel,
                      role)
    d.members.update(members)
    try:
        await d.start()
        yield d
    finally:
        await d.stop()
        await store.batcher.stop()
        await store.db.close()


def _people(fake: FakeDiscord) -> tuple[FakeGuild, FakeChannel, FakeRole, dict[str, FakeMember]]:
    """olga, pam, rita, sam and quinn hold the organisers' role; mia has Manage Server; alice neither."""
    guild = fake.add_guild("Study Circle")
    channel = guild.add_text_channel("study")
    role = guild.add_role("Organisers")
    members = {name: fake.add_member(guild, name, roles=[role])
               for name in ("olga", "pam", "rita", "sam", "quinn")}
    members["mia"] = fake.add_member(guild, "mia", permissions=MANAGE_GUILD)
    members["alice"] = fake.add_member(guild, "alice")
    return guild, channel, role, members


def _identified_intents(fake: FakeDiscord) -> list[int]:
    return [int(f["d"]["intents"]) for f in fake.gateway_received if f.get("op") == OP_IDENTIFY]


async def _low_turnout(d: DiscordDriver) -> str:
    clock = d.clock
    clock.set(turnout_scenarios.DEADLINE_DUE)
    assert d.app.timeline is not None
    await d.app.timeline.tick()
    (low,) = [p for p in d.posts() if LOW in p]
    assert "only 1 said yes by the RSVP deadline, and it needs 3" in low, low
    return low


@pytest.mark.timeout(30)
async def test_organisers_by_role_who_used_the_bot_are_told_privately_without_the_members_intent(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the members intent: the organisers the bot has seen act (a slash command), by role or Manage
    Server, get the low turnout by direct message, remembered across a restart; pam, named by id too, gets one;
    rita, whose role was taken away since, gets none, nor sam, who left the server (both forgotten), nor alice
    (no role). quinn, who holds the role but never used the bot, cannot be known without the intent (the
    README says so)."""
    fake = fake_discord
    guild, channel, role, members = _people(fake)
    settings = _settings(tmp_path, fake, guild, channel, role, [members["pam"]])
    async with _bot(fake, settings, clock, monkeypatch, guild, channel, role, members) as d:
        await turnout_scenarios.start_timeline(d)
        for name in ("olga", "pam", "rita", "sam", "mia"):
            assert "Test study circle" in await d.say(name, "circle")
        await d.say("alice", "rsvp yes")
        fake.set_roles(members["rita"], [])  # an admin takes rita's role away; the bot gets no event of it
        fake.remove_member(members["sam"])  # nor of sam leaving
        await d.restart()
        remembered = await d.app.store.adapter_state("discord").items("organisers")
        assert len(remembered) == 5, remembered  # olga, pam, rita, sam, mia
        low = await _low_turnout(d)
        for name in ("olga", "pam", "mia"):
            (told,) = await d.directs(name)
            assert LOW in told and "only 1 said yes" in told, (name, told)
        for name in ("rita", "sam", "alice", "quinn"):
            assert fake.dm_messages(members[name]) == [], name
        assert await d.pinged(low) == set()
        kept = {key.partition("/")[2] for key, _ in await d.app.store.adapter_state("discord").items("organisers")}
        assert kept == {str(members[n].id) for n in ("olga", "pam", "mia")}, kept  # rita and sam forgotten
    assert all(not i & INTENT_GUILD_MEMBERS for i in _identified_intents(fake))  # no privileged intent asked
    assert not fake.find_requests("GET", r"/guilds/\d+/members")  # nor the member list
    fake.assert_clean()


@pytest.mark.timeout(30)
async def test_with_the_members_intent_everyone_holding_an_organiser_role_is_told_once(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[discord] members_intent = true`: the bot identifies with GUILD_MEMBERS and lists the server's members,
    so everyone holding the role at the deadline is told, those who never used the bot too (quinn), and those
    with Manage Server (mia, the server's owner); pam, named by id as well, once; not alice, nor rita, whose role
    was taken away, nor the bot."""
    fake = fake_discord
    guild, channel, role, members = _people(fake)
    settings = _settings(tmp_path, fake, guild, channel, role, [members["pam"]], members_intent=True)
    async with _bot(fake, settings, clock, monkeypatch, guild, channel, role, members) as d:
        await turnout_scenarios.start_timeline(d)
        await d.say("alice", "rsvp yes")
        fake.set_roles(members["rita"], [])
        await _low_turnout(d)
        for name in ("olga", "pam", "quinn", "mia"):
            (told,) = await d.directs(name)
            assert LOW in told, (name, told)
        (owner,) = fake.dm_messages(guild.owner_id)
        assert LOW in owner["content"], owner
        for name in ("rita", "alice"):
            assert await d.directs(name) == [], name
        assert fake.dm_messages(fake.bot.id) == []
    assert all(i & INTENT_GUILD_MEMBERS for i in _identified_intents(fake)), _identified_intents(fake)
    assert fake.find_requests("GET", rf"/guilds/{guild.id}/members")
    fake.assert_clean()


@pytest.mark.timeout(30)
async def test_a_refused_members_intent_leaves_the_bot_running_and_says_what_to_do(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """`members_intent = true` while "Server Members Intent" is off in the Developer Portal: Discord closes the
    gateway with 4014 (Disallowed intent(s)). The bot logs what to do, connects without the intent, answers
    commands, and tells the organisers by role it has seen act."""
    fake = fake_discord
    fake.enabled_privileged_intents = 0
    guild, channel, role, members = _people(fake)
    settings = _settings(tmp_path, fake, guild, channel, role, [], members_intent=True)
    with caplog.at_level(logging.WARNING, logger="circlebot.adapters.discord"):
        async with _bot(fake, settings, clock, monkeypatch, guild, channel, role, members) as d:
            await turnout_scenarios.start_timeline(d)
            assert "Test study circle" in await d.say("olga", "circle")
            await d.say("alice", "rsvp yes")
            await _low_turnout(d)
            (told,) = await d.directs("olga")
            assert LOW in told, told
            assert await d.directs("quinn") == [] and await d.directs("alice") == []
    refused = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "4014" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]
    assert "Server Members Intent" in refused[0] and "members_intent = false" in refused[0], refused
    first, *then = _identified_intents(fake)
    assert first & INTENT_GUILD_MEMBERS and then and not any(i & INTENT_GUILD_MEMBERS for i in then), (first, then)
    fake.assert_clean()


@pytest.mark.timeout(30)
async def test_a_member_list_refused_at_the_deadline_falls_back_to_the_organisers_seen(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """`members_intent = true`, granted at the start, then switched off in the Developer Portal: List Guild
    Members answers 403 Missing Access (50001) at the deadline; the organisers the bot has seen act are told
    all the same, and the log says why the others are not."""
    fake = fake_discord
    guild, channel, role, members = _people(fake)
    settings = _settings(tmp_path, fake, guild, channel, role, [], members_intent=True)
    with caplog.at_level(logging.WARNING, logger="circlebot.adapters.discord"):
        async with _bot(fake, settings, clock, monkeypatch, guild, channel, role, members) as d:
            await turnout_scenarios.start_timeline(d)
            assert "Test study circle" in await d.say("olga", "circle")
            await d.say("alice", "rsvp yes")
            fake.enabled_privileged_intents = 0
            await _low_turnout(d)
            (told,) = await d.directs("olga")
            assert LOW in told, told
            assert await d.directs("quinn") == [] and await d.directs("alice") == []
    assert [r.status for r in fake.find_requests("GET", rf"/guilds/{guild.id}/members")] == [403]
    assert any("could not list the members" in r.getMessage() and "50001" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    fake.assert_clean()


@pytest.mark.timeout(30)
async def test_without_the_members_intent_a_role_nobody_was_seen_holding_is_logged_with_what_to_do(
        fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """No holder of the organisers' role has used the bot (the syllabus planned the meeting): nobody can be
    told by role without the members intent, and the log says so, naming the role and the ways out."""
    fake = fake_discord
    guild, channel, role, members = _people(fake)
    settings = _settings(tmp_path, fake, guild, channel, role, [])
    with caplog.at_level(logging.WARNING, logger="circlebot.adapters.discord"):
        async with _bot(fake, settings, clock, monkeypatch, guild, channel, role, members) as d:
            await turnout_scenarios.start_timeline(d)
            await d.say("alice", "rsvp yes")
            await _low_turnout(d)
            assert all(fake.dm_messages(m) == [] for m in members.values())
    (said,) = [r.getMessage() for r in caplog.records if "has not seen anyone holding" in r.getMessage()]
    assert str(role.id) in said and "members_intent = true" in said and "discord_users" in said, said
    fake.assert_clean()

"""Poll rules on Discord: real discord.py 2.7 against the loopback fake Discord, real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from circlebot.adapters.render import plain_text
from discord_driver import DiscordDriver, discord_bot, discord_driver_fixture  # noqa: F401
from drivers import FakeClock, number_after
from fakediscord import SEND_POLLS, FakeDiscord, fake_discord_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(30)


async def answer_to(bot: DiscordDriver, user: str, name: str, options: dict[str, object]) -> str:
    """What `user` sees after running the slash command `name` with options exactly as typed in Discord."""
    inter = await bot.fake.slash(bot.member(user), bot.channel, name, options)
    response = await inter.wait_response()
    assert bot.adapter is not None
    await bot.adapter.drain()
    messages = [inter.original, *inter.followups] if response["type"] == 4 else await inter.wait_followups()
    return "\n".join(plain_text(m["content"]) for m in messages if m)


async def test_a_poll_discord_refuses_says_which_permission_to_grant_and_leaves_no_ghost(
    fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_discord.bot_permissions &= ~SEND_POLLS  # invited without Send Polls, in a server whose members lack it
    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch) as bot:
        everyone = bot.guild.everyone
        everyone.permissions &= ~SEND_POLLS
        fake_discord.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(bot.guild.id), "role": everyone.to_dict()})
        answer = await bot.say(bot.organiser, 'poll "Which day?" "Mon" "Wed"')
        assert "is open" not in answer.text, answer
        assert "not opened" in answer and "Send Polls" in answer and "#study" in answer, answer
        assert answer.private
        refused = fake_discord.find_requests("POST", rf"/channels/{bot.channel.id}/messages")
        assert [r.status for r in refused] == [403]
        assert "there is no poll #1" in (await bot.say("alice", "vote 1 1")).text.lower()
        assert await bot.app.store.polls("study") == []
    fake_discord.assert_clean()


async def test_flags_and_quotes_inside_discord_options_are_text(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    refused = await answer_to(bot, bot.organiser, "poll open",
                              {"question": '"Which day?"', "answers": '"Mon" "Wed" --secret'})
    assert "--secret" in refused and "secret option" in refused and "is open" not in refused, refused
    assert not fake_discord.polls and await bot.app.store.polls("study") == []
    opened = await answer_to(bot, bot.organiser, "poll open", {"question": '"Which day?"', "answers": '"Mon" "Wed"'})
    assert "is open" in opened, opened
    [poll] = fake_discord.polls.values()
    assert poll.question["text"] == "Which day?"  # the quote marks a member typed are not part of the question


@pytest.fixture
def bot(discord_driver: DiscordDriver) -> DiscordDriver:
    return discord_driver


async def test_vote_hints_are_written_as_discord_slash_commands(bot: DiscordDriver) -> None:
    opened = await bot.say(bot.organiser, 'poll "Which day?" "Mon" "Wed"')
    poll = number_after("poll", opened.text)
    assert f"/vote poll:{poll} answers:<n>" in opened.text, opened
    secret = number_after("poll", (await bot.say(bot.organiser, 'poll "Keep it?" "Yes" "No" --secret')).text)
    assert any(f"/vote poll:{secret} answers:<n>" in p for p in bot.posts()), bot.posts()
    await bot.say(bot.organiser, f"poll close {poll}")
    again = await bot.say(bot.organiser, f"poll close {poll}")
    assert f"/poll results poll:{poll} shows its results" in again.text, again


async def open_native(bot: DiscordDriver) -> tuple[int, int]:
    poll = number_after("poll", (await bot.say(bot.organiser, 'poll "Which day?" "Mon" "Wed"')).text)
    return poll, await bot.poll_message(poll)


async def test_a_vote_withdrawn_while_the_bot_was_down_no_longer_counts(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    poll, mid = await open_native(bot)
    await bot.vote("alice", poll, [1])
    await bot.vote("bob", poll, [2])
    await bot.stop()
    await fake_discord.unvote(bot.member("alice"), mid, 1)  # nobody is connected to see it
    await bot.start()
    results = await bot.say("carol", f"poll results {poll}")
    assert "1. Mon: 0" in results and "2. Wed: 1" in results and "(open, 1 voter)" in results, results


async def test_a_vote_command_after_a_native_vote_survives_the_read_back(bot: DiscordDriver) -> None:
    poll, _ = await open_native(bot)
    await bot.vote("alice", poll, [1])
    assert "counted: Wed" in await bot.say("alice", f"vote {poll} 2")  # her latest word
    await bot.restart()
    results = await bot.say("carol", f"poll results {poll}")
    assert "1. Mon: 0" in results and "2. Wed: 1" in results, results


async def test_votes_missed_while_reconnecting_without_resuming_are_read_back(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    poll, mid = await open_native(bot)
    await bot.vote("alice", poll, [1])
    answers = rf"/channels/{bot.channel.id}/polls/{mid}/answers/\d"
    read_before = len(fake_discord.find_requests("GET", answers))
    assert bot.adapter is not None
    bot.adapter.reidentify_pause = 0  # no need to space out IDENTIFYs with the fake
    fake_discord.hold_gateway()
    try:
        await fake_discord.invalidate_sessions(resumable=False)  # the session is gone: the client identifies again
        await fake_discord.vote(bot.member("bob"), mid, 2)  # no session is there to be told
        await fake_discord.unvote(bot.member("alice"), mid, 1)
    finally:
        fake_discord.release_gateway()  # (held connections would keep the fake from stopping)
    await fake_discord.wait_identified(2)
    await fake_discord.wait_for(lambda: len(fake_discord.find_requests("GET", answers)) >= read_before + 2)
    await bot.adapter.drain()
    results = await bot.say("carol", f"poll results {poll}")
    assert "1. Mon: 0" in results and "2. Wed: 1" in results and "(open, 1 voter)" in results, results


async def test_a_click_the_database_could_not_take_asks_to_click_again(bot: DiscordDriver,
                                                                       fake_discord: FakeDiscord) -> None:
    import sqlite3

    from circlebot.core.domain import ChannelRef, Control, Post
    from scenarios import SEED

    meeting = number_after("meeting", (await bot.say(bot.organiser, f"schedule {SEED}")).text)
    assert bot.adapter is not None
    ref = await bot.adapter.send(ChannelRef("discord", str(bot.channel.id)),
                                 Post("Coming?", meeting_id=meeting, controls=(Control.RSVP,)))
    store = bot.app.store
    await store.db.conn.execute("PRAGMA busy_timeout = 20")
    blocker = sqlite3.connect(bot.app.settings.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        inter = await fake_discord.click(bot.member("alice"), int(ref.id), f"circlebot:rsvp:yes:{meeting}")
        busy = await inter.wait_response()
    finally:
        blocker.rollback()
        blocker.close()
    assert "not saved" in busy["data"]["content"] and "click again" in busy["data"]["content"], busy
    inter = await fake_discord.click(bot.member("alice"), int(ref.id), f"circlebot:rsvp:yes:{meeting}")
    assert (await inter.wait_response())["data"]["content"].startswith("Noted: yes")
    assert [u.name for u, _ in await store.rsvps(meeting)] == ["alice"]

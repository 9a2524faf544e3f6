"""Poll rules on Matrix, through the whole bot against the real Synapse: nothing lost when storing fails,
redacted responses, ends sent from Element, bounded caches."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from circlebot.adapters.matrix import MatrixAdapter, polls
from circlebot.app import App
from circlebot.core.domain import ChannelRef, Control, Post, RsvpAnswer
from circlebot.readings import load_collection
from circlebot.store import Store
from drivers import FakeClock, number_after
from synapse_harness import create_room, join, messages, react, redact, send_event, send_text, wait_for_event
from test_matrix_driver import MakeUser, MatrixBot, MatrixDriver, in_reply_to, matrix_driver, matrix_settings

__all__ = ["matrix_driver"]

SEED = "bolivia-2003-first-balance-sheet"


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Wait (bounded) until `predicate` holds, looking every few milliseconds."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (a log record has no event to wait on)
            await asyncio.sleep(0.01)


@pytest.mark.timeout(40)
async def test_votes_and_reaction_rsvps_are_not_lost_when_storing_them_fails(
    matrix_driver: MatrixDriver, caplog: pytest.LogCaptureFixture
) -> None:
    d = matrix_driver
    store = d.app.store
    poll = number_after("poll", (await d.say("olga", 'poll "Which day?" "Mon" "Tue"')).text)
    now = datetime.now(UTC)
    meeting = await store.add_meeting("study", now + timedelta(days=1), now + timedelta(days=1, hours=1), SEED,
                                      None, now)
    post = await d.bot.adapter.send(ChannelRef("matrix", d.room_id),
                                    Post("Coming?", meeting_id=meeting.id, controls=(Control.RSVP,)))
    bob = await d.user("bob")
    await d.user("alice")
    await d.bot.stop()
    yes = await react(bob.client, d.room_id, post.id, "✅")
    vote = await d.respond("alice", poll, ["a2"])

    # The bot comes back while the database is busy elsewhere (another process holds its write lock): storing
    # fails (after a short wait) until the lock is released.
    await store.db.conn.execute("PRAGMA busy_timeout = 20")
    blocker = sqlite3.connect(d.app.settings.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING):
            starting = asyncio.create_task(d.bot.start())
            await until(lambda: "could not store" in caplog.text or starting.done())
    finally:
        blocker.rollback()
        blocker.close()
    await starting
    await d.bot.processed(vote)
    await d.bot.processed(yes)
    results = await d.say("carol", f"poll results {poll}")
    assert "2. Tue: 1" in results and "1 voter" in results, results
    assert {u.id: a for u, a in await store.rsvps(meeting.id)} == {bob.user_id: RsvpAnswer.YES}


@pytest.mark.timeout(40)
async def test_a_redacted_poll_response_gives_back_the_previous_one(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    poll = number_after("poll", (await d.say("olga", 'poll "Which day?" "Mon" "Tue" "Wed"')).text)
    alice, bob, carol = await d.user("alice"), await d.user("bob"), await d.user("carol")
    await d.vote("alice", poll, [1])
    second = await d.respond("alice", poll, ["a2"])
    await d.bot.processed(second)
    only = await d.respond("bob", poll, ["a3"])
    await d.bot.processed(only)
    assert "2. Tue: 1" in await d.say("dan", f"poll results {poll}")

    await d.bot.processed(await redact(alice.client, d.room_id, second))  # alice takes her change back: Mon again
    await d.bot.processed(await redact(bob.client, d.room_id, only))  # bob's only response: no vote
    results = await d.say("dan", f"poll results {poll}")
    assert "1. Mon: 1" in results and "2. Tue: 0" in results and "3. Wed: 0" in results, results
    assert "1 voter" in results

    await d.vote("carol", poll, [2])
    last = await d.respond("carol", poll, ["a3"])
    await d.bot.processed(last)
    await d.bot.stop()
    await redact(carol.client, d.room_id, last)  # while the bot is down
    await d.bot.start()
    results = await d.say("dan", f"poll results {poll}")
    assert "1. Mon: 1" in results and "2. Tue: 1" in results and "3. Wed: 0" in results, results


@pytest.mark.timeout(60)
async def test_only_organisers_end_a_poll_from_element(
    matrix_user: MakeUser, tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    owner, mod = await matrix_user("owner"), await matrix_user("mod")
    bot_account = await matrix_user("bot")
    room = await create_room(owner.client, invite=[bot_account.user_id, mod.user_id],
                             power_levels={"users": {owner.user_id: 100, mod.user_id: 50}}, room_version="11")
    for account in (bot_account, mod):
        await join(account.client, room)
    await mod.client.set_displayname("mod")
    # the circle's organisers: the owner by name, and nobody by power level (a room moderator is not one)
    settings = matrix_settings(tmp_path, bot_account, [room],
                               organisers={"console": [], "matrix_users": [owner.user_id], "matrix_power_level": 100})
    bot = MatrixBot(App(settings, store, load_collection(settings.readings), clock), bot_account)
    await bot.start()
    try:
        ask = await send_text(owner.client, room, '!poll "Keep Thursdays?" "Yes" "No"')
        await bot.processed(ask)
        poll = number_after("poll", next(e for e in await messages(owner.client, room)
                                         if in_reply_to(e) == ask)["content"]["body"])
        [ref] = await store.poll_messages(poll)
        ended = await send_event(mod.client, room, polls.END_UNSTABLE, polls.end_content(ref.id, "Ended."))
        await bot.processed(ended)
        notice = await wait_for_event(owner.client, room, lambda e: "only the organisers" in str(
            (e.get("content") or {}).get("body")))
        assert f"poll #{poll}" in notice["content"]["body"].lower() and "stays open" in notice["content"]["body"]
        stored = await store.poll(poll)
        assert stored is not None and not stored.closed
        vote = await send_text(mod.client, room, f"!vote {poll} 2")
        await bot.processed(vote)
        answers = [e for e in await messages(owner.client, room) if in_reply_to(e) == vote]
        assert answers and "counted" in answers[0]["content"]["body"], answers

        end_by_owner = await send_event(owner.client, room, polls.END_UNSTABLE, polls.end_content(ref.id, "Ended."))
        await bot.processed(end_by_owner)
        closed = await store.poll(poll)
        assert closed is not None and closed.closed
    finally:
        await bot.stop()


@pytest.mark.timeout(40)
async def test_reactions_on_many_messages_keep_the_adapters_memory_bounded(
    matrix_driver: MatrixDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = matrix_driver
    monkeypatch.setattr(MatrixAdapter, "cache_size", 20)  # a small bound, so a few dozen reactions overflow it
    await d.bot.restart()
    adapter: MatrixAdapter = d.bot.adapter
    alice = await d.user("alice")
    now = datetime.now(UTC)
    meeting = await d.app.store.add_meeting("study", now + timedelta(days=1), now + timedelta(days=1, hours=1),
                                            SEED, None, now)
    post = await adapter.send(ChannelRef("matrix", d.room_id),
                              Post("Coming?", meeting_id=meeting.id, controls=(Control.RSVP,)))
    limit = adapter.cache_size
    chatter = [await send_text(alice.client, d.room_id, f"message {i}") for i in range(limit + 20)]
    for event_id in chatter:
        await react(alice.client, d.room_id, event_id, "👍")
    last = await react(alice.client, d.room_id, chatter[-1], "🎉")
    await d.bot.processed(last)
    assert len(adapter._controls) <= limit
    yes = await react(alice.client, d.room_id, post.id, "✅")  # the post's entry was pushed out: read again
    await d.bot.processed(yes)
    assert {u.id: a for u, a in await d.app.store.rsvps(meeting.id)} == {alice.user_id: RsvpAnswer.YES}


@pytest.mark.timeout(40)
async def test_members_vote_in_a_secret_poll_from_their_direct_room_unseen(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    poll = number_after("poll", (await d.say("olga", 'poll "Keep Thursdays?" "Yes" "No" --secret')).text)
    start_id = await d.poll_event(poll)
    start = next(e for e in await messages(d.users["olga"].client, d.room_id) if e.get("event_id") == start_id)
    assert "direct" in start["content"]["body"], start  # the poll says how to vote unseen
    alice = await d.user("alice")
    bot_id = d.bot.bot.user_id
    created = await alice.client.room_create(is_direct=True, invite=[bot_id])
    dm = str(created.room_id)
    await wait_for_event(alice.client, dm, lambda e: e.get("type") == "m.room.member" and e.get("state_key") == bot_id
                         and e["content"].get("membership") == "join")
    vote = await send_text(alice.client, dm, f"!vote {poll} 2")
    await d.bot.processed(vote)
    [answer] = [e for e in await messages(alice.client, dm) if in_reply_to(e) == vote]
    assert "counted: No" in answer["content"]["body"], answer
    room = await messages(d.users["olga"].client, d.room_id)
    assert not any("counted" in str((e.get("content") or {}).get("body")) for e in room)
    closed = await d.say("olga", f"poll close {poll}")
    assert "2. No: 1" in closed and "1 voter" in closed, closed

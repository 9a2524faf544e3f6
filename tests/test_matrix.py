"""The Matrix adapter against a real Synapse: polls in every form, bursts, restarts, outages, reactions,
threads, invites, encryption, escaping. The feature scenarios are in test_scenarios_matrix.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from circlebot.adapters.lookups import AppLookups
from circlebot.adapters.matrix import (
    CHECK_IN_KEY,
    CREATOR_LEVEL,
    MAX_CONTENT_BYTES,
    MatrixAdapter,
    adapter_from_settings,
    polls,
)
from circlebot.app import App
from circlebot.core.domain import ChannelRef, Control, MessageRef, PollSpec, Post, RsvpAnswer, UserRef
from circlebot.core.text import when
from circlebot.readings import load_collection
from circlebot.store import Store
from drivers import FakeClock, number_after
from synapse_harness import (
    MatrixAccount,
    SynapseServer,
    create_room,
    invite,
    join,
    messages,
    react,
    redact,
    relations,
    send_event,
    send_text,
    wait_for_event,
)
from test_matrix_driver import MakeUser, MatrixBot, MatrixDriver, in_reply_to, matrix_driver, matrix_settings

__all__ = ["matrix_driver"]

SEED = "bolivia-2003-first-balance-sheet"


def replies_to(events: list[dict[str, Any]], event_id: str) -> list[dict[str, Any]]:
    return [e for e in events if in_reply_to(e) == event_id]


# pure: MSC3381 parsing and counting ------------------------------------------------------------------
def _response(sender: str, ids: Any, ts: int, *, stable: bool = False, eid: str = "$r") -> dict[str, Any]:
    rel = {"rel_type": "m.reference", "event_id": "$start"}
    if stable:
        return {"type": "m.poll.response", "sender": sender, "event_id": eid, "origin_server_ts": ts,
                "content": {"m.relates_to": rel, "m.selections": ids}}
    return {"type": polls.RESPONSE_UNSTABLE, "sender": sender, "event_id": eid, "origin_server_ts": ts,
            "content": {"m.relates_to": rel, polls.RESPONSE_UNSTABLE: {"answers": ids}}}


def test_poll_responses_in_both_forms_and_spoiled_ones() -> None:
    unstable = polls.parse_response(_response("@a:x", ["a1", "a3"], 5))
    stable = polls.parse_response(_response("@a:x", ["a2"], 6, stable=True))
    assert unstable and unstable.answers == (0, 2) and unstable.start_id == "$start"
    assert stable and stable.answers == (1,)
    for bad in (["a1", "nope"], ["a0"], [7], "a1"):
        spoiled = polls.parse_response(_response("@a:x", bad, 7))
        assert spoiled and spoiled.answers == () and spoiled.spoiled, bad
    withdrawn = polls.parse_response(_response("@a:x", [], 8))
    assert withdrawn and withdrawn.answers == () and not withdrawn.spoiled
    assert polls.parse_response({"type": "m.room.message", "content": {}}) is None
    no_relation = _response("@a:x", ["a1"], 9)
    del no_relation["content"]["m.relates_to"]
    assert polls.parse_response(no_relation) is None


def test_latest_response_per_user_wins_and_after_the_end_is_ignored() -> None:
    rs = [polls.parse_response(r) for r in (
        _response("@a:x", ["a1"], 10), _response("@a:x", ["zz"], 20),  # a's latest is spoiled: it counts
        _response("@b:x", ["a2"], 30), _response("@b:x", ["a1"], 25),  # order of arrival does not matter
        _response("@c:x", ["a1"], 50),  # after the end
    )]
    latest = polls.latest_per_user([r for r in rs if r], end_ts=40)
    assert {u: r.answers for u, r in latest.items()} == {"@a:x": (), "@b:x": (1,)}


def test_poll_start_content_is_what_element_renders() -> None:
    spec = PollSpec(3, "Q?", ("A", "B", "C"), multi=True, secret=True, closes_at=None)
    content = polls.start_content(spec, "Q?", spec.answers, "fallback")
    block = content[polls.START_UNSTABLE]
    assert block["kind"] == polls.KIND_UNDISCLOSED and block["max_selections"] == 3
    assert [a["id"] for a in block["answers"]] == ["a1", "a2", "a3"]
    assert block["question"][polls.TEXT_UNSTABLE] == "Q?" and content[polls.TEXT_UNSTABLE] == "fallback"


def test_adapter_from_settings_takes_the_secret_from_the_environment(tmp_path: Path) -> None:
    from synapse_harness import MatrixUser

    fake = MatrixAccount(MatrixUser("@bot:localhost", "tok", "DEV", "pw", "bot", "http://127.0.0.1:9"), None)  # type: ignore[arg-type]
    settings = matrix_settings(tmp_path, fake, ["!room"])
    with pytest.raises(ValueError, match="CIRCLEBOT_TEST_MATRIX_TOKEN"):
        adapter_from_settings(settings, None, env={})  # type: ignore[arg-type]
    adapter = adapter_from_settings(settings, None, env={"CIRCLEBOT_TEST_MATRIX_TOKEN": "s3cret-token"})  # type: ignore[arg-type]
    assert adapter.prefix == "!" and adapter.user_id == "@bot:localhost"


# native polls ----------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
async def test_poll_events_and_votes_in_every_form(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    olga = d.users["olga"]
    opened = await d.say("olga", 'poll "Best day?" "Mon" "Tue" "Wed" --secret')
    poll = number_after("poll", opened.text)
    start_id = await d.poll_event(poll)
    start = next(e for e in await messages(olga.client, d.room_id) if e.get("event_id") == start_id)
    assert start["type"] == polls.START_UNSTABLE
    assert start["content"][polls.START_UNSTABLE]["kind"] == polls.KIND_UNDISCLOSED
    assert start["content"][polls.START_UNSTABLE]["max_selections"] == 1

    async def vote(user: str, ids: list[str], form: str) -> None:
        await d.bot.processed(await d.respond(user, poll, ids, form))

    await vote("alice", ["a1"], "unstable")
    await vote("alice", ["a2"], "stable")  # changed, in the stable form
    await vote("bob", ["a3"], "stable")
    await vote("bob", ["a3", "zz"], "unstable")  # spoiled: bob no longer votes
    await vote("carol", ["a1", "a1", "a2"], "unstable")  # one selection allowed: the first counts
    await vote("dan", ["a3"], "unstable")
    await vote("dan", [], "stable")  # withdrawn
    closed = await d.say("olga", f"poll close {poll}")
    assert "1. Mon: 1" in closed and "2. Tue: 1" in closed and "3. Wed: 0" in closed, closed
    assert "(closed, 2 voters)" in closed

    end = await wait_for_event(olga.client, d.room_id, lambda e: e.get("type") == polls.END_UNSTABLE)
    assert end["content"]["m.relates_to"] == {"rel_type": "m.reference", "event_id": start_id}
    assert "Poll #" in end["content"][polls.TEXT_UNSTABLE] and "closed" in end["content"]["body"]

    await vote("erin", ["a3"], "stable")  # after the end: ignored
    await vote("alice", ["a3"], "unstable")
    after = await d.say("dan", f"poll results {poll}")
    assert "3. Wed: 0" in after and "2 voters" in after, after


@pytest.mark.timeout(60)
async def test_a_poll_ended_in_element_by_a_moderator_closes_it_everywhere(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    poll = number_after("poll", (await d.say("olga", 'poll "Keep Thursdays?" "Yes" "No"')).text)
    start_id = await d.poll_event(poll)
    await d.bot.processed(await d.respond("alice", poll, ["a1"]))

    async def end_as(user: str) -> None:
        account = await d.user(user)
        event_id = await send_event(account.client, d.room_id, polls.END_UNSTABLE,
                                    polls.end_content(start_id, "The poll has ended."))
        await d.bot.processed(event_id)

    await end_as("mallory")  # power level 0: may not end someone else's poll
    assert "(open, 1 voter)" in await d.say("bob", f"poll results {poll}")
    await end_as("olga")  # the room's creator, as a moderator would, ends it in Element
    notice = await wait_for_event(d.users["bob"].client, d.room_id,
                                  lambda e: "was ended by olga on matrix" in str((e.get("content") or {}).get("body")))
    assert "Result: Yes" in notice["content"]["body"]
    assert "(closed, 1 voter)" in await d.say("bob", f"poll results {poll}")
    await d.bot.processed(await d.respond("carol", poll, ["a2"]))  # after the end: not counted
    assert "2. No: 0" in await d.say("bob", f"poll results {poll}")
    ends = [e for e in await messages(d.users["bob"].client, d.room_id) if e.get("type") == polls.END_UNSTABLE]
    assert len(ends) == 2 and not any(e["sender"] == d.bot.bot.user_id for e in ends)  # the bot adds no end


@pytest.mark.timeout(60)
async def test_a_burst_of_500_votes_and_commands_while_the_bot_is_down_all_count(
    matrix_driver: MatrixDriver, caplog: pytest.LogCaptureFixture
) -> None:
    d = matrix_driver
    poll = number_after("poll", (await d.say("olga", 'poll "Burst?" "A" "B" "C" "D" "E"')).text)
    names = [f"voter{i}" for i in range(50)]
    await asyncio.gather(*(d.user(n) for n in names[:25]))
    await asyncio.gather(*(d.user(n) for n in names[25:]))
    await d.bot.stop()

    early = [await send_text(d.users[n].client, d.room_id, "!circle") for n in names[:5]]  # oldest: back-fill

    async def ten_votes(i: int, name: str) -> None:
        for k in range(10):
            await d.respond(name, poll, [f"a{(i + k) % 5 + 1}"], "stable" if k % 2 else "unstable")

    await asyncio.gather(*(ten_votes(i, n) for i, n in enumerate(names)))
    with caplog.at_level(logging.INFO, logger="circlebot.adapters.matrix"):
        await d.bot.restart()
    for event_id in early:
        await d.bot.processed(event_id)
    expected = [0] * 5
    for i in range(50):
        expected[(i + 9) % 5] += 1
    results = await d.say("olga", f"poll results {poll}")
    for k, n in enumerate(expected, 1):
        assert f"{k}. {'ABCDE'[k - 1]}: {n} " in results, results
    assert "(open, 50 voters)" in results
    recent = await messages(d.users["olga"].client, d.room_id, limit=100)  # the answers came after the votes
    assert [len(replies_to(recent, e)) for e in early] == [1] * 5  # though past the sync's 100-event window
    ballots = await d.app.store.ballots(poll)
    assert len(ballots) == 50
    assert "was limited; back-filled" in caplog.text  # the sync window really was overrun


@pytest.mark.timeout(20)
async def test_a_rejected_access_token_stops_the_adapter_with_a_clear_error(
    matrix_user: MakeUser, tmp_path: Path, store: Store
) -> None:
    from circlebot.adapters.matrix import FatalMatrixError

    bot_account = await matrix_user("bot")
    settings = matrix_settings(tmp_path, bot_account, [])
    assert settings.matrix is not None
    lookups = AppLookups(App(settings, store, load_collection(settings.readings)), "matrix")
    adapter = MatrixAdapter(settings.matrix, lookups, {}, access_token="not-the-token", backoff=(0.05, 0.1))
    with pytest.raises(FatalMatrixError, match="refused the bot's access token") as raised:
        await asyncio.wait_for(adapter.serve(lambda event: asyncio.sleep(0)), 15)
    assert "not-the-token" not in str(raised.value)


@pytest.mark.timeout(40)
async def test_commands_sent_while_down_run_once_and_old_ones_never_again(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    olga = d.users["olga"]
    first = await d.command("alice", "circle")
    await d.bot.stop()
    while_down = await send_text((await d.user("bob")).client, d.room_id, "!circle")
    await d.bot.restart()
    await d.bot.processed(while_down)
    again = await d.command("carol", "circle")
    events = await messages(olga.client, d.room_id, limit=100)
    assert [len(replies_to(events, e)) for e in (first, while_down, again)] == [1, 1, 1]


@pytest.mark.timeout(60)
async def test_the_homeserver_goes_away_and_comes_back(matrix_driver: MatrixDriver, synapse: SynapseServer) -> None:
    d = matrix_driver
    poll = number_after("poll", (await d.say("olga", 'poll "Outage?" "Yes" "No"')).text)
    await d.vote("alice", poll, [1])
    before = await d.command("bob", "circle")
    try:
        await asyncio.to_thread(synapse.stop)
        await asyncio.sleep(0.3)  # let the bot notice and back off; nothing is waited on
    finally:
        await asyncio.to_thread(synapse.start)
    await d.vote("bob", poll, [2])
    answer = await d.say("carol", f"poll results {poll}")
    assert "1. Yes: 1" in answer and "2. No: 1" in answer and "2 voters" in answer, answer
    events = await messages(d.users["olga"].client, d.room_id, limit=100)
    assert len(replies_to(events, before)) == 1
    assert d.bot.task is not None and not d.bot.task.done()


# membership, encryption, permissions -----------------------------------------------------------------
@pytest.mark.timeout(30)
async def test_invitations_to_other_rooms_are_ignored(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    alice = await d.user("alice")
    other = await create_room(alice.client, invite=[d.bot.bot.user_id], name="not a circle")
    await d.command("alice", "circle")  # handled after the invitation was seen
    joined = await d.bot.bot.client.joined_rooms()
    assert d.room_id in joined.rooms and other not in joined.rooms


@pytest.mark.timeout(30)
async def test_an_encrypted_room_is_reported_at_start_when_encryption_is_off(
    matrix_user: MakeUser, tmp_path: Path, store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    olga = await matrix_user("olga")
    bot_account = await matrix_user("bot")
    secret = await create_room(olga.client, invite=[bot_account.user_id], encrypted=True)
    await join(bot_account.client, secret)
    settings = matrix_settings(tmp_path, bot_account, [secret], encryption=False)
    bot = MatrixBot(App(settings, store, load_collection(settings.readings), clock), bot_account)
    with caplog.at_level(logging.WARNING, logger="circlebot.adapters.matrix"):
        await bot.start()
    await bot.stop()
    warned = [r.getMessage() for r in caplog.records if secret in r.getMessage()]
    assert warned and "encrypted" in warned[0] and "encryption is off" in warned[0], caplog.text
    assert not (tmp_path / "circlebot-matrix-store").exists()  # no crypto store when encryption is off


@pytest.mark.timeout(30)
async def test_power_level_makes_an_organiser_in_a_classic_room(
    matrix_user: MakeUser, tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    owner = await matrix_user("owner")
    bot_account = await matrix_user("bot")
    mod, member = await matrix_user("mod"), await matrix_user("member")
    room = await create_room(owner.client, invite=[bot_account.user_id, mod.user_id, member.user_id],
                             power_levels={"users": {owner.user_id: 100, mod.user_id: 50}}, room_version="11")
    for account in (bot_account, mod, member):
        await join(account.client, room)
    settings = matrix_settings(tmp_path, bot_account, [room])
    bot = MatrixBot(App(settings, store, load_collection(settings.readings), clock), bot_account)
    await bot.start()
    try:
        asks = {}
        for account in (mod, member):
            asks[account.user_id] = await send_text(account.client, room, '!poll "Q?" "A" "B"')
            await bot.processed(asks[account.user_id])
        events = await messages(owner.client, room)
        assert "is open" in replies_to(events, asks[mod.user_id])[0]["content"]["body"]
        assert not replies_to(events, asks[member.user_id])  # refused, privately
        standing = await bot.adapter._room_standing(room)
        assert standing.level(owner.user_id) == 100 and standing.level(member.user_id) == 0
    finally:
        await bot.stop()


async def test_a_room_v12_creator_outranks_every_power_level(matrix_driver: MatrixDriver) -> None:
    standing = await matrix_driver.bot.adapter._room_standing(matrix_driver.room_id)
    assert standing.level(matrix_driver.users["olga"].user_id) == CREATOR_LEVEL


# what the bot sends ----------------------------------------------------------------------------------
@pytest.mark.timeout(30)
async def test_html_in_user_text_is_escaped_and_notices_mention_nobody(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    await d.say("olga", f"schedule {SEED}")
    eve = await d.make_user("eve")
    await eve.client.set_displayname("<b>Eve</b> & <img src=x>")  # before joining: the join carries the name
    await invite(d.users["olga"].client, d.room_id, eve.user_id)
    await join(eve.client, d.room_id)
    event_id = await send_text(eve.client, d.room_id, "!rsvp yes")
    await d.bot.processed(event_id)
    answer = replies_to(await messages(eve.client, d.room_id), event_id)[0]["content"]
    assert answer["msgtype"] == "m.notice" and answer["format"] == "org.matrix.custom.html"
    assert "<b>" not in answer["formatted_body"] and "<img" not in answer["formatted_body"]
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; &lt;img src=x&gt;: yes for meeting" in answer["formatted_body"]
    assert answer["body"].startswith("<b>Eve</b> & <img src=x>: yes")  # the plain body shows the name as it is
    assert answer["m.mentions"] == {}


@pytest.mark.timeout(30)
async def test_time_markup_typed_in_matrix_is_shown_as_typed(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    opened = await d.say("olga", 'poll "Meet <t:999999999999:F> or <t:1700000000:F>?" "Yes" "No"')
    assert "is open" in opened, opened
    results = await d.say("alice", f"poll results {number_after('poll', opened.text)}")
    assert "Meet <t:999999999999:F> or <t:1700000000:F>?" in results and "2023" not in results.text, results
    assert "Thu 26 Nov 2026, 19:00 GMT (Europe/London)" in await d.say("olga", f"schedule {SEED}")


@pytest.mark.timeout(30)
async def test_attendance_finds_a_member_by_matrix_id(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    assert "Scheduled meeting #1" in await d.say("olga", f"schedule {SEED}")
    assert "yes for meeting #1" in await d.say("alice", "rsvp yes")
    alice = await d.user("alice")
    d.clock.advance(timedelta(days=3))  # the first meeting (26 Nov) is over
    record = await d.say("olga", f"attendance {alice.user_id}")
    assert "Attendance of alice" in record and "0 of 1 meeting" in record, record


@pytest.mark.timeout(30)
async def test_commands_in_a_thread_belong_to_the_rooms_circle(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    alice = await d.user("alice")
    root = await d.bot.adapter.send(ChannelRef("matrix", d.room_id), Post("**Meeting #1** tonight"))
    event_id = await send_event(alice.client, d.room_id, "m.room.message", {
        "msgtype": "m.text", "body": "!circle",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root.id, "is_falling_back": True,
                         "m.in_reply_to": {"event_id": root.id}},
    })
    await d.bot.processed(event_id)
    answers = replies_to(await messages(alice.client, d.room_id), event_id)
    assert answers and "Test study circle" in answers[0]["content"]["body"], answers
    relates = answers[0]["content"]["m.relates_to"]
    assert relates["rel_type"] == "m.thread" and relates["event_id"] == root.id  # answered in the thread


@pytest.mark.timeout(30)
async def test_reminders_mention_threads_hold_questions_long_posts_split(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    alice = await d.user("alice")
    where = ChannelRef("matrix", d.room_id)
    adapter: MatrixAdapter = d.bot.adapter
    starts = datetime(2026, 11, 26, 19, 0, tzinfo=ZoneInfo("Europe/London"))
    root = await adapter.send(where, Post("Meeting at " + when(starts)))
    reminder = await adapter.send(where, Post("Tomorrow!", mentions=(UserRef("matrix", alice.user_id, "alice"),),
                                              notify=True))
    question = await adapter.send(where, Post("1. What is **dual power**?", thread_of=root))
    long = await adapter.send(where, Post("\n\n".join(f"Paragraph {i}: " + "é<&> " * 400 for i in range(60))))
    events = {e["event_id"]: e for e in await messages(alice.client, d.room_id, limit=100)}
    assert "Thu 26 Nov 2026, 19:00 GMT (Europe/London)" in events[root.id]["content"]["body"]
    r = events[reminder.id]["content"]
    assert r["msgtype"] == "m.text" and r["m.mentions"] == {"user_ids": [alice.user_id]}
    assert alice.user_id in r["formatted_body"] and r["body"].startswith("alice: ")
    q = events[question.id]["content"]
    assert q["m.relates_to"]["rel_type"] == "m.thread" and q["m.relates_to"]["event_id"] == root.id
    assert "<strong>dual power</strong>" in q["formatted_body"]
    parts = [e for e in events.values() if e.get("sender") == d.bot.bot.user_id
             and "Paragraph" in str(e["content"].get("body", ""))]
    assert len(parts) > 1 and parts[0]["event_id"] == long.id
    import json

    assert all(len(json.dumps(p["content"]).encode()) <= MAX_CONTENT_BYTES for p in parts)
    text = "\n".join(p["content"]["body"] for p in parts)
    assert all(f"Paragraph {i}:" in text for i in range(60))


@pytest.mark.timeout(30)
async def test_a_send_with_the_same_key_after_a_restart_posts_nothing_twice(matrix_driver: MatrixDriver) -> None:
    """Every event of a keyed post (chunks and reactions) has a transaction id derived from the key: a new
    adapter on the same device sending the post again gets the same events back from Synapse."""
    d = matrix_driver
    alice = await d.user("alice")
    where = ChannelRef("matrix", d.room_id)
    post = Post("\n\n".join(f"Paragraph {i}: " + "word " * 400 for i in range(12)), meeting_id=1,
                controls=(Control.RSVP,))
    first = await d.bot.adapter.send(where, post, key="study/1/assignment/1@matrix/room")

    def mine(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e.get("sender") == d.bot.bot.user_id and e["type"] in ("m.room.message",
                                                                                             "m.reaction")]

    before = mine(await messages(alice.client, d.room_id, limit=100))
    await d.bot.restart()
    again = await d.bot.adapter.send(where, post, key="study/1/assignment/1@matrix/room")
    after = mine(await messages(alice.client, d.room_id, limit=100))
    assert again == first
    assert [e["event_id"] for e in after] == [e["event_id"] for e in before]
    assert sum(e["type"] == "m.reaction" for e in after) == 3 and len(after) > 4
    other = await d.bot.adapter.send(where, post, key="study/1/assignment/1@matrix/elsewhere")
    assert other != first


@pytest.mark.timeout(30)
async def test_rsvp_and_check_in_by_reaction(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    store = d.app.store
    alice, bob = await d.user("alice"), await d.user("bob")
    now = datetime.now(UTC)
    meeting = await store.add_meeting("study", now - timedelta(minutes=10), now + timedelta(minutes=80), SEED,
                                      None, now)
    adapter: MatrixAdapter = d.bot.adapter
    where = ChannelRef("matrix", d.room_id)
    post = await adapter.send(where, Post("Coming?", meeting_id=meeting.id, controls=(Control.RSVP,)))
    questions = await adapter.send(where, Post("Questions", meeting_id=meeting.id, controls=(Control.CHECK_IN,)))
    for key, ref in ((f"m{meeting.id}-announce", post), (f"m{meeting.id}-questions", questions)):
        assert await store.claim_post(key, "study", meeting.id, key.split("-")[1], now, now)
        await store.finish_post(key, "sent", now, refs=[ref])
    offered = await relations(alice.client, d.room_id, post.id, "m.annotation")
    assert sorted(e["content"]["m.relates_to"]["key"] for e in offered) == sorted(["✅", "❔", "❌"])

    async def rsvps() -> dict[str, RsvpAnswer]:
        return {u.id: a for u, a in await store.rsvps(meeting.id)}

    yes = await react(alice.client, d.room_id, post.id, "✅")
    await d.bot.processed(yes)
    maybe = await react(bob.client, d.room_id, post.id, "❔")
    await d.bot.processed(maybe)
    assert await rsvps() == {alice.user_id: RsvpAnswer.YES, bob.user_id: RsvpAnswer.MAYBE}
    no = await react(alice.client, d.room_id, post.id, "❌")
    await d.bot.processed(no)
    await d.bot.processed(await redact(alice.client, d.room_id, yes))  # a change of mind: ✅ taken back
    assert (await rsvps())[alice.user_id] is RsvpAnswer.NO
    await d.bot.processed(await redact(alice.client, d.room_id, no))
    assert alice.user_id not in await rsvps()

    await d.bot.processed(await react(bob.client, d.room_id, questions.id, CHECK_IN_KEY))
    assert [u.id for u, _ in await store.checkins(meeting.id)] == [bob.user_id]
    d.clock.set(datetime.now(UTC))
    assert "already checked in" in await d.say("bob", "here")


@pytest.mark.timeout(30)
async def test_the_unknown_command_hint_names_help_with_the_prefix(matrix_driver: MatrixDriver) -> None:
    answer = await matrix_driver.say("alice", "frobnicate")
    assert "There is no command 'frobnicate'" in answer and "!help lists them" in answer, answer


@pytest.mark.timeout(30)
async def test_private_answers_go_by_direct_message(matrix_driver: MatrixDriver) -> None:
    d = matrix_driver
    first = await d.say("alice", "vote 99 1")
    assert first.private and "no poll #99" in first.text.lower()
    dm = await d.dm_room("alice")
    second = await d.say("alice", "attendance")
    assert second.private
    assert await d.dm_room("alice") == dm  # one room per user, remembered
    invited = [e for e in await messages(d.users["alice"].client, dm) if e.get("type") == "m.room.member"
               and e.get("state_key") == d.users["alice"].user_id and e["content"].get("membership") == "invite"]
    assert invited and invited[0]["content"].get("is_direct") is True


def test_prefix_and_credentials_are_checked(tmp_path: Path) -> None:
    from circlebot.config import MatrixSettings

    settings = MatrixSettings(homeserver="http://127.0.0.1:9", user_id="@b:localhost", access_token_env="X")
    with pytest.raises(ValueError, match="access token or a password"):
        MatrixAdapter(settings, None, {})  # type: ignore[arg-type]
    assert re.fullmatch(r"[!]", settings.prefix)
    assert MessageRef(ChannelRef("matrix", "!r"), "$e").channel.platform == "matrix"


@pytest.mark.timeout(20)
async def test_a_password_login_keeps_the_configured_device(
    matrix_user: MakeUser, tmp_path: Path, store: Store
) -> None:
    bot_account = await matrix_user("bot")
    settings = matrix_settings(tmp_path, bot_account, [])
    assert settings.matrix is not None
    lookups = AppLookups(App(settings, store, load_collection(settings.readings)), "matrix")
    tokens = []
    for _ in range(2):  # a restart reuses the login kept in the crypto store: no new login, the same device
        adapter = MatrixAdapter(settings.matrix, lookups, {}, password=bot_account.user.password)
        task = asyncio.create_task(adapter.serve(lambda event: asyncio.sleep(0)))
        try:
            await asyncio.wait_for(adapter.ready.wait(), 15)
            assert adapter.client.device_id == bot_account.user.device_id
            assert adapter.client.access_token and adapter.client.access_token != bot_account.user.access_token
            tokens.append(adapter.client.access_token)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert tokens[0] == tokens[1]


# the timeline on Matrix: outages and a kill between sending and recording -----------------------------------
@pytest.mark.timeout(60)
async def test_a_reminder_due_while_the_homeserver_is_down_arrives_once_when_it_is_back(
    matrix_driver: MatrixDriver, synapse: SynapseServer
) -> None:
    from circlebot.core.timeline import Timeline

    d = matrix_driver
    alice = await d.user("alice")
    timeline = Timeline(d.app)  # driven by the fake clock: tick() instead of a scheduler
    d.app.timeline = timeline
    await timeline.start()  # the syllabus fills Thu 26 Nov; its reading goes out at once
    clock = d.clock
    clock.set(datetime(2026, 11, 25, 19, tzinfo=UTC))  # the reminder's due time ...
    try:
        await asyncio.to_thread(synapse.stop)  # ... and the homeserver is down
        assert await timeline.tick() == 0
        for _ in range(3):
            clock.advance(timedelta(seconds=10))
            assert await timeline.tick() == 0
    finally:
        await asyncio.to_thread(synapse.start)
    for _ in range(8):  # back: the next retry sends it
        clock.advance(timedelta(seconds=10))
        await timeline.tick()
    events = await messages(alice.client, d.room_id, limit=100)
    reminders = [e for e in events if e.get("sender") == d.bot.bot.user_id
                 and "Reminder: meeting #1" in str(e["content"].get("body", ""))]
    assert len(reminders) == 1
    assert (await d.app.store.post_states(1))["reminder"] == "sent"
    from circlebot.core.adapter import connection  # /metrics and /readyz: the outage was one reconnect

    adapter = d.app.adapters["matrix"]
    for _ in range(200):
        if connection(adapter) == (1, True):
            break
        await asyncio.sleep(0.05)
    assert connection(adapter) == (1, True)


def _process_env(bot: MatrixAccount) -> dict[str, str]:
    import os

    return {**os.environ, "CIRCLEBOT_TEST_MATRIX_HOMESERVER": bot.user.homeserver,
            "CIRCLEBOT_TEST_MATRIX_USER": bot.user_id, "CIRCLEBOT_TEST_MATRIX_DEVICE": bot.user.device_id,
            "CIRCLEBOT_TEST_MATRIX_TOKEN": bot.user.access_token}


@pytest.mark.timeout(90)
async def test_a_bot_killed_between_sending_and_recording_the_reading_resends_it_once_with_its_controls(
    matrix_user: MakeUser, tmp_path: Path
) -> None:
    """A real bot process on Synapse is killed (SIGKILL) after Synapse took the reading, before its RSVP
    reactions and before the bot recorded it. The next process sends it again with the same transaction id:
    one event in the room, its reactions restored, members' answers on it count (one made while no bot ran,
    one after), the questions are threaded under it."""
    import signal
    import sys

    from circlebot.store import Database

    olga, bot, alice = await matrix_user("olga"), await matrix_user("bot"), await matrix_user("alice")
    room = await create_room(olga.client, name="study circle")
    for account in (bot, alice):
        await invite(olga.client, room, account.user_id)
        await join(account.client, room)
    database = tmp_path / "circlebot.sqlite3"
    start = datetime(2026, 12, 10, 19, tzinfo=UTC)
    db = await Database.open(database)
    await Store(db).add_meeting("study", start, start + timedelta(minutes=90), SEED, None,
                                datetime(2026, 11, 24, tzinfo=UTC))
    await db.close()
    script = str(Path(__file__).with_name("timeline_process.py"))
    env = _process_env(bot)

    async def run(at: datetime, *extra: str) -> list[str]:
        proc = await asyncio.create_subprocess_exec(sys.executable, script, str(database), at.isoformat(),
                                                    "--matrix", room, *extra, env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 40)
        assert proc.returncode == 0, err.decode()[-3000:]
        return out.decode().splitlines()

    due = start - timedelta(days=7)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, script, str(database), (due + timedelta(milliseconds=20)).isoformat(), "--matrix", room,
        "--hang-after-send", "Reading for meeting", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    lines: list[str] = []
    while "SENT" not in lines:
        line = await asyncio.wait_for(proc.stdout.readline(), 40)
        assert line, "the bot process ended before sending the reading"
        lines.append(line.decode().strip())
    proc.send_signal(signal.SIGKILL)  # between the homeserver taking the reading and the bot recording it
    await proc.wait()

    def bot_events(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e.get("sender") == bot.user_id and e.get("type") == kind]

    events = await messages(alice.client, room, limit=100)
    (reading,) = [e for e in bot_events(events, "m.room.message") if "Reading for meeting" in e["content"]["body"]]
    assert bot_events(events, "m.reaction") == []  # the broken state: no RSVP reactions yet
    await react(alice.client, room, reading["event_id"], "✅")  # a member answers while no bot runs

    await run(due + timedelta(minutes=1))  # a new process: resends with the same transaction id
    events = await messages(alice.client, room, limit=100)
    readings = [e for e in bot_events(events, "m.room.message") if "Reading for meeting" in e["content"]["body"]]
    assert [e["event_id"] for e in readings] == [reading["event_id"]]  # exactly one event in the room
    offered = [e for e in bot_events(events, "m.reaction")
               if e["content"]["m.relates_to"]["event_id"] == reading["event_id"]]
    assert sorted(e["content"]["m.relates_to"]["key"] for e in offered) == sorted(["✅", "❔", "❌"])

    bob = await matrix_user("bob")
    await invite(olga.client, room, bob.user_id)
    await join(bob.client, room)
    await react(bob.client, room, reading["event_id"], "❔")
    await run(start + timedelta(minutes=1))  # the meeting starts: the next process reads bob's answer, posts questions
    db = await Database.open(database)
    try:
        store = Store(db)
        assert [(u.id, a) for u, a in await store.rsvps(1)] == [(alice.user_id, RsvpAnswer.YES),
                                                                (bob.user_id, RsvpAnswer.MAYBE)]
        states = await store.post_states(1)
        assert states["assignment"] == "sent" and states["start"] == "sent"
    finally:
        await db.close()
    events = await messages(alice.client, room, limit=100)
    (questions,) = [e for e in bot_events(events, "m.room.message") if "has started" in e["content"]["body"]]
    rel = questions["content"]["m.relates_to"]
    assert rel["rel_type"] == "m.thread" and rel["event_id"] == reading["event_id"]

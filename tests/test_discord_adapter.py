"""The Discord adapter end to end: real discord.py 2.7 against the loopback fake Discord, real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from circlebot.adapters.discord import command_payloads, core_paths, intents, parse_command_data
from circlebot.core.commands import Command, Reply
from circlebot.core.context import Context
from circlebot.core.domain import ChannelRef, Control, MessageRef, Post, RsvpAnswer
from circlebot.features import all_commands
from discord_driver import DiscordDriver, discord_bot, discord_driver_fixture  # noqa: F401
from drivers import FakeClock, number_after
from fakediscord import (
    CALLBACK_DEFERRED_MESSAGE,
    FLAG_EPHEMERAL,
    MANAGE_GUILD,
    PRIVILEGED_INTENTS,
    FakeDiscord,
    fake_discord_fixture,  # noqa: F401
)
from scenarios import SEED

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def bot(discord_driver: DiscordDriver) -> DiscordDriver:
    return discord_driver


async def open_poll(bot: DiscordDriver, text: str = 'poll "Which day?" "Mon" "Wed" "Thu" --multi') -> tuple[int, int]:
    answer = await bot.say(bot.organiser, text)
    poll = number_after("poll", answer.text)
    return poll, await bot.poll_message(poll)


# --- the command tree --------------------------------------------------------------------------------------------


async def test_slash_command_tree_is_generated_from_the_declarations_and_synced_per_guild(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    puts = fake_discord.find_requests("PUT", rf"/applications/\d+/guilds/{bot.guild.id}/commands")
    assert len(puts) == 1 and puts[0].status == 200
    assert not fake_discord.find_requests("PUT", r"/applications/\d+/commands")  # nothing global
    tree = {c["name"]: c for c in puts[0].json}
    assert set(tree) == {c.path[0] for c in bot.app.commands.commands}
    assert all("default_member_permissions" not in c for c in tree.values())  # the core checks organisers

    poll = {o["name"]: o for o in tree["poll"]["options"]}
    assert set(poll) == {"open", "close", "results"} and all(o["type"] == 1 for o in poll.values())
    opened = poll["open"]["options"]
    assert [o["name"] for o in opened] == ["question", "answers", "multi", "hours", "secret"]
    assert [o["required"] for o in opened] == [True, True, False, False, False]
    assert [o["type"] for o in opened] == [3, 3, 5, 10, 5]
    assert poll["close"]["options"] == [
        {"type": 4, "name": "poll", "description": "the poll's number", "required": True, "autocomplete": True}
    ]

    rsvp = {o["name"]: o for o in tree["rsvp"]["options"]}
    assert rsvp["answer"]["choices"] == [{"name": a, "value": a} for a in ("yes", "maybe", "no")]
    assert rsvp["meeting"]["type"] == 4 and rsvp["meeting"]["autocomplete"] and not rsvp["meeting"]["required"]
    assert tree["reading"]["options"][0]["autocomplete"] is True
    vote = {o["name"]: o for o in tree["vote"]["options"]}
    assert vote["answers"]["type"] == 3  # several numbers in one text option
    for command in tree.values():
        assert 1 <= len(command["description"]) <= 100 and re.fullmatch(r"[a-z_-]{1,32}", command["name"])


def test_interaction_data_maps_back_to_the_core_paths() -> None:
    commands = all_commands()
    data = {"name": "poll", "options": [{"name": "open", "type": 1, "options": [
        {"name": "question", "type": 3, "value": "Q?"}, {"name": "answers", "type": 3, "value": '"A" "B"'}]}]}
    assert parse_command_data(data, core_paths(commands)) == (("poll",), {"question": "Q?", "answers": '"A" "B"'}, None)
    data = {"name": "poll", "options": [{"name": "close", "type": 1, "options": [
        {"name": "poll", "type": 4, "value": "1", "focused": True}]}]}
    assert parse_command_data(data, core_paths(commands)) == (("poll", "close"), {"poll": "1"}, "poll")
    assert len(command_payloads(commands)) == len({c.path[0] for c in commands})


async def test_only_non_privileged_intents_are_asked_for(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    identify = [f["d"] for f in fake_discord.gateway_received if f.get("op") == 2]
    assert identify and identify[0]["intents"] == intents().value
    assert identify[0]["intents"] & PRIVILEGED_INTENTS == 0
    assert identify[0]["token"] == fake_discord.token


# --- answering interactions --------------------------------------------------------------------------------------


async def test_autocomplete_offers_readings_meetings_and_open_polls(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    alice = bot.member("alice")
    inter = await fake_discord.autocomplete(alice, bot.channel, "reading", "slug", {"slug": "boliv"})
    choices = (await inter.wait_response())["data"]["choices"]
    assert any(c["value"] == SEED for c in choices), choices

    meeting = number_after("meeting", (await bot.say(bot.organiser, f"schedule {SEED}")).text)
    inter = await fake_discord.autocomplete(alice, bot.channel, "rsvp", "meeting", {"answer": "yes", "meeting": ""})
    choices = (await inter.wait_response())["data"]["choices"]
    assert [c["value"] for c in choices] == [meeting] and choices[0]["name"].startswith(f"#{meeting} ")

    poll, _ = await open_poll(bot)
    closed, _ = await open_poll(bot, 'poll "Old?" "A" "B"')
    await bot.say(bot.organiser, f"poll close {closed}")
    inter = await fake_discord.autocomplete(alice, bot.channel, "vote", "poll", {"poll": ""})
    choices = (await inter.wait_response())["data"]["choices"]
    assert [c["value"] for c in choices] == [poll] and "Which day?" in choices[0]["name"]


async def test_a_slow_command_is_deferred_then_followed_up(
    fake_discord: FakeDiscord, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()

    async def slow(ctx: Context, private: bool) -> Reply:
        await gate.wait()
        return Reply("done at last @everyone", private=private)

    from circlebot.core.commands import FLAG, Param

    commands = [*all_commands(), Command(("slow",), "Takes its time.", slow,
                                         (Param("private", FLAG, "answer privately", option=True),))]
    async with discord_bot(fake_discord, tmp_path, clock, monkeypatch, commands=commands) as bot:
        bot.adapter.__dict__["_defer_after"] = 0.01  # type: ignore[union-attr]
        for private in (False, True):
            gate.clear()
            inter = await fake_discord.slash(bot.member("alice"), bot.channel, "slow", {"private": private})
            response = await inter.wait_response()
            assert response["type"] == CALLBACK_DEFERRED_MESSAGE
            flags = int((response.get("data") or {}).get("flags") or 0)
            assert not flags & FLAG_EPHEMERAL  # `slow` is not declared private: a public "thinking…"
            gate.set()
            [answer] = await inter.wait_followups()
            assert answer["content"] == "done at last @everyone" and answer["mention_everyone"] is False
            assert bool(int(answer["flags"]) & FLAG_EPHEMERAL) is private
            assert inter.original_deleted is private  # a public "thinking…" is removed before a private answer
            await bot.adapter.drain()  # type: ignore[union-attr]
    fake_discord.assert_clean()


async def test_personal_answers_are_ephemeral_and_nothing_pings(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    own = await bot.say("alice", "attendance")
    assert own.private
    weird = await bot.say("alice", "attendance @everyone")
    assert "I know no member '@everyone'" in weird.text and weird.private
    callbacks = [r for r in fake_discord.find_requests("POST", r"/interactions/\d+/[^/]+/callback")]
    assert callbacks and all(r.json["data"]["allowed_mentions"] == {"parse": []} for r in callbacks)


async def test_usage_and_help_are_written_as_slash_commands(bot: DiscordDriver) -> None:
    wrong = await bot.say("olga", 'poll "Only one answer?" "A"')
    assert "at least two answers" in wrong.text
    assert "Usage: /poll open question:<text> answers:<text> [multi:True] [hours:<hours>] [secret:True]" in wrong.text
    assert "/help command:poll open for more" in wrong.text
    listing = await bot.say("alice", "help")
    assert "/rsvp answer:<yes|maybe|no> [meeting:<meeting>]" in listing.text
    one = await bot.say("alice", "help poll open")
    assert "/poll open question:<text>" in one.text and "e.g." not in one.text


async def test_a_member_is_refused_an_organiser_command_and_manage_server_makes_an_organiser(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    refused = await bot.say("mallory", 'poll "Q?" "A" "B"')
    assert refused.private and "/poll open is for the organisers" in refused.text
    assert not fake_discord.polls
    fake_discord.add_member(bot.guild, "manon", permissions=MANAGE_GUILD)
    bot.members["manon"] = bot.guild.members[max(bot.guild.members)]
    assert "Poll #1 is open on discord" in await bot.say("manon", 'poll "Q?" "A" "B"')


# --- polls -------------------------------------------------------------------------------------------------------


async def test_everyone_in_a_poll_question_pings_nobody(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    _, mid = await open_poll(bot, 'poll "@everyone which <@&1> day?" "@here Mon" "Wed"')
    message = fake_discord.get_message(mid)
    assert message["poll"]["question"]["text"] == "@everyone which <@&1> day?"
    assert message["mention_everyone"] is False and message["mentions"] == [] and message["mention_roles"] == []
    sent = fake_discord.find_requests("POST", rf"/channels/{bot.channel.id}/messages")
    [post] = [r for r in sent if r.json.get("poll")]
    assert post.json["allowed_mentions"] == {"parse": []}
    assert post.json["poll"]["answers"][0]["poll_media"]["text"] == "@here Mon"


async def test_time_marks_typed_by_members_are_shown_as_typed(bot: DiscordDriver) -> None:
    poll, _ = await open_poll(bot, 'poll "Meet <t:1700000000:F> or \\\\<t:1:R>?" "Yes" "No"')
    results = await bot.say("alice", f"poll results {poll}")
    # an odd number of backslashes before "<": Discord shows the mark as typed instead of a date
    assert "Meet \\<t:1700000000:F> or \\\\\\<t:1:R>?" in results.text, results
    closed = await bot.say(bot.organiser, f"poll close {poll}")
    assert "Meet \\<t:1700000000:F>" in closed.text, closed
    assert any("Meet \\<t:1700000000:F>" in p for p in bot.posts()), bot.posts()  # the results posted on close
    scheduled = await bot.say(bot.organiser, f"schedule {SEED}")
    assert re.search(r"(?<!\\)<t:\d+:F>", scheduled.text), scheduled  # the bot's own times stay time marks


async def test_attendance_finds_a_member_by_discord_id_or_mention(bot: DiscordDriver) -> None:
    assert "Scheduled meeting #1" in await bot.say(bot.organiser, f"schedule {SEED}")
    assert "yes for meeting #1" in await bot.say("alice", "rsvp yes")
    alice = bot.member("alice")
    bot.clock.advance(timedelta(days=3))  # the first meeting (26 Nov) is over
    for who in (str(alice.id), f"<@{alice.id}>", f"<@!{alice.id}>"):
        answer = await bot.say(bot.organiser, f"attendance {who}")
        assert "Attendance of alice" in answer.text and "0 of 1 meeting" in answer.text, (who, answer)
    assert "Meeting #1" in (await bot.say(bot.organiser, "attendance 1")).text


async def test_discord_poll_limits_are_checked_before_sending(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    eleven = " ".join(f'"A{i}"' for i in range(11))
    too_many = await bot.say(bot.organiser, f'poll "Q?" {eleven}')
    assert "Discord allows at most 10 answers" in too_many.text and too_many.private
    long = await bot.say(bot.organiser, f'poll "Q?" "{"x" * 56}" "B"')
    assert "Discord allows answers of at most 55 characters (too long: answer 1)" in long.text
    many = " ".join(f'"A{i}"' for i in range(21))
    one_limit = await bot.say(bot.organiser, f'poll "Q?" {many}')  # the strictest limit, stated once
    assert "Discord allows at most 10 answers" in one_limit.text and "the most is 20" not in one_limit.text
    assert not fake_discord.polls


async def test_native_votes_are_stored_changed_and_removed(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    poll, mid = await open_poll(bot)
    alice, bob = bot.member("alice"), bot.member("bob")
    await fake_discord.vote(alice, mid, 1)
    await fake_discord.vote(alice, mid, 3)
    await fake_discord.vote(bob, mid, 3)
    await fake_discord.unvote(alice, mid, 1)
    await fake_discord.vote(alice, mid, 2)
    await fake_discord.unvote(bob, mid, 3)
    await bot.wait_votes(6)
    results = await bot.say("carol", f"poll results {poll}")
    assert "1. Mon: 0" in results and "2. Wed: 1" in results and "3. Thu: 1" in results, results
    assert "(open, 1 voter)" in results


async def test_poll_close_ends_the_native_poll_early(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    poll, mid = await open_poll(bot)
    await bot.vote("alice", poll, [2])
    closed = await bot.say(bot.organiser, f"poll close {poll}")
    assert "Result: Wed" in closed
    assert fake_discord.polls[mid].finalized
    assert fake_discord.find_requests("POST", rf"/channels/{bot.channel.id}/polls/{mid}/expire")
    results_post = [m for m in fake_discord.channel_messages(bot.channel) if not m.get("webhook_id")][-1]
    assert results_post["message_reference"]["message_id"] == str(mid) and "closed" in results_post["content"]


async def test_a_secret_poll_is_not_a_native_poll(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    answer = await bot.say(bot.organiser, 'poll "Keep Thursday?" "Yes" "No" --secret')
    poll = number_after("poll", answer.text)
    assert not fake_discord.polls
    assert any("Keep Thursday?" in p and "secret" in p for p in bot.posts())
    assert (await bot.say("alice", f"vote {poll} 1")).private
    closed = await bot.say(bot.organiser, f"poll close {poll}")
    assert "1. Yes: 1" in closed


async def test_429_is_honoured_and_retried(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    fake_discord.rate_limit("POST", rf"/channels/{bot.channel.id}/messages", count=1, retry_after=0.05)
    _, mid = await open_poll(bot)
    posts = fake_discord.find_requests("POST", rf"/channels/{bot.channel.id}/messages")
    assert [r.status for r in posts] == [429, 200]
    assert fake_discord.polls[mid]


async def test_a_reconnect_and_resume_loses_no_vote(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    poll, mid = await open_poll(bot)
    assert await fake_discord.force_reconnect() == 1
    before = fake_discord.vote_events
    await fake_discord.vote(bot.member("alice"), mid, 1)  # sent while the client is away: replayed on RESUME
    await fake_discord.vote(bot.member("bob"), mid, 3)
    await fake_discord.wait_resumed()
    await bot.wait_votes(fake_discord.vote_events - before)
    results = await bot.say("carol", f"poll results {poll}")
    assert "1. Mon: 1" in results and "3. Thu: 1" in results, results
    assert fake_discord.identify_count == 1 and "/resume-gateway" in fake_discord.gateway_paths


async def test_a_restart_reads_back_the_votes_cast_while_the_bot_was_down(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    poll, mid = await open_poll(bot)
    await bot.vote("alice", poll, [1])
    chat = await bot.say("dan", f"vote {poll} 2")  # a /vote ballot that Discord's poll knows nothing of
    assert "counted" in chat
    await bot.stop()
    alice, bob = bot.member("alice"), bot.member("bob")
    await fake_discord.unvote(alice, mid, 1)  # nobody is connected to see these
    await fake_discord.vote(alice, mid, 3)
    for n in range(1, 4):
        await fake_discord.vote(bob, mid, n)
    await bot.start()
    results = await bot.say("carol", f"poll results {poll}")
    assert "1. Mon: 1" in results and "2. Wed: 2" in results and "3. Thu: 2" in results, results
    assert "(open, 3 voters)" in results
    assert len(fake_discord.find_requests("GET", rf"/channels/{bot.channel.id}/polls/{mid}/answers/\d")) == 3


# --- meeting posts: buttons and threads --------------------------------------------------------------------------


async def test_rsvp_and_check_in_buttons_work_also_after_a_restart(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    meeting = number_after("meeting", (await bot.say(bot.organiser, f"schedule {SEED}")).text)
    assert bot.adapter is not None
    where = ChannelRef("discord", str(bot.channel.id))
    ref = await bot.adapter.send(where, Post("Meeting soon", meeting_id=meeting,
                                             controls=(Control.RSVP, Control.CHECK_IN)))
    message = fake_discord.get_message(int(ref.id))
    ids = [c["custom_id"] for row in message["components"] for c in row["components"]]
    assert ids == [f"circlebot:rsvp:{a}:{meeting}" for a in ("yes", "maybe", "no")] + [f"circlebot:here:{meeting}"]

    async def click(user: str, custom_id: str) -> dict[str, Any]:
        inter = await fake_discord.click(bot.member(user), int(ref.id), custom_id)
        response = await inter.wait_response()
        assert response["type"] == 4 and int(response["data"]["flags"]) & FLAG_EPHEMERAL
        return response

    said = await click("alice", f"circlebot:rsvp:yes:{meeting}")
    assert said["data"]["content"].startswith(f"Noted: yes for meeting #{meeting} on <t:")
    early = await click("carol", f"circlebot:here:{meeting}")
    assert early["data"]["content"].startswith(f"Check-in opens when meeting #{meeting} starts")
    await click("bob", f"circlebot:rsvp:maybe:{meeting}")
    await bot.restart()
    await click("alice", f"circlebot:rsvp:no:{meeting}")  # a new process, the same old buttons
    rsvps = {u.name: a for u, a in await bot.app.store.rsvps(meeting)}
    assert rsvps == {"alice": RsvpAnswer.NO, "bob": RsvpAnswer.MAYBE}

    bot.clock.advance(timedelta(days=2, hours=7, minutes=5))  # the meeting is on
    welcome = await click("carol", f"circlebot:here:{meeting}")
    assert f"you are checked in to meeting #{meeting}" in welcome["data"]["content"]
    assert [u.name for u, _ in await bot.app.store.checkins(meeting)] == ["carol"]
    bot.clock.advance(timedelta(hours=2))  # over
    late = await click("dan", f"circlebot:rsvp:yes:{meeting}")
    assert late["data"]["content"] == f"Meeting #{meeting} is over; RSVP to a coming one."


async def test_read_buttons_on_the_readings_post_answer_privately_and_count_for_organisers(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    meeting = number_after("meeting", (await bot.say(bot.organiser, f"schedule {SEED}")).text)
    assert bot.adapter is not None
    where = ChannelRef("discord", str(bot.channel.id))
    ref = await bot.adapter.send(where, Post("Reading for the meeting", meeting_id=meeting,
                                             controls=(Control.RSVP, Control.READ)))
    rows = [[c["custom_id"] for c in row["components"]] for row in fake_discord.get_message(int(ref.id))["components"]]
    assert rows == [[f"circlebot:rsvp:{a}:{meeting}" for a in ("yes", "maybe", "no")],
                    [f"circlebot:read:{a}:{meeting}" for a in ("all", "part", "not")]]

    async def click(user: str, custom_id: str) -> str:
        inter = await fake_discord.click(bot.member(user), int(ref.id), custom_id)
        response = await inter.wait_response()
        assert response["type"] == 4 and int(response["data"]["flags"]) & FLAG_EPHEMERAL
        return str(response["data"]["content"])

    said = await click("alice", f"circlebot:read:part:{meeting}")
    assert said.startswith(f"Noted for meeting #{meeting}, ") and "you read part of it" in said
    await click("bob", f"circlebot:read:all:{meeting}")
    await bot.restart()
    await click("alice", f"circlebot:read:all:{meeting}")  # changed, through the same old button, after a restart
    mine = await bot.say("alice", "read")  # the next meeting: this one
    assert "you read all of it" in mine.text and "Read so far" not in mine.text
    counts = await bot.say(bot.organiser, "read")
    assert "Read so far: " in counts.text and "2 all" in counts.text and "alice" not in counts.text, counts.text
    await bot.say(bot.organiser, f"unschedule {meeting}")
    gone = await click("carol", f"circlebot:read:not:{meeting}")
    assert gone == f"Meeting #{meeting} is not on the calendar any more."


async def test_discussion_questions_go_into_a_thread_on_the_meetings_post(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    assert bot.adapter is not None
    where = ChannelRef("discord", str(bot.channel.id))
    ref = await bot.adapter.send(where, Post("**Meeting #1** tonight"))
    first = await bot.adapter.send(where, Post("**Questions**\n1. Why?", thread_of=ref))
    second = await bot.adapter.send(where, Post("2. And then?", thread_of=MessageRef(where, ref.id)))
    thread = bot.guild.threads[int(ref.id)]
    assert thread.name == "Questions" and thread.parent_id == bot.channel.id
    assert first.channel.id == second.channel.id == str(thread.id)
    assert [m["content"] for m in fake_discord.channel_messages(thread)] == ["**Questions**\n1. Why?", "2. And then?"]
    assert len(fake_discord.find_requests("POST", r"/channels/\d+/messages/\d+/threads")) == 1


async def test_slash_commands_in_a_meetings_thread_belong_to_its_circle(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    assert bot.adapter is not None
    meeting = number_after("meeting", (await bot.say(bot.organiser, f"schedule {SEED}")).text)
    where = ChannelRef("discord", str(bot.channel.id))
    ref = await bot.adapter.send(where, Post(f"**Meeting #{meeting}** tonight"))
    await bot.adapter.send(where, Post("**Questions**\n1. Why?", thread_of=ref))
    bot.channel = bot.guild.threads[int(ref.id)]  # members now type in the meeting's thread
    assert "Test study circle" in (await bot.say("alice", "circle")).text
    assert f"yes for meeting #{meeting}" in (await bot.say("alice", "rsvp yes")).text
    inter = await fake_discord.autocomplete(bot.member("alice"), bot.channel, "rsvp", "meeting",
                                            {"answer": "yes", "meeting": ""})
    assert [c["value"] for c in (await inter.wait_response())["data"]["choices"]] == [meeting]


async def test_commands_in_posts_are_written_as_slash_commands(bot: DiscordDriver) -> None:
    from circlebot.core.timeline import Timeline

    timeline = Timeline(bot.app)
    bot.app.timeline = timeline
    await timeline.start()  # the syllabus plans meeting #1 and its reading goes out at once
    assert bot.adapter is not None
    await asyncio.wait_for(bot.adapter.drain(), 5)
    reading = [p for p in bot.posts() if "Reading for meeting #1" in p]
    assert reading and "Coming? /rsvp answer:yes meeting:1 (or maybe / no)." in reading[0], bot.posts()


async def test_long_posts_are_split_at_discords_limit(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    assert bot.adapter is not None
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 80 for i in range(12))
    await bot.adapter.send(ChannelRef("discord", str(bot.channel.id)), Post(text))
    sent = fake_discord.channel_messages(bot.channel)
    assert len(sent) > 1 and all(len(m["content"]) <= 2000 for m in sent)
    assert sent[0]["content"].startswith("Paragraph 0") and sent[-1]["content"].rstrip().endswith("word")


async def test_a_send_with_the_same_key_after_a_restart_posts_nothing_twice(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    """The key becomes each message's nonce: a new process sending the same post again gets the messages
    already posted (buttons and all), as Discord's enforce_nonce promises; another key posts anew."""
    assert bot.adapter is not None
    where = ChannelRef("discord", str(bot.channel.id))
    text = "\n\n".join(f"Paragraph {i}: " + "word " * 80 for i in range(12))  # several messages
    post = Post(text, meeting_id=1, controls=(Control.RSVP,))
    first = await bot.adapter.send(where, post, key="study/1/assignment/1@discord/1")
    count = len(fake_discord.channel_messages(bot.channel))
    await bot.restart()
    assert bot.adapter is not None
    again = await bot.adapter.send(where, post, key="study/1/assignment/1@discord/1")
    assert again == first and len(fake_discord.channel_messages(bot.channel)) == count > 1
    nonces = [r.json["nonce"] for r in fake_discord.find_requests("POST", r"/channels/\d+/messages")]
    assert len(nonces) == 2 * count and len(set(nonces)) == count and all(len(n) <= 25 for n in nonces)
    assert fake_discord.channel_messages(bot.channel)[-1]["components"]  # the buttons are on the post
    other = await bot.adapter.send(where, post, key="study/1/assignment/1@discord/2")
    assert other != first and len(fake_discord.channel_messages(bot.channel)) == 2 * count


async def test_a_reminder_due_while_discord_answers_503_arrives_once_when_it_is_back(
    bot: DiscordDriver, fake_discord: FakeDiscord
) -> None:
    from datetime import UTC, datetime

    from circlebot.core.timeline import Timeline

    timeline = Timeline(bot.app)  # driven by the fake clock: tick() instead of a scheduler
    bot.app.timeline = timeline
    await timeline.start()  # the syllabus fills Thu 26 Nov; its reading goes out at once
    bot.clock.set(datetime(2026, 11, 25, 19, tzinfo=UTC))  # the reminder's due time, and Discord is down
    fake_discord.outage("POST", r"/channels/\d+/messages")
    assert await timeline.tick() == 0
    for _ in range(3):
        bot.clock.advance(timedelta(seconds=10))
        assert await timeline.tick() == 0
    fake_discord.end_outage()
    for _ in range(8):
        bot.clock.advance(timedelta(seconds=10))
        await timeline.tick()
    reminders = [m for m in fake_discord.channel_messages(bot.channel) if "Reminder: meeting #1" in m["content"]]
    assert len(reminders) == 1
    assert 503 in {r.status for r in fake_discord.find_requests("POST", r"/channels/\d+/messages")}
    assert (await bot.app.store.post_states(1))["reminder"] == "sent"


# --- wiring ------------------------------------------------------------------------------------------------------


async def test_circlebot_run_serves_discord_from_the_config(
    fake_discord: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from circlebot import cli
    from discord_driver import TOKEN_ENV, discord_settings

    guild = fake_discord.add_guild("Study Circle")
    channel = guild.add_text_channel("study")
    settings = discord_settings(tmp_path, fake_discord, guild, channel, guild.add_role("Organisers"))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert await cli.serve(settings, console=False) == 2  # no token: a clear error, nothing started

    monkeypatch.setenv(TOKEN_ENV, fake_discord.token)
    task = asyncio.create_task(cli.serve(settings, console=False))
    try:
        await fake_discord.wait_for(lambda: fake_discord.guild_commands.get(guild.id) and fake_discord.identify_count)
        inter = await fake_discord.slash(fake_discord.add_member(guild, "alice"), channel, "circle")
        answer = await inter.wait_response()
        assert "Test study circle" in answer["data"]["content"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert fake_discord.token not in caplog.text


async def test_a_burst_of_native_votes_is_counted_exactly(bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    poll, mid = await open_poll(bot)
    members = [fake_discord.add_member(bot.guild, f"m{i}") for i in range(150)]
    before = fake_discord.vote_events
    for i, m in enumerate(members):
        await fake_discord.vote(m, mid, 1 + i % 3)
        if i % 2:
            await fake_discord.vote(m, mid, 1 + (i + 1) % 3)
        if i % 5 == 0:
            await fake_discord.unvote(m, mid, 1 + i % 3)
    await bot.wait_votes(fake_discord.vote_events - before)
    expected = [len(fake_discord.polls[mid].votes.get(a, [])) for a in (1, 2, 3)]
    results = await bot.say("carol", f"poll results {poll}")
    for n, (day, count) in enumerate(zip(("Mon", "Wed", "Thu"), expected, strict=True), 1):
        assert f"{n}. {day}: {count} " in results.text, (expected, results)


async def test_a_dropped_gateway_is_counted_as_a_reconnect_once_it_is_back(
        bot: DiscordDriver, fake_discord: FakeDiscord) -> None:
    """`/metrics` and `/readyz` read each platform's reconnects and connection from its adapter."""
    from circlebot.core.adapter import connection

    assert bot.adapter is not None
    assert connection(bot.adapter) == (0, True)
    assert await fake_discord.force_reconnect() == 1
    await fake_discord.wait_resumed()
    await fake_discord.wait_for(lambda: connection(bot.adapter) == (1, True))  # type: ignore[arg-type]
    assert bot.app.metrics.platforms() == {"discord": (1, True)}

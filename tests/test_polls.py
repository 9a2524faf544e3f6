"""Poll rules through the whole core (test adapter, real SQLite file, fake clock): closing times, secret polls,
polls that no platform accepted, and hints written in each platform's syntax."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import pytest

from circlebot.core.adapter import PlatformRefused
from circlebot.core.commands import CommandTable, Syntax
from circlebot.core.domain import ChannelRef, MessageRef, PollSpec, UserRef, VoteCast
from circlebot.features import all_commands
from drivers import CoreDriver, RecordingAdapter, number_after


async def test_a_poll_closes_at_its_closing_time_even_when_the_bot_was_down_then(core: CoreDriver) -> None:
    poll = number_after("poll", (await core.say("olga", 'poll "Soon?" "A" "B" --hours 2')).text)
    await core.vote("alice", poll, [1])
    core.clock.advance(timedelta(hours=1, minutes=59))
    await core.vote("carol", poll, [2])  # in time
    core.clock.advance(timedelta(hours=1))  # the bot was down at the closing time, and comes back now
    await core.vote("bob", poll, [2])  # read back from the platform at start: cast after the closing time
    late = await core.say("dan", f"vote {poll} 2")
    assert "is closed" in late, late
    assert await core.app.polls.close_due_polls() == 1
    results = await core.say("dan", f"poll results {poll}")
    assert "1. A: 1" in results and "2. B: 1" in results and "2 voters" in results, results
    stored = await core.app.store.poll(poll)
    assert stored is not None and stored.closed_at == stored.closes_at


async def test_votes_one_event_at_a_time_from_known_members_keep_the_poll_rules(core: CoreDriver) -> None:
    # members already known and the poll already looked up: the vote path's lean case (issue 10)
    poll = number_after("poll", (await core.say("olga", 'poll "Soon?" "A" "B" "C" --hours 2')).text)
    for user in ("alice", "bob", "carol"):
        await core.vote(user, poll, [1])
    await core.vote("bob", poll, [2])  # a changed ballot replaces the old one
    await core.vote("carol", poll, [9])  # an answer the poll does not have spoils the ballot
    results = await core.say("dan", f"poll results {poll}")
    assert "1. A: 1" in results and "2. B: 1" in results and "2 voters" in results, results
    core.clock.advance(timedelta(hours=2))  # its closing time, before the bot has closed it
    await core.vote("alice", poll, [3])  # cast at the closing time: too late
    assert await core.app.polls.close_due_polls() == 1
    await core.vote("bob", poll, [3])  # and after it closed
    results = await core.say("dan", f"poll results {poll}")
    assert "1. A: 1" in results and "2. B: 1" in results and "3. C: 0" in results, results


async def test_a_vote_the_database_refuses_fails_alone_among_votes_arriving_together(core: CoreDriver) -> None:
    # votes from known members arrive as separate events at the same moment: one batch, one transaction; the
    # database refuses one ballot (a real SQLite trigger), which is answered with an apology, and the others count
    poll = number_after("poll", (await core.say("olga", 'poll "Where?" "Here" "There"')).text)
    voters = ("alice", "bob", "carol", "dan")
    for user in voters:
        await core.vote(user, poll, [1])
    bob = await core.app.store.ensure_member(UserRef("console", "bob", "bob"))
    async with core.app.store.db.transaction() as conn:
        await conn.execute(f"CREATE TRIGGER refuse_bob BEFORE UPDATE ON votes WHEN NEW.member_id = {bob} "
                           "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    where = core.adapter.polls[poll]
    answers = await asyncio.wait_for(asyncio.gather(*(
        core.app.dispatch(VoteCast(UserRef("console", u, u), (1,), core.clock.now(), message=where))
        for u in voters)), 10)
    assert [a for i, a in enumerate(answers) if i != 1] == [None, None, None], answers
    assert isinstance(answers[1], str) and "went wrong on my side" in answers[1], answers
    results = await core.say("olga", f"poll results {poll}")
    assert "1. Here: 1" in results and "2. There: 3" in results and "4 voters" in results, results


async def test_a_vote_event_cancelled_while_its_batch_is_written_stops_no_other_vote(core: CoreDriver) -> None:
    # an adapter's task handling one vote is cancelled (the platform disconnects, say) while the vote's batch is
    # being written: the other votes of the batch are acknowledged as usual, and every vote is counted
    poll = number_after("poll", (await core.say("olga", 'poll "Where?" "Here" "There"')).text)
    voters = [f"member{i}" for i in range(30)]
    for user in voters:
        await core.vote(user, poll, [1])
    where = core.adapter.polls[poll]
    handling = [asyncio.ensure_future(core.app.dispatch(
        VoteCast(UserRef("console", u, u), (1,), core.clock.now(), message=where))) for u in voters]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not any(h.done() for h in handling)
    handling[3].cancel()
    results = await asyncio.wait_for(asyncio.gather(*handling, return_exceptions=True), 10)
    assert isinstance(results[3], asyncio.CancelledError), results
    assert [r for i, r in enumerate(results) if i != 3] == [None] * 29, results
    shown = await core.say("olga", f"poll results {poll}")
    assert "1. Here: 0" in shown and "2. There: 30" in shown, shown


async def test_a_native_vote_arriving_while_poll_close_commits_leaves_the_announced_results_final(
        core: CoreDriver, caplog: pytest.LogCaptureFixture) -> None:
    # carol changes her vote at the moment the organiser's `poll close` is committing (its transaction holds the
    # database, so the vote waits in the write batcher and reaches the database after the close): the close's
    # commit is the cut-off. Her change is not counted (logged, not an error: the platform's poll has ended
    # too), and the results the close announced are what `poll results` shows afterwards
    poll = number_after("poll", (await core.say("olga", 'poll "Where?" "Here" "There"')).text)
    for user in ("alice", "bob", "carol"):
        await core.vote(user, poll, [1])
    closing = asyncio.ensure_future(core.say("olga", f"poll close {poll}"))

    async def committing() -> None:
        while not core.app.store.db._write_lock.locked():  # type: ignore[attr-defined]
            assert not closing.done(), closing.result()
            await asyncio.sleep(0)

    await asyncio.wait_for(committing(), 10)
    with caplog.at_level(logging.INFO, logger="circlebot"):
        late = await asyncio.wait_for(core.app.dispatch(
            VoteCast(UserRef("console", "carol", "carol"), (1,), core.clock.now(), message=core.adapter.polls[poll])),
            10)
    assert late is None, late
    announced = (await asyncio.wait_for(closing, 10)).text
    assert "(closed, 3 voters)" in announced and "1. Here: 3" in announced and "2. There: 0" in announced, announced
    assert (await core.say("dan", f"poll results {poll}")).text == announced
    ended = core.adapter.ended[core.adapter.polls[poll]]  # the platform's poll ended with the same results
    assert ended.replace("**", "") == announced, ended
    assert "is closed (it closed before the vote reached the database)" in caplog.text, caplog.text


async def test_a_vote_cast_before_the_close_but_arriving_after_it_fails_alone_in_its_batch(
        core: CoreDriver, caplog: pytest.LogCaptureFixture) -> None:
    # a Matrix sync page arrives after poll #1 closed, holding a vote cast a moment before the close and votes
    # in poll #2, still open: the late vote is not counted (the announced results stay), the others count
    first = number_after("poll", (await core.say("olga", 'poll "Where?" "Here" "There"')).text)
    second = number_after("poll", (await core.say("olga", 'poll "When?" "Mon" "Wed"')).text)
    await core.vote("alice", first, [1])
    cast = core.clock.now()
    core.clock.advance(timedelta(seconds=1))
    announced = (await core.say("olga", f"poll close {first}")).text
    assert "1. Here: 1" in announced, announced
    page = [VoteCast(UserRef("console", u, u), answers, cast, message=core.adapter.polls[poll])
            for u, poll, answers in (("bob", second, (0,)), ("alice", first, (1,)), ("carol", second, (1,)))]
    with caplog.at_level(logging.INFO, logger="circlebot"):
        assert await asyncio.wait_for(core.app.dispatch(page), 10) is None
    assert (await core.say("dan", f"poll results {first}")).text == announced
    shown = await core.say("dan", f"poll results {second}")
    assert "1. Mon: 1" in shown and "2. Wed: 1" in shown and "2 voters" in shown, shown
    assert f"poll #{first}: the poll is closed (it closed before" in caplog.text, caplog.text


async def test_a_secret_poll_shows_no_turnout_until_it_closes(core: CoreDriver) -> None:
    poll = number_after("poll", (await core.say("olga", 'poll "Keep Thursdays?" "Yes" "No" --secret')).text)
    await core.say("alice", f"vote {poll} 1")
    await core.vote("bob", poll, [2])
    shown = await core.say("carol", f"poll results {poll}")
    assert "voter" not in shown.text and "Yes: " not in shown.text, shown
    mine = await core.say("alice", f"poll results {poll}")
    assert "voter" not in mine.text and "Your vote: Yes" in mine, mine
    closed = await core.say("olga", f"poll close {poll}")
    assert "2 voters" in closed and "1. Yes: 1" in closed, closed


@dataclass
class RefusingAdapter(RecordingAdapter):
    """A platform that refuses every poll, saying why (as Discord does without the Send Polls permission)."""

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        raise PlatformRefused("the bot lacks the Send Polls permission in #study; grant it, then try again")


async def test_a_poll_no_platform_accepted_is_not_left_open(core: CoreDriver) -> None:
    refusing = RefusingAdapter(core.adapter.zone)
    core.app.add_adapter(refusing)
    core.adapter = refusing
    answer = await core.say("olga", 'poll "Where next?" "Here" "There"')
    assert "not opened" in answer and "Send Polls" in answer and "try again" in answer, answer
    assert "is open" not in answer.text
    ghost = await core.say("alice", "vote 1 1")
    assert "there is no poll #1" in ghost.text.lower(), ghost
    assert await core.app.store.polls("study") == []


def test_hints_come_from_each_platforms_syntax() -> None:
    table = CommandTable(all_commands())
    vote = table.get(("vote",))
    assert vote is not None
    assert Syntax("!").example(vote, poll=3, answers="<n>") == "!vote 3 <n>"
    slash = Syntax("/", slash=True)
    assert slash.example(vote, poll=3, answers="<n>") == "/vote poll:3 answers:<n>"
    results = table.get(("poll", "results"))
    assert results is not None and slash.example(results, poll=3) == "/poll results poll:3"


async def test_the_vote_hint_is_written_as_the_asker_types_commands(core: CoreDriver) -> None:
    opened = await core.say("olga", 'poll "Which?" "A" "B"')
    assert "Vote with vote 1 <n>." in opened, opened
    assert [s.vote_hint for s in core.adapter.started] == ["vote 1 <n>"]

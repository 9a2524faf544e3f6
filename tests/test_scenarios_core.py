"""The feature scenarios through the core's test adapter (on SQLite and on PostgreSQL), injected clock."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import scenarios
from circlebot.app import App
from circlebot.core.commands import Command
from circlebot.core.domain import ChannelRef
from drivers import CoreDriver, FakeClock, RecordingAdapter
from pg_harness import BOTH_DATABASES


@BOTH_DATABASES
@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(core: CoreDriver, scenario: Callable[[CoreDriver], Awaitable[None]]) -> None:
    await scenario(core)


async def test_unexpected_error_gets_an_apology_with_an_id_and_a_logged_traceback(
    core: CoreDriver, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(ctx: object) -> str:
        raise RuntimeError("database on fire")

    app = App(core.app.settings, core.app.store, core.app.readings, core.clock,
              [*core.app.commands.commands, Command(("boom",), "Always fails.", broken)])
    app.add_adapter(core.adapter)
    core.app = app
    with caplog.at_level(logging.ERROR):
        answer = await core.say("alice", "boom")
    m = re.search(r"error ([0-9a-f]{8})", answer.text)
    assert m and answer.private, answer
    assert "database on fire" not in answer.text
    logged = [r for r in caplog.records if m[1] in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "Test study circle" in await core.say("alice", "circle")  # the bot carries on


async def test_help_is_generated_from_the_declarations(core: CoreDriver) -> None:
    member = await core.say("alice", "help")
    organiser = await core.say("olga", "help")
    assert "rsvp <yes|maybe|no> [meeting]" in member
    assert "schedule" not in member.text  # members are not shown what they cannot do
    assert "schedule <slug> [date] [time]" in organiser and "(organisers)" in organiser
    one = await core.say("alice", "help poll")
    assert 'poll <question> <answers...> [--multi] [--hours HOURS] [--secret]' in one
    assert "poll close <poll>" in one and "(organisers only)" in one
    assert "There is no command" in await core.say("alice", "help nothing")


async def test_readings_and_reading(core: CoreDriver) -> None:
    listing = await core.say("alice", "readings")
    assert "bolivia-2003-first-balance-sheet" in listing
    assert "bolivia-2003-first-balance-sheet" in await core.say("alice", "readings bolivia cob")
    assert "No reading matches" in await core.say("alice", "readings chess openings")
    one = await core.say("alice", "reading bolivia-2003-first-balance-sheet")
    assert "In Defence of Marxism" in one and "20 October 2003" in one
    assert "Lack of a revolutionary leadership" in one and "min to read" in one


async def test_schedule_on_a_date_and_clashes(core: CoreDriver) -> None:
    seed = scenarios.SEED
    first = await core.say("olga", f"schedule {seed} 2026-12-03")
    assert "Thu 3 Dec 2026, 19:00 GMT" in first, first
    clash = await core.say("olga", f"schedule {seed} 2026-12-03")
    assert "already at that time" in clash
    wrong_day = await core.say("olga", f"schedule {seed} 2026-12-02")
    assert "does not usually meet on Wednesday" in wrong_day
    custom = await core.say("olga", f"schedule {seed} 2026-12-02 18:30")
    assert "Wed 2 Dec 2026, 18:30 GMT" in custom
    past = await core.say("olga", f"schedule {seed} 2026-11-01 19:00")
    assert "already passed" in past
    nxt = await core.say("olga", f"schedule {seed}")  # 26 Nov is the next free Thursday
    assert "Thu 26 Nov 2026" in nxt
    nxt2 = await core.say("olga", f"schedule {seed} next")  # 26 Nov taken, 3 Dec taken: 10 Dec
    assert "Thu 10 Dec 2026" in nxt2
    cancelled = await core.say("olga", "unschedule 1")
    assert "is cancelled" in cancelled
    listed = (await core.say("alice", "upcoming")).text
    assert "#1 " not in listed and "#4 Thu 10 Dec" in listed, listed


async def test_poll_limits_are_checked_before_anything_is_sent(core: CoreDriver) -> None:
    too_long = await core.say("olga", f'poll "{"Q" * 301}" "A" "B"')
    assert "the most is 300" in too_long
    one = await core.say("olga", 'poll "Only one?" "A"')
    assert "at least two answers" in one
    same = await core.say("olga", 'poll "Same?" "A" "a"')
    assert "Two answers are the same" in same
    hours = await core.say("olga", 'poll "Long?" "A" "B" --hours 1000')
    assert "between 1 and 768 hours" in hours
    assert core.adapter.sent == []


async def test_a_platform_whose_polls_expire_sets_the_end_for_every_platform(core: CoreDriver) -> None:
    from circlebot.core.adapter import PollLimits

    core.adapter.poll_limits = PollLimits(max_hours=768)  # as Discord's
    opened = await core.say("olga", 'poll "Long?" "A" "B"')
    assert "It closes in 32 days, the longest console allows." in opened
    poll = await core.app.store.poll(1)
    assert poll is not None and poll.closes_at == core.clock.now() + timedelta(hours=768)


async def test_polls_with_a_closing_time_close_by_themselves(core: CoreDriver) -> None:
    poll = int(re.findall(r"#(\d+)", (await core.say("olga", 'poll "Soon?" "A" "B" --hours 2')).text)[0])
    await core.say("alice", f"vote {poll} 2")
    assert await core.app.polls.close_due_polls() == 0
    core.clock.advance(timedelta(hours=2, seconds=1))
    assert await core.app.polls.close_due_polls() == 1
    assert any("Poll #1 has closed" in p and "Result: B" in p for p in core.posts()), core.posts()
    assert await core.app.polls.close_due_polls() == 0


async def test_native_ballots_are_cleaned_the_msc3381_way(core: CoreDriver) -> None:
    from circlebot.core.domain import UserRef, VoteCast

    multi = int(re.findall(r"#(\d+)", (await core.say("olga", 'poll "Days?" "Mon" "Tue" "Wed" --multi')).text)[0])
    single = int(re.findall(r"#(\d+)", (await core.say("olga", 'poll "One?" "X" "Y"')).text)[0])
    now = core.clock.now()

    def cast(user: str, poll: int, answers: tuple[int, ...]) -> VoteCast:
        return VoteCast(UserRef("console", user, user), answers, now, poll_id=poll)

    await core.app.dispatch([
        cast("ann", multi, (0, 0, 2)),  # a duplicate counts once
        cast("ben", multi, (1, 7)),  # an unknown answer spoils the whole ballot
        cast("cid", single, (1, 0)),  # more than max_selections: cut to the first
    ])
    assert "(open, 1 voter)" in await core.say("bob", f"poll results {multi}")
    assert "1. Mon: 1" in await core.say("bob", f"poll results {multi}")
    assert "3. Wed: 1" in await core.say("bob", f"poll results {multi}")
    assert "2. Y: 1" in await core.say("bob", f"poll results {single}")


async def test_add_and_remove_votes_one_answer_at_a_time(core: CoreDriver) -> None:
    """Discord sends one event per answer; the core keeps the whole ballot."""
    from circlebot.core.domain import UserRef, VoteCast, VoteChange

    poll = int(re.findall(r"#(\d+)", (await core.say("olga", 'poll "Days?" "Mon" "Tue" "Wed" --multi')).text)[0])
    single = int(re.findall(r"#(\d+)", (await core.say("olga", 'poll "One?" "X" "Y"')).text)[0])
    alice = UserRef("console", "alice", "alice")
    for change, answer, p in [("add", 0, poll), ("add", 2, poll), ("remove", 0, poll), ("add", 1, single)]:
        await core.app.dispatch(VoteCast(alice, (answer,), core.clock.now(), poll_id=p, change=VoteChange(change)))
    assert "3. Wed: 1" in await core.say("bob", f"poll results {poll}")
    assert "1. Mon: 0" in await core.say("bob", f"poll results {poll}")
    assert "2. Y: 1" in await core.say("bob", f"poll results {single}")
    await core.app.dispatch(VoteCast(alice, (1,), core.clock.now(), poll_id=single, change=VoteChange.REMOVE))
    assert "(open, 0 voters)" in await core.say("bob", f"poll results {single}")


async def test_one_circle_on_several_platforms_shares_meetings_polls_and_tallies(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A circle in the terminal and in a Matrix room at once: one poll, posted to both, one tally."""
    from circlebot.core.domain import ChannelRef, Invocation, UserRef, VoteCast
    from circlebot.readings import load_collection
    from circlebot.store import Database, Store
    from conftest import circle_config, make_settings

    settings = make_settings(tmp_path, circles=[circle_config(
        syllabus=[], where={"console": True, "matrix_rooms": ["!room:example.org"]},
        organisers={"console": ["olga"], "matrix_users": ["@olga:example.org"]})])
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        zone = settings.zone_of(settings.circles[0])
        console, matrix = RecordingAdapter(zone), RecordingAdapter(zone, platform="matrix", prefix="!")
        app.add_adapter(console)
        app.add_adapter(matrix)
        room = ChannelRef("matrix", "!room:example.org")
        await app.dispatch(Invocation(UserRef("matrix", "@olga:example.org", "Olga"), room, clock.now(),
                                      text='poll "Next?" "Chile" "Cuba"'))
        assert "Poll #1 is open on console, matrix" in matrix.render(matrix.replies[-1][1])
        assert set(console.polls) == set(matrix.polls) == {1}
        await app.dispatch([
            VoteCast(UserRef("matrix", "@ann:example.org"), (1,), clock.now(), message=matrix.polls[1]),
            VoteCast(UserRef("console", "bob"), (1,), clock.now(), message=console.polls[1]),
            VoteCast(UserRef("console", "cid"), (0,), clock.now(), message=console.polls[1]),
        ])
        await app.dispatch(Invocation(UserRef("console", "olga", "olga"), ChannelRef("console", "study"),
                                      clock.now(), text="poll close 1"))
        result = console.render(console.replies[-1][1])
        assert "(closed, 3 voters)" in result and "2. Cuba: 2" in result and "Result: Cuba" in result
        assert console.polls[1] in console.ended and matrix.polls[1] in matrix.ended  # ended on both
        assert "Usage: `!vote" in (await _say(app, matrix, room, "vote x")), "each platform its own syntax"
    finally:
        await store.batcher.stop()
        await db.close()


async def _say(app: App, adapter: RecordingAdapter, where: ChannelRef, text: str) -> str:
    from circlebot.core.domain import Invocation, UserRef

    await app.dispatch(Invocation(UserRef(where.platform, "someone"), where, datetime.now(UTC), text=text))
    return adapter.replies[-1][1].text

"""Turnout (issue 14): the scenarios of turnout_scenarios.py through the core's test adapter (on SQLite and on
PostgreSQL, fake clock), and the config they rest on."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import turnout_scenarios
from circlebot.app import App
from circlebot.config import ConfigError
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter
from pg_harness import BOTH_DATABASES


@pytest.fixture
async def make_core(tmp_path: Path, clock: FakeClock,
                    database: str) -> AsyncIterator[Callable[..., Awaitable[CoreDriver]]]:
    """A core driver for a circle with the given settings (on the default test circle)."""
    opened: list[Store] = []

    async def make(**circle: Any) -> CoreDriver:
        settings = make_settings(tmp_path, database=database, circles=[circle_config(**circle)])
        store = Store(await Database.open(settings.database))
        store.batcher.start()
        opened.append(store)
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
        app.add_adapter(adapter)
        return CoreDriver(app, adapter, clock, settings.circles[0].slug)

    yield make
    for store in opened:
        await store.batcher.stop()
        await store.db.close()


@BOTH_DATABASES
@pytest.mark.parametrize("scenario", turnout_scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(make_core: Callable[..., Awaitable[CoreDriver]],
                        scenario: Callable[[CoreDriver], Awaitable[None]]) -> None:
    await scenario(await make_core(**turnout_scenarios.CIRCLES[scenario.__name__]))


def test_turnout_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        make_settings(tmp_path, circles=[circle_config(turnout={"capacity": 0, "capcity": 3})])
    problems = e.value.problems
    assert any(p.startswith("circles[0].turnout.capacity:") and "greater than or equal to 1" in p
               for p in problems), problems
    assert any(p.startswith("circles[0].turnout.capcity: unknown key") for p in problems), problems


async def test_a_circle_without_a_capacity_has_no_waitlist(make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    d = await make_core()
    await turnout_scenarios.start_timeline(d)
    for name in ("alice", "bob", "carol"):
        answer = await d.say(name, "rsvp yes")
        assert "waitlist" not in answer.text and "place" not in answer.text, answer
    listed = await d.say("alice", "upcoming")
    assert "RSVPs: 3 yes, 0 maybe, 0 no" in listed and "waitlist" not in listed.text, listed


async def test_buttons_and_reactions_go_through_the_waitlist(make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    """An RSVP from a button (or reaction) beyond the capacity is told its turn; one withdrawn frees the place,
    which goes to the first waiting."""
    from circlebot.core.domain import RsvpAnswer, RsvpCast, UserRef

    d = await make_core(turnout={"capacity": 1})
    await turnout_scenarios.start_timeline(d)

    def button(name: str, answer: RsvpAnswer | None) -> RsvpCast:
        return RsvpCast(UserRef("console", name, name), answer, d.clock.now(), meeting_id=1)

    assert "You have a place" in str(await d.app.dispatch(button("alice", RsvpAnswer.YES)))
    waiting = str(await d.app.dispatch(button("bob", RsvpAnswer.YES)))
    assert "number 1 on the waitlist" in waiting, waiting
    assert "withdrawn" in str(await d.app.dispatch(button("alice", None)))
    told = [p for p in d.posts() if "A place has freed up at meeting #1" in p]
    assert len(told) == 1 and "bob, you are in" in told[0], d.posts()
    assert "RSVP yes (1): bob" in await d.say("olga", "attendance 1")


def test_quorum_config_errors_name_the_key(tmp_path: Path) -> None:
    cases = [
        ({"quorum": 3}, "circles[0].turnout: 'quorum' is counted at the RSVP deadline: give 'deadline' too"),
        ({"on_low_turnout": "cancel"}, "circles[0].turnout: 'on_low_turnout' says what to do when fewer than "
                                       "'quorum' said yes"),
        ({"deadline": "24h", "quorum": 5, "capacity": 4}, "circles[0].turnout: 'quorum' (5) is more than "
                                                          "'capacity' (4)"),
        ({"deadline": "24h", "quorum": 2, "on_low_turnout": "shrug"}, "circles[0].turnout.on_low_turnout: "
                                                                      "Input should be 'notify', 'postpone' or "
                                                                      "'cancel'"),
        ({"deadline": "0m"}, "circles[0].turnout.deadline: a post 0 minutes before the meeting"),
    ]
    for turnout, expected in cases:
        with pytest.raises(ConfigError) as e:
            make_settings(tmp_path, circles=[circle_config(turnout=turnout)])
        assert any(p.startswith(expected) for p in e.value.problems), (turnout, e.value.problems)


async def test_members_on_two_platforms_share_one_waitlist_and_one_quorum(tmp_path: Path, clock: FakeClock) -> None:
    """A circle on the console and on Matrix: places, the waitlist and the quorum count answers from both; the
    place freed on one platform goes to the first waiting on the other, told (and pinged) on its platform."""
    from circlebot.core.domain import ChannelRef, Invocation, UserRef

    room = "!study:example.org"
    settings = make_settings(tmp_path, circles=[circle_config(
        where={"console": True, "matrix_rooms": [room]},
        turnout={"capacity": 2, "deadline": "48h", "quorum": 2, "on_low_turnout": "cancel"})])
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        console = RecordingAdapter(settings.zone_of(settings.circles[0]))
        matrix = RecordingAdapter(settings.zone_of(settings.circles[0]), platform="matrix", prefix="!")
        app.add_adapter(console)
        app.add_adapter(matrix)
        d = CoreDriver(app, console, clock, "study")
        timeline = await turnout_scenarios.start_timeline(d)

        async def on_matrix(name: str, text: str) -> str:
            before = len(matrix.replies)
            user = UserRef("matrix", f"@{name}:example.org", name)
            await app.dispatch(Invocation(user, ChannelRef("matrix", room), clock.now(), text=text))
            (reply,) = matrix.replies[before:]
            return matrix.render(reply[1])

        assert "You have a place" in await d.say("alice", "rsvp yes")  # console
        assert "You have a place" in await on_matrix("bob", "rsvp yes")
        assert "number 1 on the waitlist" in await on_matrix("carol", "rsvp yes")
        assert "number 2 on the waitlist" in await d.say("dan", "rsvp yes")  # console

        await d.say("alice", "rsvp no")  # a console place frees up: carol, on Matrix, is first
        told = [(where.platform, p) for where, p, _ in (*console.sent, *matrix.sent)
                if "A place has freed up" in matrix.render(p)]
        assert sorted(w for w, _ in told) == ["console", "matrix"], told
        assert all("carol, you are in" in matrix.render(p) for _, p in told)
        assert {u.id for u in told[0][1].mentions} == {"@carol:example.org"} and told[0][1].notify

        clock.set(turnout_scenarios.DEADLINE_DUE)
        await timeline.tick()  # bob (Matrix) and carol (Matrix) make the quorum of 2: the meeting is on
        for adapter in (console, matrix):
            (on,) = [adapter.render(p) for _, p, _ in adapter.sent if "Meeting #1 is on" in adapter.render(p)]
            assert "Coming (2): bob, carol." in on and "Waiting for a place: 1. dan." in on, on
    finally:
        await store.batcher.stop()
        await store.db.close()


async def test_a_deadline_acts_once_and_its_post_is_retried_as_decided(
        make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    """The platform is down at the deadline: the meeting is postponed once (not again at each try), and the
    post saying so goes out when the platform is back, though its meeting has moved since."""
    from datetime import timedelta

    d = await make_core(turnout={"deadline": "48h", "quorum": 2, "on_low_turnout": "postpone"})
    timeline = await turnout_scenarios.start_timeline(d)
    await d.say("alice", "rsvp yes")
    d.clock.set(turnout_scenarios.DEADLINE_DUE)
    d.adapter.down = True
    await timeline.tick()
    for _ in range(3):
        d.clock.advance(timedelta(seconds=10))
        await timeline.tick()
    moved = await d.app.store.meeting(1)
    assert moved is not None and moved.starts_at.date().isoformat() == "2026-12-03", moved  # moved once
    assert not [p for p in d.posts() if "postponed" in p]
    d.adapter.down = False
    d.clock.advance(timedelta(seconds=60))
    await timeline.tick()
    d.clock.advance(timedelta(seconds=60))
    await timeline.tick()
    posted = [p for p in d.posts() if "Meeting #1 is postponed" in p]
    assert len(posted) == 1, d.posts()
    assert (await d.app.store.meeting(1)) == moved
    assert "RSVP deadline sent" not in (await d.say("alice", "upcoming")).text  # the new time's is still to come


async def test_low_turnout_tells_the_named_organisers_privately(
        make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    """`notify`: the organisers the config names get the low turnout by direct message; the channel's post
    does not ping them."""
    d = await make_core(turnout={"deadline": "48h", "quorum": 3})
    timeline = await turnout_scenarios.start_timeline(d)
    await d.say("alice", "rsvp yes")
    d.clock.set(turnout_scenarios.DEADLINE_DUE)
    await timeline.tick()
    (told,) = await d.directs("olga")
    assert "Low turnout for meeting #1" in told and "only 1 said yes" in told, told
    (low,) = [p for p in d.posts() if "Low turnout for meeting #1" in p]
    assert await d.pinged(low) == set()


async def test_direct_reminders_are_throttled_per_platform(make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    """Three due at once on one platform go out one per `direct_interval`, not at once."""
    import asyncio

    d = await make_core()
    timeline = await turnout_scenarios.start_timeline(d)
    turnout_scenarios.quick_directs(d, 0.05)
    for name in ("alice", "bob", "carol"):
        await d.say(name, "remind me dm on")
        await d.say(name, "rsvp yes")
    d.clock.set(turnout_scenarios.REMINDER_DUE)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await timeline.tick()
    took = loop.time() - began
    assert [u.id for u, _ in d.adapter.directs] == ["alice", "bob", "carol"]
    assert took >= 0.1, took  # two pauses of 0.05 s between three
    await timeline.tick()
    assert len(d.adapter.directs) == 3  # once


async def test_remind_me_refuses_what_it_cannot_do(make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    d = await make_core(turnout={"dm_reminders": False})
    assert "does not send reminders by direct message" in await d.say("alice", "remind me dm on")
    d = await make_core()
    bad = await d.say("alice", "remind me soon")
    assert "neither `dm` nor how long before" in bad.text.replace("'", "") or "is neither" in bad, bad
    assert "Usage:" in bad
    assert "between 1 minute and 7 days" in await d.say("alice", "remind me 9d")
    assert "are off" in await d.say("alice", "remind me dm")


MEETING_1 = turnout_scenarios.REMINDER_DUE + timedelta(hours=24)  # Thu 26 Nov 2026, 19:00 UTC


async def test_a_direct_reminder_that_cannot_go_before_its_meeting_is_given_up_with_a_log_line(
        make_core: Callable[..., Awaitable[CoreDriver]], caplog: pytest.LogCaptureFixture) -> None:
    """The platform fails a direct reminder until the meeting starts: it is tried again after growing pauses
    (not at every tick), always with the same idempotency key, then given up with a log line naming the
    member and why; nothing is sent once the meeting has started, and the member's reminders stay on."""
    d = await make_core()
    timeline = await turnout_scenarios.start_timeline(d)
    await d.say("alice", "remind me 3m")
    await d.say("alice", "rsvp yes")
    await d.fail_directs("alice")
    d.clock.set(MEETING_1 - timedelta(minutes=3))
    ticks = 0
    with caplog.at_level(logging.INFO, logger="circlebot"):
        while d.clock.now() < MEETING_1 + timedelta(minutes=2):
            await timeline.tick()
            ticks += 1
            d.clock.advance(timedelta(seconds=10))
        tries = [key for where, key in d.adapter.attempts if where.id == "dm:alice"]
        await d.mend_directs("alice")
        for _ in range(3):
            d.clock.advance(timedelta(minutes=1))
            await timeline.tick()
    assert 4 <= len(tries) < ticks // 2, (len(tries), ticks)  # 1 s, 2 s, 4 s ... apart: fewer than the ticks
    assert len(set(tries)) == 1 and tries[0] is not None, tries
    assert len([k for where, k in d.adapter.attempts if where.id == "dm:alice"]) == len(tries)  # not after
    assert await d.directs("alice") == []
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1, gave_up
    assert "alice" in gave_up[0] and "meeting #1" in gave_up[0] and "console is down" in gave_up[0], gave_up
    assert "I will remind you by direct message" in await d.say("alice", "remind me dm")


async def test_a_refused_direct_reminder_is_not_tried_again(make_core: Callable[..., Awaitable[CoreDriver]]) -> None:
    d = await make_core()
    timeline = await turnout_scenarios.start_timeline(d)
    await d.say("alice", "remind me dm on")
    await d.say("alice", "rsvp yes")
    await d.refuse_directs("alice")
    d.clock.set(turnout_scenarios.REMINDER_DUE)
    for _ in range(5):
        await timeline.tick()
        d.clock.advance(timedelta(seconds=30))
    assert len([w for w, _ in d.adapter.attempts if w.id == "dm:alice"]) == 1
    assert "turned off: a direct message to you was refused" in await d.say("alice", "remind me dm")

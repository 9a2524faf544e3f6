"""Turnout (issue 14): the scenarios of turnout_scenarios.py through the core's test adapter (on SQLite and on
PostgreSQL, fake clock), and the config they rest on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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

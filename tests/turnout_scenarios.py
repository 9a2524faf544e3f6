"""Turnout scenarios (issue 14), written once and run through every driver (see drivers.py): a capacity with
its waitlist, and what the reminder says and whom it pings.

Each scenario names the circle settings it needs in `CIRCLES[scenario.__name__]`; the test modules build the
driver's circle with them. The clock starts on Tue 24 Nov 2026 12:00 UTC; the syllabus fills meeting #1 on
Thu 26 Nov 19:00 London when the timeline starts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from circlebot.core.timeline import Timeline
from drivers import Driver

REMINDER_DUE = datetime(2026, 11, 25, 19, tzinfo=UTC)  # 24 h before meeting #1


async def start_timeline(d: Driver) -> Timeline:
    """The timeline driven by the fake clock (`tick` instead of a scheduler): meeting #1 is planned."""
    timeline = Timeline(d.app)
    d.app.timeline = timeline
    await timeline.start()
    return timeline


def reminders(d: Driver) -> list[str]:
    return [p for p in d.posts() if "Reminder: meeting #1" in p]


async def capacity_and_waitlist(d: Driver) -> None:
    """Two places: the third and fourth yes wait in order and are told their turn; a repeated yes keeps its
    turn; a place freed by a no goes to the first waiting, who is told in the channel; `upcoming`,
    `attendance <meeting>` and the reminder show the waitlist, and the reminder names only who is coming."""
    timeline = await start_timeline(d)
    assert "You have a place" in await d.say("alice", "rsvp yes")
    assert "You have a place" in await d.say("bob", "rsvp yes 1")
    carol = await d.say("carol", "rsvp yes")
    assert "full (2 places)" in carol and "number 1 on the waitlist" in carol, carol
    assert "number 2 on the waitlist" in await d.say("dan", "rsvp yes")
    assert "number 1 on the waitlist" in await d.say("carol", "rsvp yes")  # asking again keeps her turn
    await d.say("erin", "rsvp no")
    await d.say("frank", "rsvp maybe")

    listed = await d.say("erin", "upcoming")
    assert "2 yes, 1 maybe, 1 no; full (2 places), 2 on the waitlist" in listed, listed
    record = await d.say(d.organiser, "attendance 1")
    assert "RSVP yes (2): alice, bob" in record and "Waitlist (2, 2 places): 1. carol, 2. dan" in record, record

    freed = await d.say("bob", "rsvp no")  # bob's place goes to carol, the first waiting
    assert "no for meeting #1" in freed, freed
    listed = await d.say("erin", "upcoming")
    assert "2 yes, 1 maybe, 2 no; full (2 places), 1 on the waitlist" in listed, listed
    told = [p for p in d.posts() if "A place has freed up at meeting #1" in p]
    assert len(told) == 1 and "carol, you are in" in told[0], d.posts()
    assert "number 1 on the waitlist" in await d.say("dan", "rsvp yes")  # dan moved up

    d.clock.set(REMINDER_DUE)
    await timeline.tick()
    await d.say("erin", "circle")  # the Matrix driver reads the room's posts as it answers
    (reminder,) = reminders(d)
    assert "RSVPs so far: 2 yes, 1 maybe, 2 no; full (2 places), 1 on the waitlist." in reminder, reminder
    assert "See you there: alice, carol, frank" in reminder, reminder
    assert "Waiting for a place: dan" in reminder, reminder
    pinged = await d.pinged(reminder)
    assert pinged == {"alice", "carol", "frank"}, pinged


CIRCLES: dict[str, dict[str, Any]] = {
    "capacity_and_waitlist": {"turnout": {"capacity": 2}},
}

ALL = [capacity_and_waitlist]

"""Turnout scenarios (issue 14), written once and run through every driver (see drivers.py): a capacity with
its waitlist, and what the reminder says and whom it pings.

Each scenario names the circle settings it needs in `CIRCLES[scenario.__name__]`; the test modules build the
driver's circle with them. The clock starts on Tue 24 Nov 2026 12:00 UTC; the syllabus fills meeting #1 on
Thu 26 Nov 19:00 London when the timeline starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from circlebot.core.adapter import DirectMessages
from circlebot.core.timeline import Timeline
from drivers import Driver

SEED = "bolivia-2003-first-balance-sheet"

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


DEADLINE_DUE = datetime(2026, 11, 24, 19, tzinfo=UTC)  # 48 h before meeting #1


async def at(d: Driver, timeline: Timeline, when: datetime) -> None:
    """Move the clock to `when` and run what is due; then let the driver read the channel."""
    d.clock.set(when)
    await timeline.tick()
    await d.say("erin", "circle")  # the Matrix driver reads the room's posts as it answers


def posts_with(d: Driver, text: str) -> list[str]:
    return [p for p in d.posts() if text in p]


async def deadline_confirms_and_a_freed_place_still_goes_to_the_waitlist(d: Driver) -> None:
    """At the deadline (quorum met) the bot posts that the meeting is on, who is coming and who waits, once;
    a place freed after the deadline still goes to the first waiting."""
    timeline = await start_timeline(d)
    for name in ("alice", "bob", "carol"):
        await d.say(name, "rsvp yes")
    listed = await d.say("erin", "upcoming")
    assert "RSVP deadline due" in listed, listed
    await at(d, timeline, DEADLINE_DUE)
    (on,) = posts_with(d, "Meeting #1 is on")
    assert "Coming (2): alice, bob." in on and "Waiting for a place: 1. carol." in on, on
    assert await d.pinged(on) == set()  # the outcome is news, not a ping

    await d.say("bob", "rsvp no")  # after the deadline: the freed place still goes to carol
    told = posts_with(d, "A place has freed up at meeting #1")
    assert len(told) == 1 and "carol, you are in" in told[0], d.posts()
    await at(d, timeline, DEADLINE_DUE + timedelta(minutes=5))
    assert len(posts_with(d, "Meeting #1 is on")) == 1  # once
    listed = await d.say("erin", "upcoming")
    assert "RSVP deadline sent" in listed and "2 yes, 0 maybe, 1 no; full (2 places)" in listed, listed


async def low_turnout_postpones_past_a_skipped_week(d: Driver) -> None:
    """Short of the quorum, the meeting moves to the next free meeting time (3 Dec is skipped: 10 Dec) with
    its RSVPs; the old time's posts are not sent, the new time's reading and reminder are; short again at the
    new deadline, it stays (postponed once at most)."""
    timeline = await start_timeline(d)
    assert "will not meet on" in await d.say(d.organiser, "skip 2026-12-03")
    await d.say("alice", "rsvp yes")
    await d.say("bob", "rsvp maybe")
    await d.say("dan", "rsvp no")
    await at(d, timeline, DEADLINE_DUE)
    (moved,) = posts_with(d, "Meeting #1 is postponed")
    assert "only 1 said yes by the RSVP deadline, and it needs 3" in moved and "RSVPs are kept" in moved, moved
    assert await d.pinged(moved) == {"alice", "bob"}, moved  # not dan, who said no
    meeting = await d.app.store.meeting(1)
    assert meeting is not None and meeting.starts_at == datetime(2026, 12, 10, 19, tzinfo=UTC), meeting
    listed = await d.say("erin", "upcoming")
    assert "#1 " in listed and "1 yes, 1 maybe, 1 no" in listed, listed

    await at(d, timeline, REMINDER_DUE)  # the old time's reminder is not sent
    assert reminders(d) == []
    readings = len(posts_with(d, "Reading for meeting #1"))
    await at(d, timeline, datetime(2026, 12, 3, 19, tzinfo=UTC))  # 7 days before the new time
    assert len(posts_with(d, "Reading for meeting #1")) == readings + 1, d.posts()
    await at(d, timeline, datetime(2026, 12, 9, 19, tzinfo=UTC))  # the new time's deadline passed (8 Dec)
    (again,) = posts_with(d, "Low turnout for meeting #1")  # postponed once at most: now it stays
    assert "It was postponed once already. It is still on" in again, again
    (reminder,) = reminders(d)
    assert "1 yes, 1 maybe, 1 no" in reminder, reminder


async def low_turnout_cancels(d: Driver) -> None:
    """Short of the quorum with `cancel`: the meeting is cancelled and the post says so; nothing more of it."""
    timeline = await start_timeline(d)
    await d.say("alice", "rsvp yes")
    await d.say("dan", "rsvp no")
    await at(d, timeline, DEADLINE_DUE)
    (cancelled,) = posts_with(d, "Meeting #1 is cancelled")
    assert "only 1 said yes by the RSVP deadline, and it needs 2" in cancelled, cancelled
    assert await d.pinged(cancelled) == {"alice"}
    assert "#1 " not in (await d.say("erin", "upcoming")).text
    await at(d, timeline, REMINDER_DUE)
    assert reminders(d) == []


async def low_turnout_notifies_and_the_meeting_stays(d: Driver) -> None:
    timeline = await start_timeline(d)
    await d.say("alice", "rsvp yes")
    await at(d, timeline, DEADLINE_DUE)
    (low,) = posts_with(d, "Low turnout for meeting #1")
    assert "only 1 said yes by the RSVP deadline, and it needs 3" in low and "It is still on" in low, low
    assert "#1 " in (await d.say("erin", "upcoming")).text
    await at(d, timeline, REMINDER_DUE)
    assert len(reminders(d)) == 1


def nudges(d: Driver, meeting: int) -> list[str]:
    return [p for p in d.posts() if "Are you coming?" in p and f"Meeting #{meeting}" in p]


async def nudge_mentions_silent_regulars_and_maybes_once(d: Driver) -> None:
    """The nudge mentions the regulars (who answered or came at a recent meeting) who have not answered, and
    the maybes; never who said no or yes. Once per meeting: not again later, nor after the meeting moves."""
    timeline = await start_timeline(d)  # meeting #1 on 26 Nov
    assert "meeting #2" in await d.say(d.organiser, f"schedule {SEED} next")  # 3 Dec
    await d.say("alice", "rsvp yes 1")
    await d.say("bob", "rsvp maybe 1")
    await d.say("carol", "rsvp no 1")
    await d.say("dan", "rsvp yes 1")
    await at(d, timeline, DEADLINE_DUE)  # 48 h before #1: its nudge; no regulars yet, one maybe
    (first,) = nudges(d, 1)
    assert "Still a maybe: bob." in first and "Not heard" not in first, first
    assert await d.pinged(first) == {"bob"}
    d.clock.set(datetime(2026, 11, 26, 19, 5, tzinfo=UTC))
    assert "checked in" in await d.say("frank", "here")  # came without answering: a regular too

    await d.say("alice", "rsvp yes 2")
    await d.say("dan", "rsvp no 2")
    await d.say("bob", "rsvp maybe 2")
    await at(d, timeline, datetime(2026, 12, 1, 19, tzinfo=UTC))  # 48 h before #2
    (second,) = nudges(d, 2)
    assert "Not heard from you yet: carol, frank." in second and "Still a maybe: bob." in second, second
    assert await d.pinged(second) == {"bob", "carol", "frank"}  # not alice (yes), not dan (no for #2)
    await at(d, timeline, datetime(2026, 12, 1, 19, 5, tzinfo=UTC))
    assert len(nudges(d, 2)) == 1
    assert "moved" in await d.say(d.organiser, "move 2 2026-12-10")
    await at(d, timeline, datetime(2026, 12, 8, 19, tzinfo=UTC))  # the new time's nudge: never repeated
    assert len(nudges(d, 2)) == 1, d.posts()
    assert "nudge sent" in await d.say("erin", "upcoming")


def quick_directs(d: Driver, interval: float = 0.02) -> None:
    """Direct messages throttled to one per `interval` s (the platforms' own pace is far slower)."""
    for adapter in d.app.adapters.values():
        if isinstance(adapter, DirectMessages):
            adapter.direct_interval = interval


async def direct_reminders_only_for_who_asked(d: Driver) -> None:
    """Reminders by direct message go only to members who asked, at their lead, for meetings they said yes or
    maybe to, once; a refused one switches that member's direct messages off without trying again."""
    timeline = await start_timeline(d)
    quick_directs(d)
    on = await d.say("alice", "remind me dm on")
    assert on.private and "by direct message 24 h before each meeting" in on, on
    assert "2 h before" in await d.say("bob", "remind me 2h")
    await d.say("carol", "remind me dm on")
    await d.say("erin", "remind me dm on")
    await d.say("alice", "rsvp yes")
    await d.say("bob", "rsvp maybe")
    await d.say("carol", "rsvp no")  # asked, but said no
    await d.say("dan", "rsvp yes")  # said yes, but did not ask
    await d.say("erin", "rsvp yes")
    await d.refuse_directs("erin")

    await at(d, timeline, REMINDER_DUE)  # 24 h before: alice's (and erin's, refused)
    (alice,) = await d.directs("alice")
    assert "Reminder" in alice and "meeting #1 of Test study circle" in alice and "You said yes" in alice, alice
    assert await d.directs("bob") == [] and await d.directs("carol") == [] and await d.directs("dan") == []
    assert await d.directs("erin") == []
    off = await d.say("erin", "remind me dm")
    assert "off (turned off: a direct message to you was refused)" in off, off
    assert len(reminders(d)) == 1  # the channel's reminder goes out as ever

    await at(d, timeline, datetime(2026, 11, 26, 17, tzinfo=UTC))  # 2 h before: bob's
    (bob,) = await d.directs("bob")
    assert "You said maybe" in bob, bob
    assert len(await d.directs("alice")) == 1 and await d.directs("erin") == []  # once; never retried
    assert "No more reminders" in await d.say("alice", "remind me dm off")


async def a_direct_reminder_that_fails_is_retried_until_it_goes(d: Driver) -> None:
    """A direct reminder the platform fails to take (an outage: Discord's 503, a homeserver that is down; not a
    refusal) is tried again, with growing pauses, while its meeting has not started: it goes out once, when
    the platform takes it again, and the member's direct reminders stay on."""
    timeline = await start_timeline(d)
    quick_directs(d)
    await d.say("alice", "remind me dm on")
    await d.say("alice", "rsvp yes")
    await d.fail_directs("alice")
    try:
        d.clock.set(REMINDER_DUE)
        await timeline.tick()
        for _ in range(3):
            d.clock.advance(timedelta(seconds=10))
            await timeline.tick()
    finally:
        await d.mend_directs("alice")
    for _ in range(4):  # it goes through again: the next try sends it
        d.clock.advance(timedelta(seconds=60))
        await timeline.tick()
    (alice,) = await d.directs("alice")
    assert "Reminder" in alice and "You said yes" in alice, alice
    d.clock.advance(timedelta(minutes=5))
    await timeline.tick()
    assert len(await d.directs("alice")) == 1  # once
    assert "I will remind you by direct message" in await d.say("alice", "remind me dm")  # still on


CIRCLES: dict[str, dict[str, Any]] = {
    "direct_reminders_only_for_who_asked": {},
    "a_direct_reminder_that_fails_is_retried_until_it_goes": {},
    "nudge_mentions_silent_regulars_and_maybes_once": {"turnout": {"nudge": "48h"}},
    "capacity_and_waitlist": {"turnout": {"capacity": 2}},
    "deadline_confirms_and_a_freed_place_still_goes_to_the_waitlist": {
        "turnout": {"capacity": 2, "deadline": "48h", "quorum": 2}},
    "low_turnout_postpones_past_a_skipped_week": {
        "turnout": {"deadline": "48h", "quorum": 3, "on_low_turnout": "postpone"}},
    "low_turnout_cancels": {"turnout": {"deadline": "48h", "quorum": 2, "on_low_turnout": "cancel"}},
    "low_turnout_notifies_and_the_meeting_stays": {"turnout": {"deadline": "48h", "quorum": 3}},
}

ALL = [capacity_and_waitlist, deadline_confirms_and_a_freed_place_still_goes_to_the_waitlist,
       low_turnout_postpones_past_a_skipped_week, low_turnout_cancels, low_turnout_notifies_and_the_meeting_stays,
       nudge_mentions_silent_regulars_and_maybes_once, direct_reminders_only_for_who_asked,
       a_direct_reminder_that_fails_is_retried_until_it_goes]

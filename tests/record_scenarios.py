"""Scenarios of the circle's record (issue 15), written once and run through every driver (drivers.py, the
Matrix driver against Synapse, the Discord driver against the fake): reading progress, attendance history,
the export in chat, the facilitator rota. Assertions are on what users see."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers import Driver

FIRST_START = datetime(2026, 11, 26, 19, tzinfo=UTC)  # meeting #1, the syllabus's: Thu 26 Nov 19:00 London


async def start_timeline(d: Driver) -> object:
    """The timeline driven by the fake clock (tick() instead of a scheduler); the syllabus plans meeting #1
    on Thu 26 Nov and its reading goes out at once."""
    from circlebot.core.timeline import Timeline

    timeline = Timeline(d.app)
    d.app.timeline = timeline
    await timeline.start()
    return timeline


async def posts_now(d: Driver) -> list[str]:
    """What the bot has posted in the circle so far (a harmless command first, so every driver has read it)."""
    await d.say("dan", "circle")
    return d.posts()


async def reading_progress(d: Driver) -> None:
    """Members say how much they read and change it; each sees only their own answer; organisers and the
    start post see counts."""
    from circlebot.core.timeline import Timeline

    timeline = await start_timeline(d)
    assert isinstance(timeline, Timeline)
    reading = [p for p in await posts_now(d) if "Reading for meeting #1" in p]
    assert reading and "Read it?" in reading[0] and "only you see your answer" in reading[0], reading

    for who in ("alice", "bob", "carol"):
        assert "yes for meeting #1" in await d.say(who, "rsvp yes")
    said = await d.say("alice", "read all")
    assert said.private and "meeting #1" in said and "you read all of it" in said, said
    assert "Read so far" not in said  # a member sees no counts
    assert (await d.say("bob", "read part 1")).private
    assert "you have not read it" in await d.say("dan", "read not")  # not coming, said nothing

    changed = await d.say("alice", "read part")
    assert changed.private and "you read part of it" in changed, changed
    own = await d.say("alice", "read")
    assert own.private and "you read part of it" in own and "Read so far" not in own, own
    other = await d.say("carol", "read")
    assert other.private and "you have not said" in other and "alice" not in other, other
    assert "you read all of it" in await d.say("alice", "read all")  # and back again

    counts = await d.say(d.organiser, "read")
    assert counts.private, counts
    assert "1 of 3 who are coming read it all, 1 part, 0 not yet (1 did not say)" in counts, counts
    assert "others: 0 all, 0 part, 1 not" in counts, counts

    bad = await d.say("alice", "read most") if not _typed_choices(d) else None
    if bad is not None:
        assert "expected one of all, part, not" in bad and "Usage:" in bad, bad

    d.clock.set(FIRST_START)
    await timeline.tick()
    posts = await posts_now(d)
    assert any("Meeting #1 has started" in p for p in posts), posts
    counted = [p for p in posts if "Read: 1 of 3 who are coming read it all, 1 part, 0 not yet (1 did not say)" in p]
    assert counted and "alice" not in counted[0] and "bob" not in counted[0], posts  # counts, never names


def _typed_choices(d: Driver) -> bool:
    """Whether the platform's own client offers only the declared choices (Discord's options)."""
    return "discord" in d.app.adapters


ALL = [reading_progress]

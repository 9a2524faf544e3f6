"""Scenarios of the circle's record (issue 15), written once and run through every driver (drivers.py, the
Matrix driver against Synapse, the Discord driver against the fake): reading progress, attendance history,
the export in chat, the facilitator rota. Assertions are on what users see."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import UTC, datetime, timedelta

from drivers import Driver

SEED = "bolivia-2003-first-balance-sheet"
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


async def attendance_history(d: Driver) -> None:
    """Four meetings: came, walk-in, no-show and excused in each member's record, the rate, streaks only for
    whoever turned them on and only in their own record, and who keeps missing what they said yes to."""
    o = d.organiser
    first = await d.say(o, f"schedule {SEED}")
    assert "Scheduled meeting #1" in first, first
    for n in (2, 3, 4):
        assert f"meeting #{n}" in await d.say(o, f"schedule {SEED} next")
    for who, answers in {"alice": "yes yes no yes", "bob": "yes yes yes -", "carol": "no yes yes -"}.items():
        for meeting, answer in enumerate(answers.split(), 1):
            if answer != "-":
                assert f"{answer} for meeting #{meeting}" in await d.say(who, f"rsvp {answer} {meeting}")
    came = {1: ["alice", "dan"], 2: ["alice", "carol"], 3: ["carol"], 4: ["alice"]}
    for meeting, people in came.items():
        d.clock.set(FIRST_START + timedelta(weeks=meeting - 1, minutes=5))
        for who in people:
            assert f"checked in to meeting #{meeting}" in await d.say(who, "here")

    own = await d.say("alice", "attendance")  # a member's own record, privately
    assert own.private and "Attendance of alice" in own, own
    assert "came to 3 of 4 meetings (0 walk-in); 0 no-show, 1 excused; attendance rate 100%" in own, own
    lines = own.text.split("\n")
    assert "#1" in lines[1] and "came (said yes)" in lines[1] and "#3" in lines[3] and "excused" in lines[3], own
    assert "Streak" not in own  # off until she turns it on
    assert "Streaks on" in await d.say("alice", "streaks on")
    streak = await d.say("alice", "attendance me")
    assert streak.private and "Streak: 3 meetings in a row (longest: 3)" in streak, streak  # #3 excused

    bob = await d.say("bob", "attendance me")
    assert "came to 0 of 3 meetings (0 walk-in); 3 no-show, 0 excused; attendance rate 0%" in bob, bob
    dan = await d.say("dan", "attendance me")
    assert "came to 1 of 3 meetings (1 walk-in)" in dan and "walk-in" in dan.text.split("\n")[1], dan

    circle = await d.say(o, "attendance")
    assert "Missed the last 3 meetings they said yes to: bob." in circle, circle
    about = await d.say(o, "attendance alice")
    assert "Attendance of alice" in about and "Streak" not in about, about  # her streak is hers alone
    assert "3 no-show" in await d.say(o, "attendance bob")
    mine = await d.say(o, "attendance me")
    assert mine.private and "Attendance of olga" in mine and "nothing on record" in mine, mine

    assert "Streaks off" in await d.say("alice", "streaks off")
    assert "Streak" not in await d.say("alice", "attendance me")
    refused = await d.say("alice", "attendance bob")
    assert "only their own attendance" in refused, refused


async def record_export(d: Driver) -> None:
    """An organiser's `attendance export`: a CSV file handed over the platform's way, one row per meeting and
    member, readable by a spreadsheet (UTF-8 with BOM, ISO dates, the zone named)."""
    o = d.organiser
    assert "Scheduled meeting #1" in await d.say(o, f"schedule {SEED}")
    await d.say("alice", "rsvp yes")
    await d.say("alice", "read all")
    await d.say("bob", "rsvp no")
    d.clock.set(FIRST_START + timedelta(minutes=5))
    await d.say("alice", "here")
    await d.say("dan", "here")
    d.clock.set(FIRST_START + timedelta(hours=3))

    answer = await d.say(o, "attendance export")
    assert answer.private and "3 rows" in answer and "Europe/London" in answer, answer
    assert len(answer.files) == 1, answer
    name, data = answer.files[0]
    assert name.startswith("study-record-") and name.endswith(".csv"), name
    assert data.startswith(codecs.BOM_UTF8), data[:10]
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    by_member = {r["member"]: r for r in rows}
    assert set(by_member) == {"alice", "bob", "dan"}, rows
    alice, bob, dan = by_member["alice"], by_member["bob"], by_member["dan"]
    assert alice["meeting"] == "1" and alice["date"] == "2026-11-26" and alice["zone"] == "Europe/London", alice
    assert alice["start"] == "2026-11-26T19:00+00:00" and "revolutionary party" in alice["reading"], alice
    assert (alice["RSVP"], alice["read"], alice["came"], alice["walk-in"], alice["no-show"]) == (
        "yes", "all", "yes", "no", "no"), alice
    assert (bob["RSVP"], bob["came"], bob["no-show"]) == ("no", "no", "no"), bob
    assert (dan["RSVP"], dan["came"], dan["walk-in"]) == ("", "yes", "yes"), dan
    assert {r["platform"] for r in rows} == {next(iter(d.app.adapters))}

    later = await d.say(o, "attendance export --from 2026-11-27")
    assert "0 rows" in later and len(later.files) == 1, later
    backwards = await d.say(o, "attendance export --from 2026-12-01 --to 2026-11-01")
    assert "before it starts" in backwards and not backwards.files, backwards


def enable_rota(d: Driver) -> None:
    """The driver's circle with `[circles.facilitators] rota = true`, as if configured so."""
    from circlebot.config import Facilitators

    app = d.app
    old = app.settings.circles[0]
    new = old.model_copy(update={"facilitators": Facilitators(rota=True)})
    app.settings = app.settings.model_copy(update={"circles": (new, *app.settings.circles[1:])})
    for key, circle in list(app._channels.items()):
        if circle is old:
            app._channels[key] = new


async def facilitator_rota(d: Driver) -> None:
    """The rota proposes the regular who facilitated least recently (never before their second meeting, never
    one who said no), the reading's post names them; members take it or hand it on, organisers swap; who
    facilitated is in the record and the CSV."""
    o = d.organiser
    off = await d.say("alice", "facilitate")
    assert "has no facilitator rota" in off, off
    enable_rota(d)
    for n in (1, 2):
        assert f"meeting #{n}" in await d.say(o, f"schedule {SEED}" + (" next" if n > 1 else ""))
    for who in ("alice", "bob", "carol"):
        await d.say(who, "rsvp yes 1")
    took = await d.say("alice", "facilitate 1")  # nobody is proposed for a first meeting: she volunteers
    assert "alice facilitates meeting #1" in took, took
    d.clock.set(FIRST_START + timedelta(minutes=5))
    for who in ("alice", "bob", "carol"):
        await d.say(who, "here")
    d.clock.set(FIRST_START + timedelta(hours=2))  # #1 is over; #2's reading is due (7 days before)

    timeline = await start_timeline(d)
    assert timeline is not None
    reading = [p for p in await posts_now(d) if "Reading for meeting #2" in p]
    assert reading and "Facilitator: bob (proposed by the rota)" in reading[0], reading  # alice led #1
    await d.say("carol", "rsvp no 2")
    passed = await d.say("bob", "facilitate pass 2")
    assert "bob handed meeting #2 on; the rota proposes alice now" in passed, passed  # carol said no
    assert "are not the facilitator of meeting #2 (alice is)" in await d.say("dan", "facilitate pass 2")
    assert "dan facilitates meeting #2" in await d.say("dan", "facilitate 2")  # a volunteer takes a proposal
    assert "bob facilitates meeting #2" in await d.say(o, "facilitate swap bob 2")
    refused = await d.say("alice", "facilitate 2")
    assert "bob facilitates meeting #2 (chosen by an organiser)" in refused, refused
    late = await d.say("alice", "facilitate 1")
    assert "has started" in late, late

    from circlebot.core.timeline import Timeline

    assert isinstance(timeline, Timeline)
    d.clock.set(FIRST_START + timedelta(days=6, minutes=1))  # a day before #2: the facilitator's questions
    await timeline.tick()
    await timeline.tick()  # nothing more: delivered once
    again = Timeline(d.app)  # and a restarted bot does not send it again
    d.app.timeline = again
    await again.start()
    await again.tick()
    to_bob = "\n".join(await d.directs("bob"))  # a long post may come in several messages
    assert to_bob.count("you facilitate meeting #2") == 1, to_bob
    assert "dual power" in to_bob and "facilitate pass" in to_bob, to_bob
    assert not [p for p in await d.directs("alice") if "you facilitate" in p]
    assert not [p for p in d.posts() if "you facilitate" in p]  # never in the circle's channel

    assert "Scheduled meeting #3" in await d.say(o, f"schedule {SEED} next")  # 10 Dec
    for who in ("alice", "bob", "carol"):  # every regular says no: the rota has nobody to propose
        await d.say(who, "rsvp no 3")
    d.clock.set(FIRST_START + timedelta(days=13, minutes=1))  # a day before #3
    await again.tick()
    took = await d.say("dan", "facilitate 3")  # a volunteer, after the questions fell due: he gets them now
    assert "dan facilitates meeting #3" in took, took
    to_dan = "\n".join(await d.directs("dan"))
    assert to_dan.count("you facilitate meeting #3") == 1, to_dan

    own = await d.say("alice", "attendance me")
    assert "came (said yes); facilitated" in own, own
    exported = await d.say(o, "attendance export")
    rows = list(csv.DictReader(io.StringIO(exported.files[0][1].decode("utf-8-sig"))))
    led = {(r["meeting"], r["member"]) for r in rows if r["facilitated"] == "yes"}
    assert led == {("1", "alice"), ("2", "bob"), ("3", "dan")}, rows


ALL = [reading_progress, attendance_history, record_export, facilitator_rota]

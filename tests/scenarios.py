"""Feature scenarios written once, run through every adapter's driver (see drivers.py).

Each scenario is what a circle does in chat: an organiser schedules, members RSVP and check in, a poll is
opened, voted on and closed. Assertions are on what users see.
"""

from __future__ import annotations

from datetime import timedelta

from drivers import Driver, Unsendable, number_after

SEED = "bolivia-2003-first-balance-sheet"


async def meeting_lifecycle(d: Driver) -> None:
    """Schedule the seed reading, RSVP (with a change of mind), check in while open, report attendance."""
    o = d.organiser
    answer = await d.say(o, f"schedule {SEED}")
    assert "Scheduled meeting #" in answer, answer
    assert "A revolutionary party was missing" in answer
    assert "Thu 26 Nov 2026, 19:00 GMT" in answer.text or "<t:" in answer.text
    meeting = number_after("meeting", answer.text)

    assert "yes for meeting" in await d.say("alice", "rsvp yes")
    assert "maybe for meeting" in await d.say("bob", f"rsvp maybe {meeting}")
    await d.say("carol", "rsvp no")
    assert "yes for meeting" in await d.say("carol", "rsvp yes")  # changed her mind

    upcoming = await d.say("dan", "upcoming")
    assert f"#{meeting}" in upcoming and "2 yes, 1 maybe, 0 no" in upcoming, upcoming

    closed = await d.say("alice", "here")
    assert "check-in is closed" in closed.text.lower(), closed

    d.clock.advance(timedelta(days=2, hours=7, minutes=5))  # Thursday 19:05 London
    assert "checked in to meeting" in await d.say("alice", "here")
    assert "already checked in" in await d.say("alice", "here")

    questions = await d.say("bob", "questions")
    assert f"meeting #{meeting}" in questions and "dual power" in questions.text

    report = await d.say(o, f"attendance {meeting}")
    assert "Checked in (1): alice" in report, report
    assert "Said yes but not checked in: carol" in report, report

    own = await d.say("alice", "attendance")
    assert own.private and "1 of 1 meeting" in own, own
    refused = await d.say("alice", "attendance bob")
    assert "only their own attendance" in refused, refused

    d.clock.advance(timedelta(hours=2))  # the meeting is over
    assert "check-in is closed" in (await d.say("bob", "here")).text.lower()


async def poll_lifecycle(d: Driver) -> None:
    """Open a poll, vote in chat and natively, change votes, refuse bad votes, close, and show results."""
    o = d.organiser
    opened = await d.say(o, 'poll "Which reading next?" "Bolivia again" "Something on Chile" "A classic" --hours 48')
    assert "Poll #" in opened and "is open" in opened, opened
    poll = number_after("poll", opened.text)

    assert "counted: Bolivia again" in await d.say("alice", f"vote {poll} 1")
    await d.vote("bob", poll, [2])
    await d.vote("carol", poll, [1])
    assert "counted: Something on Chile" in await d.say("alice", f"vote {poll} 2")  # alice changes her vote
    await d.vote("carol", poll, [3])  # carol changes hers natively

    bad = await d.say("dan", f"vote {poll} 7")
    assert "answers 1 to 3" in bad and "Usage: " in bad.text, bad
    two = await d.say("dan", f"vote {poll} 1 2")
    assert "takes one answer" in two, two

    results = await d.say("dan", f"poll results {poll}")
    assert "1. Bolivia again: 0" in results, results
    assert "2. Something on Chile: 2" in results, results
    assert "3. A classic: 1" in results, results

    refused = await d.say("alice", f"poll close {poll}")
    assert "for the organisers" in refused, refused

    closed = await d.say(o, f"poll close {poll}")
    assert "closed" in closed and "Result: Something on Chile" in closed, closed
    assert any("Something on Chile" in p and "closed" in p for p in d.posts()), d.posts()

    late = await d.say("dan", f"vote {poll} 1")
    assert "is closed" in late, late
    await d.vote("erin", poll, [1])  # a native vote after the end is ignored
    after = await d.say("dan", f"poll results {poll}")
    assert "1. Bolivia again: 0" in after, after
    again = await d.say(o, f"poll close {poll}")
    assert "already closed" in again, again


async def multi_and_secret_polls(d: Driver) -> None:
    o = d.organiser
    multi = number_after("poll", (await d.say(o, 'poll "Which evenings suit you?" "Mon" "Wed" "Thu" --multi')).text)
    assert "counted: Mon, Thu" in await d.say("alice", f"vote {multi} 1 3 3")
    await d.vote("bob", multi, [1, 2])
    shown = await d.say("carol", f"poll results {multi}")
    assert "1. Mon: 2" in shown and "2. Wed: 1" in shown and "3. Thu: 1" in shown, shown
    assert "withdrawn" in await d.say("alice", f"unvote {multi}")
    assert "1. Mon: 1" in await d.say("carol", f"poll results {multi}")

    secret = number_after("poll", (await d.say(o, 'poll "Keep the Thursday slot?" "Yes" "No" --secret')).text)
    ack = await d.say("alice", f"vote {secret} 2")
    assert ack.private, ack
    hidden = await d.say("bob", f"poll results {secret}")
    assert "secret poll" in hidden and "No: 1" not in hidden.text, hidden
    closed = await d.say(o, f"poll close {secret}")
    assert "2. No: 1" in closed, closed


ORGANISER_COMMANDS = {
    "schedule": f"schedule {SEED}",
    "unschedule": "unschedule 1",
    "poll": 'poll "Q?" "A" "B"',
    "poll close": "poll close 1",
    "skip": "skip 2026-12-03",
    "move": "move 1 2026-12-04",
    "questions add": "questions add Why?",
    "questions remove": "questions remove 1",
    "attendance export": "attendance export",
    "facilitate swap": "facilitate swap alice",
    "links rotate": "links rotate",
}


async def organiser_commands_refused(d: Driver) -> None:
    """Every organiser-only command is refused for a member, with a clear message and nothing done."""
    syntax = d.app.syntax(next(iter(d.app.adapters)))  # each driver runs the bot on one platform
    declared = {c.name for c in d.app.commands.commands if c.organiser}
    assert declared == set(ORGANISER_COMMANDS), "a new organiser command needs a line in ORGANISER_COMMANDS"
    for name, text in ORGANISER_COMMANDS.items():
        answer = await d.say("mallory", text)
        command = d.app.commands.get(tuple(name.split()))
        assert command is not None
        shown = syntax.name(command)  # as the platform writes it: `schedule`, `!schedule`, `/poll open`
        assert f"{shown} is for the organisers" in answer.text.replace("`", ""), answer
    upcoming = await d.say("mallory", "upcoming")
    assert "no meeting scheduled" in upcoming, upcoming


MALFORMED = [
    ("rsvp perhaps", "expected one of yes, maybe, no", "rsvp <yes|maybe|no> [meeting]"),
    ('poll "never closed', "quote is not closed", None),
    ("vote", "missing <poll>", "vote <poll> <answers...>"),
    ("vote x 1", "expected a number", "vote <poll> <answers...>"),
    ("questions 1 2 3", "too many words", "questions [meeting]"),
    ("frobnicate now", "there is no command 'frobnicate'", None),
    ("reading", "missing <slug>", "reading <slug>"),
    ("reading ../../etc/passwd", "there is no reading", None),
    ("attendance <b>@everyone</b>", "i know no member", None),
    ("rsvp yes 99999999999", "expected a number", None),
    ("schedule " + SEED + " 2026-02-30", "expected a date", None),
    ("poll --bogus", "unknown option --bogus", None),
    ("x" * 5000, "too long", None),
    ("\u202e\u0000\u200b", "there is no command", None),
]


async def malformed_commands(d: Driver) -> None:
    """Malformed commands get a clear message and the command's usage; the bot carries on."""
    for text, expected, usage in MALFORMED:
        who = d.organiser if text.startswith(("schedule", "poll")) else "alice"
        try:
            answer = await d.say(who, text)
        except Unsendable:
            continue  # typed slash-command options: Discord's client refuses it, the bot never sees it
        assert expected in answer.text.lower() or expected in answer.text, (text, answer)
        if usage:
            assert "Usage:" in answer and usage in answer.text, (text, answer)
    assert "Test study circle" in await d.say("alice", "circle")


async def linked_accounts_count_once(d: Driver) -> None:
    """One person with two accounts (here both on the driver's platform: alice and bob) links them with a
    one-time code, answered privately: then their votes count once, the latest standing, and their RSVPs are
    one; a wrong code is told so; `unlink` makes the second account a member of its own again."""
    o = d.organiser
    asked = await d.say("alice", "link")
    assert asked.private and "Your code: " in asked and "within 10 minutes" in asked, asked
    code = asked.text.split("Your code: ", 1)[1][:9]
    wrong = await d.say("bob", "link 0000-0001" if code != "0000-0001" else "link 0000-0002")
    assert wrong.private and "That code is not one I gave" in wrong, wrong
    linked = await d.say("bob", f"link {code}")
    assert linked.private and "Linked: " in linked and "are one member now" in linked, linked

    poll = number_after("poll", (await d.say(o, 'poll "Which day?" "Monday" "Wednesday" "Friday"')).text)
    await d.vote("alice", poll, [1])
    d.clock.advance(timedelta(seconds=1))
    await d.vote("bob", poll, [2])
    results = await d.say("carol", f"poll results {poll}")
    assert "1 voter" in results and "Wednesday: 1" in results and "Monday: 0" in results, results
    meeting = number_after("meeting", (await d.say(o, f"schedule {SEED}")).text)
    assert "yes for meeting" in await d.say("alice", f"rsvp yes {meeting}")
    assert "no for meeting" in await d.say("bob", f"rsvp no {meeting}")
    upcoming = await d.say("carol", "upcoming")
    assert f"#{meeting}" in upcoming and "0 yes, 0 maybe, 1 no" in upcoming, upcoming

    gone = await d.say("bob", "unlink")
    assert gone.private and "a member of its own again" in gone, gone
    await d.vote("bob", poll, [3])
    results = await d.say("carol", f"poll results {poll}")
    assert "2 voters" in results and "Wednesday: 1" in results and "Friday: 1" in results, results


ALL = [meeting_lifecycle, poll_lifecycle, multi_and_secret_polls, organiser_commands_refused, malformed_commands,
       linked_accounts_count_once]

"""Hostile input through the whole bot (the core's test adapter, real SQLite, fake clock): no line typed in chat
breaks an answer, stops the bot, or reaches the user as a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from circlebot.core.domain import ChannelRef, Invocation, UserRef
from circlebot.core.timeline import Timeline
from drivers import Answer, CoreDriver

OUT_OF_RANGE = "<t:999999999999:F>"  # year 33658: once read as a time, it broke every rendering of it
VALID = "<t:1700000000:F>"  # 14 Nov 2023: once shown as that date


@pytest.fixture
async def bot(core: CoreDriver) -> AsyncIterator[CoreDriver]:
    """The core driver with its timeline started (the syllabus has planned meeting #1, Thu 26 Nov 19:00)."""
    timeline = Timeline(core.app)
    core.app.timeline = timeline
    await timeline.start()
    yield core
    core.app.timeline = None


async def say_as(d: CoreDriver, user_id: str, name: str, text: str) -> Answer:
    """A command from a user whose display name is `name`."""
    before = len(d.adapter.replies)
    await d.app.dispatch(Invocation(UserRef("console", user_id, name), d.channel, d.clock.now(), text=text))
    new = d.adapter.replies[before:]
    assert len(new) == 1, f"expected one answer to {text!r}, got {len(new)}"
    return Answer(d.adapter.render(new[0][1]), new[0][2])


# 1. time markup typed by users is only text -------------------------------------------------------------------


async def test_time_markup_in_a_poll_is_shown_as_typed(bot: CoreDriver) -> None:
    opened = await bot.say("olga", f'poll "Meet {OUT_OF_RANGE} or {VALID}?" "At {OUT_OF_RANGE}" "Never"')
    assert "Poll #1 is open" in opened, opened
    results = await bot.say("alice", "poll results 1")
    assert f"Meet {OUT_OF_RANGE} or {VALID}?" in results and f"1. At {OUT_OF_RANGE}: 0" in results, results
    assert "2023" not in results.text
    closed = await bot.say("olga", "poll close 1")
    assert f"Meet {OUT_OF_RANGE}" in closed, closed
    assert "Test study circle" in await bot.say("alice", "circle")


async def test_time_markup_in_a_question_does_not_break_the_meeting(bot: CoreDriver) -> None:
    added = await bot.say("olga", f"questions add Is {OUT_OF_RANGE} a date?")
    assert f"Is {OUT_OF_RANGE} a date?" in added, added
    await bot.say("olga", f"questions add And {VALID}? --meeting 1")
    shown = await bot.say("alice", "questions 1")
    assert f"Is {OUT_OF_RANGE} a date?" in shown and f"And {VALID}?" in shown, shown
    assert "2023" not in shown.text
    assert "Thu 26 Nov 2026, 19:00 GMT" in await bot.say("alice", "rsvp yes")

    bot.clock.advance(timedelta(days=2, hours=7, minutes=1))  # the meeting has started
    assert bot.app.timeline is not None
    await bot.app.timeline.tick()
    started = [p for p in bot.posts() if "has started" in p]
    assert started and f"Is {OUT_OF_RANGE} a date?" in started[0] and f"And {VALID}?" in started[0], bot.posts()
    assert "checked in" in await bot.say("alice", "here")
    report = await bot.say("olga", "attendance 1")
    assert "Checked in (1): alice" in report, report


async def test_time_markup_in_a_name_is_shown_as_typed(bot: CoreDriver) -> None:
    answer = await say_as(bot, "eve", f"eve {OUT_OF_RANGE}", "rsvp yes")
    assert f"eve {OUT_OF_RANGE}: yes for meeting #1" in answer and "Thu 26 Nov 2026" in answer, answer
    report = await bot.say("olga", "attendance 1")
    assert f"RSVP yes (1): eve {OUT_OF_RANGE}" in report, report


async def test_a_prefix_placeholder_in_user_text_stays_text(bot: CoreDriver) -> None:
    await bot.say("olga", "questions add What does {prefix}here mean?")
    bot.clock.advance(timedelta(days=2, hours=7, minutes=1))
    assert bot.app.timeline is not None
    await bot.app.timeline.tick()
    started = [p for p in bot.posts() if "has started" in p]
    assert started and "What does {prefix}here mean?" in started[0], bot.posts()


async def test_the_console_renders_user_time_markup_as_text() -> None:
    import io
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from circlebot.adapters.console import ConsoleAdapter
    from circlebot.core.domain import PollSpec

    out = io.StringIO()
    console = ConsoleAdapter([("study", "Study", ZoneInfo("Europe/London"))], stdin=io.StringIO(""), stdout=out)
    closes = datetime(2026, 11, 26, 19, tzinfo=UTC)
    await console.start_poll(ChannelRef("console", "study"),
                             PollSpec(1, f"When {OUT_OF_RANGE}?", (VALID, "B"), False, False, closes))
    text = out.getvalue()
    assert f"When {OUT_OF_RANGE}?" in text and f"1. {VALID}" in text, text
    assert "closes Thu 26 Nov 2026, 19:00 GMT (Europe/London)" in text, text


# 3. dates at the ends of the calendar ---------------------------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ("schedule {seed} 9999-12-31", "more than 3 years ahead"),
    ("schedule {seed} 9999-12-30", "more than 3 years ahead"),
    ("schedule {seed} 2029-11-29", "more than 3 years ahead"),
    ("schedule {seed} 0001-01-01", "has already passed"),
    ("schedule {seed} 0001-01-01 00:00", "has already passed"),
    ("skip 9999-12-31", "more than 3 years ahead"),
    ("skip 0001-01-01", "has already passed"),
    ("move 1 9999-12-31 23:59", "more than 3 years ahead"),
    ("move 1 0001-01-01 00:00", "has already passed"),
])
async def test_dates_at_the_ends_of_the_calendar_are_refused_clearly(bot: CoreDriver, line: str,
                                                                     expected: str) -> None:
    answer = await bot.say("olga", line.format(seed="bolivia-2003-first-balance-sheet"))
    assert expected in answer and "Usage:" in answer and answer.private, answer
    assert "pick a date" in answer, answer
    assert "#1 " in await bot.say("alice", "upcoming")  # nothing was changed


async def test_a_date_within_three_years_is_still_a_meeting(bot: CoreDriver) -> None:
    answer = await bot.say("olga", "schedule bolivia-2003-first-balance-sheet 2029-11-22")
    assert "Scheduled meeting #2" in answer and "Thu 22 Nov 2029, 19:00 GMT" in answer, answer


# 4. numbers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line, expected", [
    ("attendance 99999999999999999999", "I know no member with the id 99999999999999999999 here (and meeting "
     "numbers go from 1 to 999999999)"),
    ("attendance #99999999999999999999", "expected a meeting number from 1 to 999999999"),
    ("attendance ²", "I know no member '²'"),
    ("vote ² 1", "expected a number from 1 to 999999999, got '²'"),
    ("vote 1 ²", "expected a number from 1 to 999999999, got '²'"),
    ("vote 1 99999999999999999999", "expected a number from 1 to 999999999"),
    ("rsvp yes ٣", "expected a number from 1 to 999999999, got '٣'"),
    ("questions remove 0", "expected a number from 1 to 999999999, got '0'"),
])
async def test_numbers_are_ascii_digits_in_a_sane_range(bot: CoreDriver, line: str, expected: str) -> None:
    await bot.say("olga", 'poll "Q?" "A" "B"')
    answer = await bot.say("olga", line)
    assert expected in answer and answer.private, answer
    assert "invalid literal" not in answer.text and "went wrong" not in answer.text, answer


# 6. poll hours ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hours", ["0.5", "1e-300", "0", "-3", "nan", "inf", "769", "1e400"])
async def test_poll_hours_outside_1_to_768_are_refused(bot: CoreDriver, hours: str) -> None:
    answer = await bot.say("olga", f'poll "Soon?" "A" "B" --hours {hours}')
    assert "between 1 and 768 hours" in answer and "Usage:" in answer, answer
    assert bot.adapter.polls == {}


async def test_poll_hours_at_the_limits_are_accepted(bot: CoreDriver) -> None:
    assert "is open" in await bot.say("olga", 'poll "Short?" "A" "B" --hours 1')
    assert "is open" in await bot.say("olga", 'poll "Long?" "A" "B" --hours 768')


# 8. quoting as the README says -----------------------------------------------------------------------------------


async def test_a_leading_apostrophe_is_a_letter(bot: CoreDriver) -> None:
    added = await bot.say("olga", "questions add 'Tis the season?")
    assert "Question added" in added and "'Tis the season?" in added, added
    opened = await bot.say("olga", "poll \"What's next?\" 'Bolivia again' 'Tis Chile")
    assert "is open" in opened, opened
    results = await bot.say("alice", "poll results 1")
    assert "1. Bolivia again: 0" in results and "2. 'Tis: 0" in results and "3. Chile: 0" in results, results


@pytest.mark.parametrize("line, usage", [
    ('poll "never closed', "Usage: poll <question> <answers...>"),
    ('poll "Q?" "A" "B --hours 3', "Usage: poll <question> <answers...>"),
    ('questions add "Why now?', "Usage: questions add <question...> [--meeting MEETING]"),
    ("vote 1 «2", "Usage: vote <poll> <answers...>"),
])
async def test_an_unclosed_quote_gets_the_commands_usage(bot: CoreDriver, line: str, usage: str) -> None:
    answer = await bot.say("olga", line)
    assert "quote is not closed" in answer and usage in answer, answer


async def test_an_unclosed_quote_before_any_command_gets_a_hint(bot: CoreDriver) -> None:
    answer = await bot.say("olga", '"poll')
    assert "quote is not closed" in answer and "Usage" not in answer.text, answer


# 7. invisible characters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", ['"a\u200b" "a"', '"e\u0301" "é"', '"Mon\u200d" "mon"', '"\u202eB" "b"'])
async def test_answers_that_look_the_same_are_the_same(bot: CoreDriver, answers: str) -> None:
    answer = await bot.say("olga", f'poll "Which?" {answers}')
    assert "Two answers are the same" in answer, answer


async def test_slugs_and_names_are_found_through_invisible_characters(bot: CoreDriver) -> None:
    found = await bot.say("alice", "reading bolivia-2003-first-\u200bbalance-sheet\u2060")
    assert "In Defence of Marxism" in found, found
    assert "Question added" in await bot.say("olga", "questions add Why now?")
    again = await bot.say("olga", "questions add Why\u200b now?")
    assert "already has that question" in again, again
    await say_as(bot, "a1", "ali\u200bce", "rsvp yes")
    bot.clock.advance(timedelta(days=3))  # meeting #1 is over
    record = await bot.say("olga", "attendance alice")
    assert "Attendance of alice" in record, record


async def test_a_right_to_left_override_ends_with_the_text_it_is_in(bot: CoreDriver) -> None:
    answer = await say_as(bot, "m1", "mal\u202eyrolla", "rsvp yes")
    assert "mal\u202eyrolla\u202c: yes for meeting #1" in answer, answer
    await bot.say("olga", 'poll "Which?" "\u2067\u202eAB" "CD"')
    results = await bot.say("alice", "poll results 1")
    assert "1. \u2067\u202eAB\u202c\u2069: 0" in results, results


async def test_the_console_shows_bidi_controls_harmlessly() -> None:
    import io
    from zoneinfo import ZoneInfo

    from circlebot.adapters.console import ConsoleAdapter
    from circlebot.core.domain import PollSpec

    out = io.StringIO()
    console = ConsoleAdapter([("study", "Study", ZoneInfo("UTC"))], stdin=io.StringIO(""), stdout=out)
    await console.start_poll(ChannelRef("console", "study"),
                             PollSpec(1, "Q\u202e?", ("A\u2067B\u200f", "C"), False, False, None))
    text = out.getvalue()
    assert not any(c in text for c in "\u202e\u2067\u200f"), ascii(text)
    assert "Q�?" in text and "1. A�B�" in text, text


# 9. platform ids as arguments ------------------------------------------------------------------------------------


async def test_a_member_is_found_by_their_platform_id(bot: CoreDriver) -> None:
    await say_as(bot, "@alice:example.org", "alice", "rsvp yes")
    await say_as(bot, "234567890123456789", "bob", "rsvp yes")
    bot.clock.advance(timedelta(days=3))  # meeting #1 is over
    for who, name in [("@alice:example.org", "alice"), ("@alice", "alice"), ("alice", "alice"),
                      ("234567890123456789", "bob"), ("<@234567890123456789>", "bob"),
                      ("<@!234567890123456789>", "bob")]:
        record = await bot.say("olga", f"attendance {who}")
        assert f"Attendance of {name}" in record, (who, record)
    assert "Meeting #1" in await bot.say("olga", "attendance 1")
    unknown = await bot.say("olga", "attendance 345678901234567890")
    assert "I know no member with the id 345678901234567890" in unknown, unknown


# 12. small things users noticed ----------------------------------------------------------------------------------


async def test_unvote_without_a_vote_says_so(bot: CoreDriver) -> None:
    await bot.say("olga", 'poll "Q?" "A" "B"')
    none = await bot.say("alice", "unvote 1")
    assert "no vote in poll #1" in none and "withdrawn" not in none.text, none
    await bot.say("alice", "vote 1 2")
    assert "withdrawn" in await bot.say("alice", "unvote 1")


async def test_the_limit_on_poll_answers_is_stated_once(bot: CoreDriver) -> None:
    answers = " ".join(f'"A{i}"' for i in range(21))
    refused = await bot.say("olga", f'poll "Q?" {answers}')
    assert "the most is 20" in refused and refused.text.count("20") == 1, refused


async def test_a_multi_answer_polls_shares_are_of_voters_and_say_so(bot: CoreDriver) -> None:
    await bot.say("olga", 'poll "Evenings?" "Mon" "Wed" "Thu" --multi')
    await bot.say("alice", "vote 1 1 2")
    await bot.say("bob", "vote 1 1")
    results = await bot.say("carol", "poll results 1")
    assert "1. Mon: 2 (100%)" in results and "2. Wed: 1 (50%)" in results and "3. Thu: 0 (0%)" in results, results
    assert "shares of the 2 voters" in results, results
    await bot.say("olga", 'poll "One?" "X" "Y"')
    await bot.say("alice", "vote 2 1")
    single = await bot.say("carol", "poll results 2")
    assert "1. X: 1 (100%)" in single and "shares of" not in single.text, single

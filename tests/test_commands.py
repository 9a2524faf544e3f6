"""Pure tests of the command declarations, the text parser and the generated usage."""

from __future__ import annotations

import datetime as dt

import pytest

from circlebot.core.commands import CommandTable, UnknownCommand, UsageError, split_words
from circlebot.features import all_commands

TABLE = CommandTable(all_commands())


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('poll "What next?" "A b" C', ["poll", "What next?", "A b", "C"]),
        ("poll “Curly quotes” „German“ «fr»", ["poll", "Curly quotes", "German", "fr"]),
        ("readings what's new", ["readings", "what's", "new"]),
        ("poll 'single quoted' x", ["poll", "single quoted", "x"]),
        (r'poll "say \"hi\"" x', ["poll", 'say "hi"', "x"]),
        ("  spaced   out  ", ["spaced", "out"]),
        ("", []),
    ],
)
def test_split_words(line: str, words: list[str]) -> None:
    assert [w.text for w in split_words(line)] == words


def test_an_unclosed_quote_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="quote is not closed"):
        split_words('poll "open')


def test_poll_with_options_in_any_order() -> None:
    cmd, args = TABLE.parse('poll --multi "Q?" "A" --hours=12 "B" --secret')
    assert cmd.name == "poll"
    assert args == {"question": "Q?", "answers": ("A", "B"), "multi": True, "hours": 12.0, "secret": True}


def test_sub_commands_and_quoted_words_that_look_like_them() -> None:
    assert TABLE.parse("poll close 3")[0].name == "poll close"
    assert TABLE.parse("POLL Results #4") [1] == {"poll": 4}
    cmd, args = TABLE.parse('poll "close" "yes" "no"')  # a quoted word is never a sub-command
    assert cmd.name == "poll" and args["question"] == "close"


def test_schedule_arguments_are_typed() -> None:
    _, args = TABLE.parse("schedule some-slug 2026-12-03 18:30")
    assert args == {"slug": "some-slug", "date": dt.date(2026, 12, 3), "time": dt.time(18, 30)}
    assert TABLE.parse("schedule some-slug next")[1]["date"] == "next"
    assert TABLE.parse("schedule some-slug")[1]["date"] is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("rsvp", "missing <answer>"),
        ("rsvp often", "expected one of yes, maybe, no"),
        ("vote 1 0", "expected a number from 1 to 999999999"),
        ("vote -1 2", "expected a number"),
        ("vote 1 2 --fast", "unknown option --fast"),
        ("poll --hours", "--hours needs a value"),
        ("poll Q A B --hours 0", "between 1 and 768"),
        ("schedule x 3/12/2026", "expected a date like 2026-12-03"),
        ("schedule x 2026-12-03 25:00", "expected a time like 19:00"),
        ("here now", "too many words"),
    ],
)
def test_usage_errors_name_what_was_wrong(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        TABLE.parse(line)
    assert info.value.command is not None


def test_unknown_commands_suggest_near_names() -> None:
    with pytest.raises(UnknownCommand, match="Did you mean: reading"):
        TABLE.parse("readx")
    with pytest.raises(UsageError, match="too long"):
        TABLE.parse("help " + "x" * 3000)


def test_structured_options_bind_like_text() -> None:
    cmd = TABLE.get(("poll",))
    assert cmd is not None
    args = TABLE.bind(cmd, {"question": "Q?", "answers": '"A" "B c"', "multi": True, "hours": 2})
    assert args == {"question": "Q?", "answers": ("A", "B c"), "multi": True, "hours": 2.0, "secret": False}


def test_every_command_has_help_and_a_unique_path() -> None:
    for c in TABLE.commands:
        assert c.help and c.help.endswith("."), c.name
        for p in c.params:
            assert p.help, (c.name, p.name)
    assert len({c.path for c in TABLE.commands}) == len(TABLE.commands)

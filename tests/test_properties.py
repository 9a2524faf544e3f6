"""Properties of everything that reads hostile input: whatever comes in, the result is a value or a clear refusal
(UsageError, ConfigError, "not an event of that kind"), never another exception.

Covered: the text parser, the command binder (Discord's structured options), config loading, the decoding of
raw Matrix events and Discord interaction data, and whole command lines through the bot (one answer each,
never the apology for an internal error). Hypothesis builds the input from the pieces real input is made of
(command names, options, quotes, numbers, dates, invisible and bidi characters, keys of the config and of
events) mixed with arbitrary values; deterministic (derandomize) and bounded.
"""

from __future__ import annotations

import asyncio
import copy
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from circlebot.adapters.discord import core_paths, discord_path, parse_command_data
from circlebot.adapters.matrix import CommandEvent, ReactionEvent, parse_command, parse_reaction, parse_redaction
from circlebot.adapters.matrix import polls as matrix_polls
from circlebot.app import App
from circlebot.config import ConfigError, Settings, validate
from circlebot.core.commands import CommandTable, UsageError
from circlebot.features import all_commands
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import REPO, START, make_settings
from drivers import CoreDriver, FakeClock, RecordingAdapter

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

TABLE = CommandTable(all_commands())
COMMAND_WORDS = sorted({w for c in TABLE.commands for w in c.path})
OPTION_WORDS = [*sorted({f"--{p.name}" for c in TABLE.commands for p in c.params if p.option}), "--", "--x=1"]
TRICKY = ["\u200b", "\u202e", "\u2067", "\u202c", "\u0000", "\x1b[2J", "\ud800", "²", "٣", "#", "@", "<t:1:F>",
          "{prefix}", "'", "\"", "“", "„", "«", "»", "‘", "’", "\\", "\n", "*", "`", "<@123>", "@everyone"]
WORDS = ["yes", "maybe", "no", "next", "1", "0", "-1", "#2", "99999999999999999999", "1e-300", "nan", "inf", "768",
         "2026-12-03", "9999-12-31", "0001-01-01", "2026-02-30", "19:00", "24:00", "7pm",
         "bolivia-2003-first-balance-sheet", "alice", "@alice:example.org", "<@234567890123456789>", "'Tis", "what's"]

piece = st.one_of(st.sampled_from(COMMAND_WORDS), st.sampled_from(OPTION_WORDS), st.sampled_from(WORDS),
                  st.sampled_from(TRICKY), st.text(max_size=12))
command_line = st.one_of(
    st.text(max_size=200),
    st.lists(piece, min_size=1, max_size=10).map(" ".join),
    st.tuples(st.sampled_from(TABLE.commands), st.lists(piece, max_size=8)).map(
        lambda t: " ".join([*t[0].path, *t[1]])),
)
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
                   st.floats(), st.text(max_size=20), st.sampled_from(WORDS + TRICKY))
json_value = st.recursive(scalar, lambda children: st.lists(children, max_size=4) | st.dictionaries(
    st.text(max_size=8), children, max_size=4), max_leaves=12)


# the text parser and the binder ---------------------------------------------------------------------------------


@PROPERTY
@given(command_line)
def test_any_line_parses_or_is_refused_with_a_usage_error(line: str) -> None:
    try:
        command, values = TABLE.parse(line)
    except UsageError as e:
        assert str(e)
        return
    assert set(values) == {p.name for p in command.params}


@PROPERTY
@given(st.sampled_from(TABLE.commands), st.data())
def test_any_structured_options_bind_or_are_refused(command: Any, data: st.DataObject) -> None:
    names = [p.name for p in command.params]
    keys = st.sampled_from(names) if names else st.text(max_size=5)
    options = data.draw(st.dictionaries(st.one_of(keys, st.text(max_size=5)),
                                        st.one_of(json_value, st.sampled_from(WORDS + TRICKY)), max_size=6))
    try:
        values = TABLE.bind(command, options)
    except UsageError as e:
        assert str(e)
        return
    assert set(values) == set(names)


# config loading ------------------------------------------------------------------------------------------------

EXAMPLE = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
toml_value = st.recursive(
    st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
              st.sampled_from(WORDS + TRICKY + ["thursday", "90m", "24h", "0 19 * * thu", "Europe/London"]),
              st.dates(), st.times(), st.datetimes()),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


EXAMPLE_PATHS = [p for p in _paths(EXAMPLE) if p]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _validated(data: dict[str, Any]) -> None:
    try:
        settings = validate(data, Path("/tmp/circlebot-property/circlebot.toml"))
    except ConfigError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        return
    assert isinstance(settings, Settings) and settings.circles


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(EXAMPLE_PATHS), toml_value), min_size=1, max_size=3))
def test_any_change_to_the_example_config_loads_or_is_refused_with_its_key_path(
    changes: list[tuple[tuple[Any, ...], Any]]
) -> None:
    data = copy.deepcopy(EXAMPLE)
    for path, value in changes:
        try:
            _set(data, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced what this path went through
    _validated(data)


@PROPERTY
@given(st.dictionaries(st.sampled_from(["database", "readings", "timezone", "log_level", "console", "matrix",
                                        "discord", "circles", "colour"]), toml_value, max_size=5))
def test_any_config_file_loads_or_is_refused(data: dict[str, Any]) -> None:
    _validated(data)


# Matrix events -------------------------------------------------------------------------------------------------

EVENT_KEYS = ["type", "content", "sender", "event_id", "origin_server_ts", "redacts", "state_key", "unsigned"]
CONTENT_KEYS = ["msgtype", "body", "m.relates_to", "rel_type", "event_id", "key", "redacts", "m.selections",
                "org.matrix.msc3381.poll.response", "answers", "m.in_reply_to"]
EVENT_TYPES = ["m.room.message", "m.reaction", "m.room.redaction", *matrix_polls.RESPONSE_TYPES,
               *matrix_polls.END_TYPES]


def _event_like(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.text(max_size=6)), values, max_size=6)


content_like = st.recursive(
    _event_like(CONTENT_KEYS, st.one_of(json_value, st.sampled_from(["m.text", "m.thread", "m.replace",
                                                                       "m.annotation", "m.reference", "!rsvp yes",
                                                                       "$ev", "✅"]))),
    lambda children: _event_like(CONTENT_KEYS, children), max_leaves=6)
matrix_event = st.fixed_dictionaries(
    {}, optional={"type": st.one_of(st.sampled_from(EVENT_TYPES), json_value),
                  "content": st.one_of(content_like, json_value),
                  "sender": st.one_of(st.just("@alice:example.org"), json_value),
                  "event_id": st.one_of(st.just("$e"), json_value),
                  "origin_server_ts": st.one_of(st.integers(), st.floats(), json_value),
                  "redacts": st.one_of(st.just("$r"), json_value)},
)


@PROPERTY
@given(matrix_event)
def test_any_matrix_event_decodes_to_a_value_or_nothing(event: dict[str, Any]) -> None:
    command = parse_command(event, "!")
    assert command is None or (isinstance(command, CommandEvent) and command.text
                               and isinstance(command.at, datetime))
    reaction = parse_reaction(event)
    assert reaction is None or isinstance(reaction, ReactionEvent)
    redaction = parse_redaction(event)
    assert redaction is None or isinstance(redaction[0], str)
    response = matrix_polls.parse_response(event)
    assert response is None or all(isinstance(a, int) and a >= 0 for a in response.answers)
    end = matrix_polls.parse_end(event)
    assert end is None or isinstance(end.start_id, str)


def test_a_well_formed_command_event_decodes() -> None:
    event = {"type": "m.room.message", "sender": "@a:x", "event_id": "$1", "origin_server_ts": 1_700_000_000_000,
             "content": {"msgtype": "m.text", "body": "!rsvp yes",
                         "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}}
    assert parse_command(event, "!") == CommandEvent("$1", "@a:x", "rsvp yes",
                                                     datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "$root")
    assert parse_command({**event, "origin_server_ts": 10**30}, "!") is not None  # a forged time is now


# Discord interactions ------------------------------------------------------------------------------------------

PATHS = core_paths(TABLE.commands)
DISCORD_NAMES = sorted({w for c in TABLE.commands for w in discord_path(c, TABLE.commands)})
option_like = st.fixed_dictionaries(
    {}, optional={"name": st.one_of(st.sampled_from(DISCORD_NAMES + [p.name for c in TABLE.commands
                                                                     for p in c.params]), json_value),
                  "type": st.one_of(st.sampled_from([1, 2, 3, 4, 5, 10]), json_value),
                  "value": st.one_of(st.sampled_from(WORDS + TRICKY), json_value),
                  "focused": json_value,
                  "options": json_value},
)
interaction_data = st.fixed_dictionaries(
    {}, optional={"name": st.one_of(st.sampled_from(DISCORD_NAMES), json_value),
                  "options": st.one_of(st.lists(st.one_of(option_like, st.fixed_dictionaries(
                      {"type": st.just(1), "name": st.sampled_from(DISCORD_NAMES),
                       "options": st.lists(option_like, max_size=4)})), max_size=4), json_value)},
)


@PROPERTY
@given(interaction_data)
def test_any_discord_interaction_decodes_and_binds_or_is_refused(data: dict[str, Any]) -> None:
    path, options, focused = parse_command_data(data, PATHS)
    assert isinstance(path, tuple) and all(isinstance(k, str) for k in options)
    assert focused is None or focused in options
    command = TABLE.get(path)
    if command is None:
        return  # the core answers "there is no command ..."
    try:
        TABLE.bind(command, options)
    except UsageError as e:
        assert str(e)


# whole lines through the bot -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, CoreDriver]]:
    """One bot for every example (its state grows as examples run, as a real circle's would)."""
    loop = asyncio.new_event_loop()
    settings = make_settings(tmp_path_factory.mktemp("property-bot"))

    async def start() -> CoreDriver:
        db = await Database.open(settings.database)
        store = Store(db)
        store.batcher.start()
        clock = FakeClock(START)
        app = App(settings, store, load_collection(settings.readings), clock)
        adapter = RecordingAdapter(settings.zone_of(settings.circles[0]))
        app.add_adapter(adapter)
        return CoreDriver(app, adapter, clock, settings.circles[0].slug)

    driver = loop.run_until_complete(start())
    yield loop, driver
    loop.run_until_complete(driver.app.store.batcher.stop())
    loop.run_until_complete(driver.app.store.db.close())
    loop.close()


@PROPERTY
@given(st.sampled_from(["olga", "alice", "b\u202eob", "e\u200bve", "<t:999999999999:F>"]), command_line)
@example("olga", "attendance 99999999999999999999")  # lines that once broke (issue 11)
@example("olga", "attendance ²")
@example("alice", "vote ² 1")
@example("<t:999999999999:F>", "rsvp yes")
@example("olga", "schedule bolivia-2003-first-balance-sheet 9999-12-31")
@example("olga", "skip 9999-12-31")
@example("olga", "move 1 9999-12-31 23:59")
def test_any_line_through_the_bot_gets_one_answer_and_never_the_apology(
    bot: tuple[asyncio.AbstractEventLoop, CoreDriver], user: str, line: str
) -> None:
    loop, driver = bot
    answer = loop.run_until_complete(driver.say(user, line))  # exactly one answer, rendered
    assert "went wrong on my side" not in answer.text, (line, answer)

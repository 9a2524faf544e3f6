"""The stored form of a post decided once (the RSVP deadline's, the nudge: see test_decided_once.py): a Text and a
Post as JSON and back, for any value, and a clear refusal of anything else read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from circlebot.core.domain import ChannelRef, Control, MessageRef, Post, UserRef, post_from_json, post_to_json
from circlebot.core.text import CommandRef, Text, TimeStyle, TimeValue, cmd, when

DEADLINE_DUE = datetime(2026, 11, 24, 19, tzinfo=UTC)


def test_a_text_names_its_segments_as_json() -> None:
    """The stored form of a decided post is plain JSON: the text's segments in order."""
    text = "⏩ **Meeting #1** on " + when(DEADLINE_DUE) + ". Answer with " + cmd("rsvp", answer="yes", meeting=1)
    assert text.to_data() == [
        "⏩ **Meeting #1** on ", {"time": "2026-11-24T19:00:00+00:00", "style": "F"}, ". Answer with ",
        {"command": ["rsvp"], "values": [["answer", "yes"], ["meeting", "1"]]}]
    assert Text.from_data(text.to_data()) == text
    assert Text.from_data([]) == Text()



PROPERTY = settings(derandomize=True, max_examples=300, deadline=None, database=None)

moment = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                      timezones=st.none() | st.timezones() | st.just(UTC))
segment = st.one_of(
    st.text(),  # any text: markup, time marks, bidi controls, lone surrogates
    st.builds(TimeValue, moment, st.sampled_from(TimeStyle)),
    st.builds(CommandRef, st.lists(st.text(min_size=1), min_size=1, max_size=3).map(tuple),
              st.lists(st.tuples(st.text(), st.text()), max_size=3).map(tuple)),
)
text = st.lists(segment, max_size=8).map(lambda segs: Text(*segs))
user = st.builds(UserRef, st.sampled_from(["console", "discord", "matrix"]), st.text(), st.text())
channel = st.builds(ChannelRef, st.sampled_from(["console", "discord", "matrix"]), st.text())
post = st.builds(Post, st.one_of(text, st.text()), st.lists(user, max_size=4).map(tuple), st.booleans(),
                 st.none() | st.integers(min_value=-2**63, max_value=2**63 - 1),
                 st.lists(st.sampled_from(Control), max_size=3, unique=True).map(tuple),
                 st.none() | st.builds(MessageRef, channel, st.text()))


@PROPERTY
@given(text)
def test_any_text_round_trips_through_json(value: Text) -> None:
    back = Text.from_data(json.loads(json.dumps(value.to_data())))
    assert back == value
    assert [s.at.utcoffset() if isinstance(s, TimeValue) else None for s in back] == [
        s.at.utcoffset() if isinstance(s, TimeValue) else None for s in value]  # the same moment, as written


@PROPERTY
@given(post)
def test_any_post_round_trips_through_json(value: Post) -> None:
    stored = post_to_json(value)
    assert stored.isascii()  # whatever users typed in it, the stored form is plain ASCII JSON
    back = post_from_json(stored)
    assert back == Post(value.content, value.mentions, value.notify, value.meeting_id, value.controls, value.thread_of)
    assert post_to_json(back) == stored


json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["text", "time", "style", "command", "values", "mentions", "notify", "meeting_id",
                         "controls", "thread_of", "channel", "id", "x"]), children, max_size=5),
    max_leaves=15)


@PROPERTY
@given(json_value)
@example({"text": [], "controls": [{}]})  # what is not a name of a control, not even hashable
@example({"text": [{"command": [], "values": []}], "mentions": [["discord", "1"]]})
def test_any_stored_value_reads_as_a_post_or_is_refused_clearly(value: Any) -> None:
    try:
        post_from_json(json.dumps(value))
    except ValueError as e:
        assert str(e).startswith("not a stored post: "), e


def test_a_broken_stored_post_is_refused_naming_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"not a stored post: .*'style'.*\"Z\""):
        post_from_json('{"text": [{"time": "2026-11-24T19:00:00+00:00", "style": "Z"}]}')
    with pytest.raises(ValueError, match="not a stored post: not JSON"):
        post_from_json("{")

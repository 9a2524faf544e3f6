"""MSC3381 polls on Matrix, as pure functions: the events circlebot sends and how it reads the answers.

circlebot sends the unstable event types Element renders (``org.matrix.msc3381.poll.*``) and accepts both the
unstable and the stable (``m.poll.*``) forms. Answer ids are ``a1`` .. ``aN`` (1-based, in the poll's order).

Counting follows MSC3381: each user's latest response by ``origin_server_ts`` wins even when it is spoiled; a
response naming an unknown answer id is spoiled (an empty ballot); an empty list withdraws the vote; responses
timestamped after the poll's first valid end are ignored; a duplicate answer counts once. Cutting to
``max_selections`` is left to the core, which does it for every platform.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from circlebot.core.domain import PollSpec

START_UNSTABLE = "org.matrix.msc3381.poll.start"
RESPONSE_UNSTABLE = "org.matrix.msc3381.poll.response"
END_UNSTABLE = "org.matrix.msc3381.poll.end"
RESPONSE_TYPES = frozenset({RESPONSE_UNSTABLE, "m.poll.response"})
END_TYPES = frozenset({END_UNSTABLE, "m.poll.end"})
TEXT_UNSTABLE = "org.matrix.msc1767.text"
KIND_DISCLOSED = "org.matrix.msc3381.poll.disclosed"
KIND_UNDISCLOSED = "org.matrix.msc3381.poll.undisclosed"

_ANSWER_ID = re.compile(r"a([1-9][0-9]{0,2})")


def answer_id(index: int) -> str:
    """The Matrix answer id of the 0-based answer `index`."""
    return f"a{index + 1}"


def answer_index(aid: object) -> int | None:
    """The 0-based answer index of an answer id circlebot made, or None for anything else."""
    if not isinstance(aid, str):
        return None
    m = _ANSWER_ID.fullmatch(aid)
    return int(m[1]) - 1 if m else None


def start_content(poll: PollSpec, question: str, answers: Iterable[str], fallback: str) -> dict[str, Any]:
    """Content of an ``org.matrix.msc3381.poll.start`` event (question and answers already rendered)."""
    texts = list(answers)
    return {
        TEXT_UNSTABLE: fallback,
        "body": fallback,
        START_UNSTABLE: {
            "kind": KIND_UNDISCLOSED if poll.secret else KIND_DISCLOSED,
            "max_selections": len(texts) if poll.multi else 1,
            "question": {TEXT_UNSTABLE: question, "body": question},
            "answers": [{"id": answer_id(i), TEXT_UNSTABLE: a} for i, a in enumerate(texts)],
        },
    }


def end_content(start_event_id: str, text: str) -> dict[str, Any]:
    """Content of an ``org.matrix.msc3381.poll.end`` event closing the poll started by `start_event_id`."""
    return {
        "m.relates_to": {"rel_type": "m.reference", "event_id": start_event_id},
        TEXT_UNSTABLE: text,
        "body": text,
        END_UNSTABLE: {},
    }


def _reference(content: Mapping[str, Any]) -> str | None:
    rel = content.get("m.relates_to")
    if not isinstance(rel, Mapping) or rel.get("rel_type") != "m.reference":
        return None
    target = rel.get("event_id")
    return target if isinstance(target, str) else None


@dataclass(frozen=True, slots=True)
class PollResponse:
    """One user's response to a poll: `answers` are 0-based indices, empty for a spoiled or withdrawn vote."""

    event_id: str
    sender: str
    start_id: str
    answers: tuple[int, ...]
    ts: int
    spoiled: bool = False


def _related(event: Mapping[str, Any], types: Container[str]) -> tuple[Mapping[str, Any], str, str, str, int] | None:
    """(content, start event id, sender, event id, timestamp) of a well-formed poll event of one of `types`."""
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in types:
        return None
    content = event.get("content")
    if not isinstance(content, Mapping):
        return None
    start_id = _reference(content)
    sender, event_id, ts = event.get("sender"), event.get("event_id"), event.get("origin_server_ts")
    if (start_id is None or not isinstance(sender, str) or not isinstance(event_id, str) or not isinstance(ts, int)
            or isinstance(ts, bool)):
        return None
    return content, start_id, sender, event_id, ts


def parse_response(event: Mapping[str, Any]) -> PollResponse | None:
    """A poll response from a raw event (unstable or stable form), or None when it is not one."""
    related = _related(event, RESPONSE_TYPES)
    if related is None:
        return None
    content, start_id, sender, event_id, ts = related
    block = content.get(RESPONSE_UNSTABLE)
    ids = block.get("answers") if isinstance(block, Mapping) else content.get("m.selections")
    if not isinstance(ids, list):
        return PollResponse(event_id, sender, start_id, (), ts, spoiled=True)
    indices = [answer_index(a) for a in ids]
    if any(i is None for i in indices):
        return PollResponse(event_id, sender, start_id, (), ts, spoiled=True)
    unique = dict.fromkeys(i for i in indices if i is not None)  # a duplicate counts once
    return PollResponse(event_id, sender, start_id, tuple(unique), ts)


@dataclass(frozen=True, slots=True)
class PollEnd:
    """A poll end event: who ended which poll, when."""

    event_id: str
    sender: str
    start_id: str
    ts: int


def parse_end(event: Mapping[str, Any]) -> PollEnd | None:
    """A poll end from a raw event (unstable or stable form), or None when it is not one."""
    related = _related(event, END_TYPES)
    if related is None:
        return None
    _, start_id, sender, event_id, ts = related
    return PollEnd(event_id, sender, start_id, ts)


def latest_per_user(responses: Iterable[PollResponse], end_ts: int | None = None) -> dict[str, PollResponse]:
    """Each user's counting response: the latest by ``origin_server_ts`` (later in the input wins a tie), none
    timestamped after `end_ts`."""
    latest: dict[str, PollResponse] = {}
    for r in responses:
        if end_ts is not None and r.ts > end_ts:
            continue
        held = latest.get(r.sender)
        if held is None or r.ts >= held.ts:
            latest[r.sender] = r
    return latest

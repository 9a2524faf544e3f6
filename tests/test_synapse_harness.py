"""Proof that the Synapse harness works: a real homeserver, real users, rooms, polls, reactions, restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio import RoomMessageText, SyncResponse, UnknownEvent
from nio.api import RelationshipType

import synapse_harness
from synapse_harness import (
    SYNAPSE_MISSING_MESSAGE,
    HomeserverUnreachable,
    MatrixAccount,
    MatrixHelperError,
    SynapseServer,
    SynapseStartError,
    create_room,
    event_matcher,
    join,
    messages,
    react,
    redact,
    relations,
    send_event,
    send_text,
    wait_for_event,
)

# Registers the fixtures and the start-time summary; a no-op when conftest.py registers it first.
pytest_plugins = ["synapse_harness"]

MakeUser = Callable[..., Awaitable[MatrixAccount]]

POLL_START = "org.matrix.msc3381.poll.start"
POLL_RESPONSE = "org.matrix.msc3381.poll.response"

SYNC_FILTER = {"room": {"timeline": {"limit": 100}}}


async def _room_with(alice: MatrixAccount, bob: MatrixAccount) -> str:
    """Alice creates a room, invites Bob, Bob joins; returns the room id."""
    room_id = await create_room(alice.client, invite=[bob.user_id], name="harness")
    assert await join(bob.client, room_id) == room_id
    return room_id


def _timeline_bodies(resp: SyncResponse, room_id: str) -> list[str]:
    room = resp.rooms.join.get(room_id)
    if room is None:
        return []
    return [e.body for e in room.timeline.events if isinstance(e, RoomMessageText)]


@pytest.mark.timeout(90)
def test_server_answers_versions(synapse: SynapseServer) -> None:
    """The session server is up on loopback and ``/_matrix/client/versions`` answers."""
    assert synapse.running
    assert synapse.url == f"http://127.0.0.1:{synapse.port}"
    assert synapse.last_start_seconds is not None
    with urllib.request.urlopen(f"{synapse.url}/_matrix/client/versions", timeout=5) as resp:
        body = json.load(resp)
    assert resp.status == 200
    assert "v1.11" in body["versions"]


@pytest.mark.timeout(60)
async def test_users_room_invite_join_and_text(matrix_user: MakeUser) -> None:
    """Two fresh users; one creates a room and invites the other, who joins and reads a text message."""
    alice = await matrix_user("alice")
    bob = await matrix_user("bob")
    assert alice.user_id != bob.user_id
    assert alice.user_id.startswith("@alice-") and alice.user_id.endswith(":localhost")
    whoami = await bob.client.whoami()
    assert getattr(whoami, "user_id", None) == bob.user_id

    room_id = await _room_with(alice, bob)
    sent = await send_text(alice.client, room_id, "hello from alice")

    got = await wait_for_event(
        bob.client, room_id, event_matcher("m.room.message", sender=alice.user_id, body_contains="hello")
    )
    assert got["event_id"] == sent
    assert got["content"] == {"msgtype": "m.text", "body": "hello from alice"}

    history = await messages(bob.client, room_id)
    joins = [e["state_key"] for e in history if e["type"] == "m.room.member"]
    assert alice.user_id in joins and bob.user_id in joins
    assert history[-1]["event_id"] == sent  # newest last

    notice = await send_text(bob.client, room_id, "a notice", msgtype="m.notice")
    got = await wait_for_event(alice.client, room_id, event_matcher(msgtype="m.notice"), after=sent)
    assert got["event_id"] == notice


@pytest.mark.timeout(60)
async def test_poll_start_response_and_relations(matrix_user: MakeUser) -> None:
    """An MSC3381 poll start and an ``m.reference`` response are read back, also via the relations API."""
    alice = await matrix_user("alice")
    bob = await matrix_user("bob")
    room_id = await _room_with(alice, bob)

    start_content = {
        "org.matrix.msc1767.text": "Which chapter next?\n1. Ch. 3\n2. Ch. 4",
        POLL_START: {
            "kind": "org.matrix.msc3381.poll.disclosed",
            "max_selections": 1,
            "question": {"org.matrix.msc1767.text": "Which chapter next?"},
            "answers": [
                {"id": "a1", "org.matrix.msc1767.text": "Ch. 3"},
                {"id": "a2", "org.matrix.msc1767.text": "Ch. 4"},
            ],
        },
    }
    start_id = await send_event(alice.client, room_id, POLL_START, start_content)
    seen_start = await wait_for_event(bob.client, room_id, event_matcher(POLL_START))
    assert seen_start["event_id"] == start_id
    assert seen_start["content"][POLL_START]["answers"][1]["id"] == "a2"

    response_content = {
        "m.relates_to": {"rel_type": "m.reference", "event_id": start_id},
        POLL_RESPONSE: {"answers": ["a2"]},
    }
    response_id = await send_event(bob.client, room_id, POLL_RESPONSE, response_content)
    seen_response = await wait_for_event(
        alice.client, room_id, event_matcher(POLL_RESPONSE, sender=bob.user_id, relates_to=start_id)
    )
    assert seen_response["event_id"] == response_id
    assert seen_response["content"][POLL_RESPONSE] == {"answers": ["a2"]}

    related = await relations(alice.client, room_id, start_id)
    assert [e["event_id"] for e in related] == [response_id]
    assert [e["event_id"] for e in await relations(alice.client, room_id, start_id, "m.reference")] == [
        response_id
    ]

    # nio's own iterator parses poll events as UnknownEvent with the raw event in .source.
    nio_related = [
        e async for e in alice.client.room_get_event_relations(room_id, start_id, RelationshipType.reference)
    ]
    assert len(nio_related) == 1
    assert isinstance(nio_related[0], UnknownEvent)
    assert nio_related[0].type == POLL_RESPONSE
    assert nio_related[0].source["content"]["m.relates_to"]["event_id"] == start_id


@pytest.mark.timeout(60)
async def test_reaction_and_redaction(matrix_user: MakeUser) -> None:
    """A reaction is read back as an annotation; its redaction arrives and empties the reaction."""
    alice = await matrix_user("alice")
    bob = await matrix_user("bob")
    room_id = await _room_with(alice, bob)
    target = await send_text(alice.client, room_id, "Meeting on Friday — react to RSVP")

    reaction_id = await react(bob.client, room_id, target, "✅")
    seen = await wait_for_event(alice.client, room_id, event_matcher("m.reaction", relates_to=target))
    assert seen["event_id"] == reaction_id
    assert seen["content"]["m.relates_to"] == {"rel_type": "m.annotation", "event_id": target, "key": "✅"}
    assert [e["event_id"] for e in await relations(alice.client, room_id, target, "m.annotation")] == [
        reaction_id
    ]

    redaction_id = await redact(bob.client, room_id, reaction_id)
    seen = await wait_for_event(alice.client, room_id, event_matcher("m.room.redaction"))
    assert seen["event_id"] == redaction_id
    assert seen["sender"] == bob.user_id
    # Room v11+ puts "redacts" in content; older versions have it top-level.
    assert (seen["content"].get("redacts") or seen.get("redacts")) == reaction_id

    history = {e["event_id"]: e for e in await messages(alice.client, room_id)}
    assert history[reaction_id]["content"] == {}  # redacted
    assert await relations(alice.client, room_id, target, "m.annotation") == []


@pytest.mark.timeout(90)
async def test_restart_mid_test_same_client_keeps_working(
    synapse: SynapseServer, matrix_user: MakeUser
) -> None:
    """Stop Synapse mid-test: sends fail loudly; after start on the same port the same clients go on.

    The sync token from before the outage still works: the incremental sync after the restart brings the
    new message and replays nothing.
    """
    alice = await matrix_user("alice")
    bob = await matrix_user("bob")
    room_id = await _room_with(alice, bob)
    await send_text(alice.client, room_id, "before the outage")

    first = await bob.client.sync(timeout=0, sync_filter=SYNC_FILTER, full_state=True)
    assert isinstance(first, SyncResponse), first
    assert "before the outage" in _timeline_bodies(first, room_id)
    token = bob.client.next_batch
    assert token == first.next_batch

    port, url = synapse.port, synapse.url
    try:
        synapse.stop()
        assert not synapse.running
        with pytest.raises(HomeserverUnreachable):
            await send_text(alice.client, room_id, "during the outage")
        start_seconds = synapse.start()
        assert start_seconds > 0
        assert (synapse.port, synapse.url) == (port, url)
    finally:
        synapse.ensure_running()

    after = await send_text(alice.client, room_id, "after the restart")
    bodies: list[str] = []
    deadline = time.monotonic() + 20
    while "after the restart" not in bodies:
        assert time.monotonic() < deadline, f"bob never synced the post-restart message: {bodies}"
        resp = await bob.client.sync(timeout=2000, sync_filter=SYNC_FILTER)  # since=next_batch
        assert isinstance(resp, SyncResponse), resp
        bodies += _timeline_bodies(resp, room_id)
    assert bodies == ["after the restart"]  # nothing replayed, nothing from the outage
    assert bob.client.next_batch != token

    reply = await send_text(bob.client, room_id, "bob is back too")
    got = await wait_for_event(alice.client, room_id, event_matcher(sender=bob.user_id), after=after)
    assert got["event_id"] == reply


@pytest.mark.timeout(60)
async def test_helpers_raise_on_matrix_errors(matrix_user: MakeUser) -> None:
    """nio returns errors as values; the helpers raise them, with the Matrix error code in the message."""
    alice = await matrix_user("alice")
    carol = await matrix_user("carol")
    room_id = await create_room(alice.client)

    with pytest.raises(MatrixHelperError, match="join"):
        await join(carol.client, room_id)  # private room, not invited
    with pytest.raises(MatrixHelperError, match="M_FORBIDDEN"):
        await send_text(carol.client, room_id, "not a member")
    with pytest.raises(MatrixHelperError):
        await react(alice.client, room_id, "$does-not-exist", "👍")  # Synapse: unknown relation target
    with pytest.raises(MatrixHelperError, match="must not appear"):
        # Room v12 (Synapse's default): the creator is above power levels and may not be listed.
        await create_room(alice.client, power_levels={"users": {alice.user_id: 100}})
    v11 = await create_room(alice.client, power_levels={"users": {alice.user_id: 100}}, room_version="11")
    assert v11.endswith(":localhost")
    with pytest.raises(TimeoutError, match="no matching event"):
        await wait_for_event(alice.client, room_id, event_matcher(body_contains="never sent"), timeout=0.3)


@pytest.mark.timeout(60)
async def test_register_user_is_unique_and_admin_flag(synapse: SynapseServer, matrix_user: MakeUser) -> None:
    """Same prefix twice gives two users; ``admin=True`` makes a server admin."""
    one = await synapse.register_user("bot")
    two = await synapse.register_user("bot")
    assert one.user_id != two.user_id and one.localpart.startswith("bot-")
    admin = await matrix_user("root", admin=True)
    assert admin.user.admin
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{synapse.url}/_synapse/admin/v2/users/{one.user_id}",
            headers={"Authorization": f"Bearer {admin.user.access_token}"},
        ) as resp,
    ):
        assert resp.status == 200
        info: dict[str, Any] = await resp.json()
    assert info["name"] == one.user_id and info["admin"] is False


@pytest.mark.timeout(60)
def test_fixture_fails_loudly_without_synapse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matrix-synapse the ``synapse`` fixture errors with the install hint; it does not skip."""
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import synapse_harness
            synapse_harness.synapse_installed = lambda: False
            pytest_plugins = ["synapse_harness"]
            """
        )
    )
    (tmp_path / "test_inner.py").write_text("def test_needs_server(synapse):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 error" in out, out
    assert "skipped" not in out, out
    assert SYNAPSE_MISSING_MESSAGE in out, out

    monkeypatch.setattr(synapse_harness, "synapse_installed", lambda: False)
    with pytest.raises(SynapseStartError, match="matrix-synapse is not installed"):
        SynapseServer(tmp_path / "hs").start()

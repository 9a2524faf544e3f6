"""End-to-end encryption against a real Synapse: the whole bot in an encrypted room with members whose nio
clients encrypt (each with its own crypto store), as Element's members do.

What a member sees is read the way their client reads it: synced, decrypted with their own keys. The raw
events on the server are checked too, so that "encrypted" means the server never saw the text.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import aiohttp
import pexpect
import pytest
import pytest_asyncio
from nio import AsyncClient, DownloadResponse, LoginResponse, RoomCreateResponse
from nio.api import RoomPreset
from nio.crypto.attachments import decrypt_attachment
from signedjson.key import decode_verify_key_base64
from signedjson.sign import verify_signed_json

from circlebot.adapters.lookups import AppLookups
from circlebot.adapters.matrix import CHECK_IN_KEY, REPLY_TO_KEY, MatrixAdapter
from circlebot.adapters.matrix.setup import setup_cross_signing
from circlebot.app import App
from circlebot.core.domain import ChannelRef, Control, Post, RsvpAnswer
from circlebot.features.record_export import record_csv
from circlebot.readings import load_collection
from circlebot.store import Store
from conftest import REPO
from drivers import FakeClock, number_after
from matrix_member import Member, Source
from synapse_harness import (
    MatrixAccount,
    SynapseServer,
    create_room,
    invite,
    join,
    messages,
    send_text,
    wait_for_event,
)
from test_matrix_driver import WAIT, MakeUser, MatrixBot, in_reply_to, matrix_settings

SEED = "bolivia-2003-first-balance-sheet"


@pytest_asyncio.fixture
async def members(matrix_user: MakeUser, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Member] = []

    async def make(name: str) -> Member:
        account = await matrix_user(name)
        await account.client.set_displayname(name)
        member = Member(account, tmp_path / f"{name}-store")
        made.append(member)
        return member

    yield make
    for m in made:
        with contextlib.suppress(Exception):
            await m.client.close()


def from_bot(bot: str, kind: str | None = None, reply_to: str | None = None) -> Callable[[Source], bool]:
    def match(e: Source) -> bool:
        return (e.get("sender") == bot and (kind is None or e.get("type") == kind)
                and (reply_to is None or in_reply_to(e) == reply_to))
    return match


async def raw_event(account: MatrixAccount, room_id: str, event_id: str) -> Source:
    """The event as the server holds it."""
    return next(e for e in await messages(account.client, room_id, limit=100) if e.get("event_id") == event_id)


async def bot_keys(account: MatrixAccount) -> dict[str, Any]:
    """The bot's devices and their keys, as anyone asking ``/keys/query`` sees them."""
    url = f"{account.user.homeserver}/_matrix/client/v3/keys/query"
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                session.post(url, json={"device_keys": {account.user_id: []}},
                             headers={"Authorization": f"Bearer {account.user.access_token}"}) as r):
        body = await r.json()
        assert r.status == 200, body
        return dict(body["device_keys"].get(account.user_id, {}))


async def one_time_key_counts(account: MatrixAccount) -> dict[str, int]:
    """How many one-time keys the bot's device has on the server (an upload of nothing answers that)."""
    url = f"{account.user.homeserver}/_matrix/client/v3/keys/upload"
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                session.post(url, json={}, headers={"Authorization": f"Bearer {account.user.access_token}"}) as r):
        body = await r.json()
        assert r.status == 200, body
        return dict(body["one_time_key_counts"])


@contextlib.asynccontextmanager
async def encrypted_circle(matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store,
                           clock: FakeClock) -> AsyncIterator[tuple[MatrixBot, str, Member, Member]]:
    """An encrypted room made by olga (the organiser) with alice in it, and the bot running and joined."""
    olga, alice = await members("olga"), await members("alice")
    bot_account = await matrix_user("bot")
    room = await create_room(olga.account.client, invite=[alice.user_id], encrypted=True, name="secret circle")
    await alice.account.client.join(room)
    settings = matrix_settings(tmp_path, bot_account, [room])
    bot = MatrixBot(App(settings, store, load_collection(settings.readings), clock), bot_account)
    await bot.start()
    try:
        await invite(olga.account.client, room, bot_account.user_id)
        await wait_for_event(olga.account.client, room, lambda e: e.get("type") == "m.room.member"
                             and e.get("state_key") == bot_account.user_id
                             and e["content"].get("membership") == "join", timeout=WAIT, interval=0.02)
        for m in (olga, alice):
            await m.sync()
        yield bot, room, olga, alice
    finally:
        await bot.stop()


@pytest.mark.timeout(90)
async def test_an_encrypted_room_commands_polls_reactions_and_a_restart(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, olga, alice):
        bot_account = bot.bot
        bot_id = bot_account.user_id
        # a command, encrypted; the answer, encrypted, decrypted by the member
        ask = await alice.command(room, "!circle")
        assert (await raw_event(alice.account, room, ask))["type"] == "m.room.encrypted"
        await bot.processed(ask)
        answer = await alice.wait_for(room, from_bot(bot_id, "m.room.message", reply_to=ask))
        assert "Test study circle" in answer["content"]["body"] and answer["content"]["msgtype"] == "m.notice"
        raw = await raw_event(alice.account, room, answer["event_id"])
        assert raw["type"] == "m.room.encrypted" and "Test study circle" not in str(raw)

        # a private answer: the 📨 reaction on the command is encrypted too
        wrong = await alice.command(room, "!rsvp perhaps")
        await bot.processed(wrong)
        mark = await alice.wait_for(room, lambda e: e.get("sender") == bot_id and e.get("type") == "m.reaction"
                                    and e["content"]["m.relates_to"]["event_id"] == wrong)
        assert (await raw_event(alice.account, room, mark["event_id"]))["type"] == "m.room.encrypted"

        # a poll opened, voted and closed, every event encrypted
        opened = await olga.command(room, '!poll "Best day?" "Mon" "Tue"')
        await bot.processed(opened)
        poll = number_after("poll", (await olga.wait_for(room, from_bot(bot_id, reply_to=opened)))["content"]["body"])
        start = await alice.wait_for(room, from_bot(bot_id, "org.matrix.msc3381.poll.start"))
        assert (await raw_event(alice.account, room, start["event_id"]))["type"] == "m.room.encrypted"
        vote = await alice.send(room, "org.matrix.msc3381.poll.response", {
            "m.relates_to": {"rel_type": "m.reference", "event_id": start["event_id"]},
            "org.matrix.msc3381.poll.response": {"answers": ["a2"]}})
        await bot.processed(vote)
        assert [answers for _, answers in await store.ballots(poll)] == [(1,)]
        close = await olga.command(room, f"!poll close {poll}")
        await bot.processed(close)
        end = await alice.wait_for(room, from_bot(bot_id, "org.matrix.msc3381.poll.end"))
        assert end["content"]["m.relates_to"]["event_id"] == start["event_id"]
        assert "Tue: 1" in end["content"]["org.matrix.msc1767.text"]

        # RSVP and check-in by encrypted reactions on the bot's (encrypted) meeting posts
        now = datetime.now(UTC)
        meeting = await store.add_meeting("study", now - timedelta(minutes=10), now + timedelta(minutes=80), SEED,
                                          None, now)
        where = ChannelRef("matrix", room)
        post = await bot.adapter.send(where, Post("Coming?", meeting_id=meeting.id, controls=(Control.RSVP,)))
        questions = await bot.adapter.send(where, Post("Questions", meeting_id=meeting.id,
                                                       controls=(Control.CHECK_IN,)))
        offered = await alice.wait_for(room, lambda e: e.get("type") == "m.reaction"
                                       and e["content"]["m.relates_to"]["event_id"] == questions.id)
        assert offered["content"]["m.relates_to"]["key"] == CHECK_IN_KEY
        for target, key in ((post.id, "✅"), (questions.id, CHECK_IN_KEY)):
            await bot.processed(await alice.send(room, "m.reaction", {
                "m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}))
        assert [(u.id, a) for u, a in await store.rsvps(meeting.id)] == [(alice.user_id, RsvpAnswer.YES)]
        assert [u.id for u, _ in await store.checkins(meeting.id)] == [alice.user_id]

        # a restart: the same device, the same keys, no new one-time keys, and it still reads and answers
        before = await bot_keys(bot_account)
        device = bot.adapter.client.device_id
        await bot.restart()
        assert bot.adapter.client.device_id == device
        again = await alice.command(room, "!circle")
        await bot.processed(again)
        await alice.wait_for(room, from_bot(bot_id, "m.room.message", reply_to=again))
        after = await bot_keys(bot_account)
        assert list(after) == [device] and after[device]["keys"] == before[device]["keys"]
        # nio tops the one-time keys up to its maximum as members claim them; a new account would add a batch
        olm = bot.adapter.client.olm
        assert olm is not None
        assert (await one_time_key_counts(bot_account)).get("signed_curve25519", 0) <= olm.account.max_one_time_keys


async def dm_with_bot(store: Store, member: Member) -> str:
    """The member's direct-message room with the bot, joined (the bot opened it)."""
    rooms = json.loads(await store.get_state("matrix", "dm_rooms") or "{}")
    room = rooms.get(member.user_id)
    assert room, f"the bot has no direct-message room with {member.user_id}"
    await member.account.client.join(room)
    return str(room)


async def said_privately(member: Member, room: str, bot_id: str) -> list[Source]:
    """The bot's messages in a direct room, as the member's client shows them (decrypted)."""
    return [e for e in await member.history(room) if e.get("sender") == bot_id and e.get("type") == "m.room.message"]


async def wait_for_dm(store: Store, member: Member, bot_id: str, words: str) -> list[Source]:
    """Waits until the bot has told the member something containing `words` privately; all it said."""
    deadline = time.monotonic() + WAIT
    while not json.loads(await store.get_state("matrix", "dm_rooms") or "{}").get(member.user_id):
        assert time.monotonic() < deadline, f"the bot opened no direct-message room with {member.user_id}"
        await asyncio.sleep(0.05)
    room = await dm_with_bot(store, member)
    while True:
        said = await said_privately(member, room, bot_id)
        if any(words in str(e["content"].get("body")) for e in said):
            return said
        assert time.monotonic() < deadline, f"the bot told {member.user_id} nothing with {words!r}: {said}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_messages_the_bot_never_got_the_key_for_are_reported_once_and_uncertain_votes_listed(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, olga, alice):
        bot_id = bot.bot.user_id
        bot.adapter.undecryptable_grace = 0.0  # report at the first look after a sync, not a minute later
        opened = await olga.command(room, '!poll "Best day?" "Mon" "Tue"')
        await bot.processed(opened)
        poll = number_after("poll", (await olga.wait_for(room, from_bot(bot_id, reply_to=opened)))["content"]["body"])
        start = await alice.wait_for(room, from_bot(bot_id, "org.matrix.msc3381.poll.start"))
        # alice's client withholds its room keys from the bot's device (as Element does for a device it
        # will not trust): the bot gets her events, never their key
        for device in alice.client.device_store.active_user_devices(bot_id):
            alice.client.blacklist_device(device)
        ask = await alice.command(room, "!circle")
        vote = await alice.send(room, "org.matrix.msc3381.poll.response", {
            "m.relates_to": {"rel_type": "m.reference", "event_id": start["event_id"]},
            "org.matrix.msc3381.poll.response": {"answers": ["a2"]}})
        for event_id in (ask, vote):
            await bot.processed(event_id)

        told = await wait_for_dm(store, alice, bot_id, "could not read")
        assert len(told) == 1, [e["content"]["body"] for e in told]  # one session, one notice
        assert "vote on poll #" in told[0]["content"]["body"] or "your message" in told[0]["content"]["body"]
        listed = await wait_for_dm(store, olga, bot_id, f"Poll #{poll}")
        assert "uncertain" in listed[-1]["content"]["body"] and alice.user_id in listed[-1]["content"]["body"]
        assert await store.ballots(poll) == []  # not counted
        events = await messages(olga.account.client, room)
        assert not [e for e in events if e.get("sender") == bot_id and in_reply_to(e) == ask]  # not acted on

        await bot.restart()  # kept across a restart: told once, not again
        await bot.processed(await olga.command(room, "!circle"))
        assert len(await said_privately(alice, await dm_with_bot(store, alice), bot_id)) == 1


@pytest.mark.timeout(60)
async def test_an_event_whose_key_comes_late_is_handled_when_it_comes(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, _olga, alice):
        bot_id = bot.bot.user_id
        client = alice.client
        assert client.olm is not None
        await client.joined_members(room)
        if client.should_query_keys:
            await client.keys_query()
        if missing := client.get_missing_sessions(room):
            await client.keys_claim(missing)
        # the room key is made and its to-device messages written now, but delivered after the event
        held = list(client.olm.share_group_session_parallel(room, list(client.rooms[room].users),
                                                            ignore_unverified_devices=True))
        client.olm.outbound_group_sessions[room].shared = True
        ask = await alice.command(room, "!circle")
        await bot.processed(ask)  # seen, and kept: it cannot be read yet
        assert ask in bot.adapter._undecrypted
        for _, to_device in held:
            url = f"{client.homeserver}/_matrix/client/v3/sendToDevice/m.room.encrypted/{uuid4()}"
            async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                        session.put(url, json=to_device,
                                    headers={"Authorization": f"Bearer {client.access_token}"}) as r):
                assert r.status == 200, await r.text()
        answer = await alice.wait_for(room, from_bot(bot_id, "m.room.message", reply_to=ask))
        assert "Test study circle" in answer["content"]["body"]
        assert ask not in bot.adapter._undecrypted


# cross-signing ----------------------------------------------------------------------------------------
async def keys_seen_by(account: MatrixAccount, user_id: str) -> dict[str, Any]:
    """``/keys/query`` for `user_id`, as another member's client asks it."""
    url = f"{account.user.homeserver}/_matrix/client/v3/keys/query"
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                session.post(url, json={"device_keys": {user_id: []}},
                             headers={"Authorization": f"Bearer {account.user.access_token}"}) as r):
        body = await r.json()
        assert r.status == 200, body
        return dict(body)


def verify_key_of(key_object: dict[str, Any]) -> Any:
    (key_id, public), = key_object["keys"].items()
    return decode_verify_key_base64("ed25519", key_id.split(":", 1)[1], public)


def assert_cross_signed(query: dict[str, Any], user_id: str, device_id: str) -> str:
    """The device is signed by the self-signing key, which is signed by the master key; the master key."""
    master, ssk = query["master_keys"][user_id], query["self_signing_keys"][user_id]
    device = query["device_keys"][user_id][device_id]
    verify_signed_json(dict(ssk), user_id, verify_key_of(master))  # raises if not
    verify_signed_json(dict(device), user_id, verify_key_of(ssk))
    own = device["keys"][f"ed25519:{device_id}"]
    verify_signed_json(dict(device), user_id, decode_verify_key_base64("ed25519", device_id, own))
    assert master["usage"] == ["master"] and ssk["usage"] == ["self_signing"]
    return str(next(iter(master["keys"].values())))


@pytest.mark.timeout(60)
async def test_cross_signing_is_set_up_once_and_a_new_host_signs_its_new_device(
    matrix_user: MakeUser, tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    olga, bot_account = await matrix_user("olga"), await matrix_user("bot")
    bot_id = bot_account.user_id
    settings = matrix_settings(tmp_path, bot_account, [])
    assert settings.matrix is not None
    app = App(settings, store, load_collection(settings.readings), clock)

    def adapter(token: str, store_path: Path | None = None, recovery: str | None = None) -> MatrixAdapter:
        m = settings.matrix
        assert m is not None
        if store_path is not None:
            m = m.model_copy(update={"store_path": store_path})
        return MatrixAdapter(m, AppLookups(app, "matrix"), {}, access_token=token, recovery_key=recovery,
                             backoff=(0.05, 0.5))

    async def no_password() -> str | None:
        raise AssertionError("the password was asked, but nothing needed it")

    said: list[str] = []
    keys = await setup_cross_signing(adapter(bot_account.user.access_token), no_password, said.append)
    assert any(keys.recovery_key in line for line in said), said
    master = assert_cross_signed(await keys_seen_by(olga, bot_id), bot_id, bot_account.user.device_id)
    assert master == keys.public("master")

    said.clear()  # once: a second run uploads nothing and asks for nothing
    await setup_cross_signing(adapter(bot_account.user.access_token), no_password, said.append)
    assert "already" in said[0] and not any(keys.recovery_key in line for line in said), said
    assert assert_cross_signed(await keys_seen_by(olga, bot_id), bot_id, bot_account.user.device_id) == master

    # a move to a new host: a new device, an empty crypto store, the recovery key from the environment
    login = AsyncClient(bot_account.user.homeserver, bot_id)
    resp = await login.login(bot_account.user.password, device_name="moved")
    await login.close()
    assert isinstance(resp, LoginResponse) and resp.device_id != bot_account.user.device_id
    moved = adapter(resp.access_token, tmp_path / "new-host", keys.recovery_key)
    task = asyncio.create_task(moved.serve(lambda event: asyncio.sleep(0)))
    try:
        await asyncio.wait_for(moved.ready.wait(), WAIT)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert assert_cross_signed(await keys_seen_by(olga, bot_id), bot_id, resp.device_id) == master

    # keys made anew replace the old ones only with the account's password (user-interactive auth)
    (tmp_path / "circlebot-matrix-store" / "cross-signing.json").unlink()
    asked: list[int] = []

    async def password() -> str | None:
        asked.append(1)
        return bot_account.user.password

    new_keys = await setup_cross_signing(adapter(bot_account.user.access_token), password, said.append)
    assert asked == [1] and new_keys.public("master") != master
    again = assert_cross_signed(await keys_seen_by(olga, bot_id), bot_id, bot_account.user.device_id)
    assert again == new_keys.public("master")


@pytest.mark.timeout(60)
def test_circlebot_matrix_setup_uploads_once_and_asks_the_password_only_to_replace_keys(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    bot = asyncio.run(synapse.register_user("bot"))
    (tmp_path / "circlebot.toml").write_text(
        f'database = "{tmp_path / "bot.sqlite3"}"\nreadings = "{REPO / "readings"}"\n'
        f'[matrix]\nhomeserver = "{bot.homeserver}"\nuser_id = "{bot.user_id}"\n'
        f'access_token_env = "CIRCLEBOT_TEST_TOKEN"\ndevice_id = "{bot.device_id}"\n'
        '[[circles]]\nslug = "study"\nname = "Study"\n'
        '[circles.meets]\nweekdays = ["thursday"]\ntime = "19:00"\nduration = "90m"\n', encoding="utf-8")

    def setup() -> pexpect.spawn:
        env = dict(os.environ, CIRCLEBOT_TEST_TOKEN=bot.access_token, PYTHONUNBUFFERED="1")
        return pexpect.spawn(sys.executable, ["-m", "circlebot", "matrix", "setup", "--config",
                                              str(tmp_path / "circlebot.toml")], env=env, cwd=str(tmp_path),
                             encoding="utf-8", timeout=20)

    first = setup()
    first.expect("Uploaded the cross-signing keys")
    first.expect(f"Signed device {bot.device_id}")
    first.expect(r"Recovery key .*\n\s+(\S+)")
    first.expect(pexpect.EOF)
    first.close()
    assert first.exitstatus == 0
    assert bot.access_token not in (first.before or "")

    (tmp_path / "bot-matrix-store" / "cross-signing.json").unlink()  # the keys are lost: new ones replace them
    second = setup()
    second.expect("replacing them")
    second.expect("Password of ")
    second.sendline(bot.password)
    second.expect("Uploaded the cross-signing keys")
    second.expect(pexpect.EOF)
    second.close()
    assert second.exitstatus == 0


@pytest.mark.timeout(60)
async def test_encrypted_votes_are_read_back_at_a_restart_and_those_cast_while_down_count(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, olga, alice):
        bot_id = bot.bot.user_id
        opened = await olga.command(room, '!poll "Best day?" "Mon" "Tue"')
        await bot.processed(opened)
        poll = number_after("poll", (await olga.wait_for(room, from_bot(bot_id, reply_to=opened)))["content"]["body"])
        start = await alice.wait_for(room, from_bot(bot_id, "org.matrix.msc3381.poll.start"))

        def response(answer: str) -> dict[str, Any]:
            return {"m.relates_to": {"rel_type": "m.reference", "event_id": start["event_id"]},
                    "org.matrix.msc3381.poll.response": {"answers": [answer]}}

        await bot.processed(await alice.send(room, "org.matrix.msc3381.poll.response", response("a1")))
        await bot.stop()
        await olga.send(room, "org.matrix.msc3381.poll.response", response("a2"))  # while the bot is down
        await bot.restart()  # the start reads back every open poll's (encrypted) relations
        await bot.processed(await olga.command(room, "!circle"))
        assert sorted(answers for _, answers in await store.ballots(poll)) == [(0,), (1,)]


@pytest.mark.timeout(60)
async def test_a_direct_chat_a_member_opens_encrypted_is_answered_encrypted_and_marked_direct(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, _room, _olga, alice):
        bot_id = bot.bot.user_id
        resp = await alice.account.client.room_create(
            is_direct=True, invite=[bot_id], preset=RoomPreset.trusted_private_chat,
            initial_state=[{"type": "m.room.encryption", "state_key": "",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        assert isinstance(resp, RoomCreateResponse)
        dm = resp.room_id
        await wait_for_event(alice.account.client, dm, lambda e: e.get("type") == "m.room.member"
                             and e.get("state_key") == bot_id and e["content"].get("membership") == "join",
                             timeout=WAIT, interval=0.02)
        await alice.sync()
        ask = await alice.command(dm, "!attendance me")
        await bot.processed(ask)
        answer = await alice.wait_for(dm, from_bot(bot_id, "m.room.message", reply_to=ask))
        assert answer["content"]["body"]
        assert (await raw_event(alice.account, dm, answer["event_id"]))["type"] == "m.room.encrypted"
        # the bot's own clients list it with its direct chats, under alice, as a room the bot opened would be
        assert await direct_rooms_of(bot.bot) == {alice.user_id: [dm]}

        # one joined by an older circlebot (not in m.direct) is recorded at the next start
        await bot.stop()
        await put_direct_rooms(bot.bot, {})
        await bot.restart()
        assert await direct_rooms_of(bot.bot) == {alice.user_id: [dm]}


# the direct rooms the bot opens, and files ---------------------------------------------------------------
async def room_state(account: MatrixAccount, room_id: str) -> dict[tuple[str, str], Source]:
    """The room's current state as the server holds it, by (type, state key)."""
    url = f"{account.user.homeserver}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/state"
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                session.get(url, headers={"Authorization": f"Bearer {account.user.access_token}"}) as r):
        body = await r.json()
        assert r.status == 200, body
        return {(e["type"], e["state_key"]): e for e in body}


async def direct_rooms_of(account: MatrixAccount) -> dict[str, list[str]]:
    """The account's ``m.direct`` account data: which rooms it counts as direct chats, with whom."""
    url = (f"{account.user.homeserver}/_matrix/client/v3/user/{quote(account.user_id, safe='')}"
           "/account_data/m.direct")
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                session.get(url, headers={"Authorization": f"Bearer {account.user.access_token}"}) as r):
        body = await r.json()
        if r.status == 404:
            return {}
        assert r.status == 200, body
        return dict(body)


async def put_direct_rooms(account: MatrixAccount, rooms: dict[str, list[str]]) -> None:
    """Sets the account's ``m.direct`` account data, as one of its clients would."""
    url = (f"{account.user.homeserver}/_matrix/client/v3/user/{quote(account.user_id, safe='')}"
           "/account_data/m.direct")
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
                session.put(url, json=rooms, headers={"Authorization": f"Bearer {account.user.access_token}"}) as r):
        assert r.status == 200, await r.text()


def private_answer_to(event_id: str) -> Callable[[Source], bool]:
    return lambda e: (e.get("content") or {}).get(REPLY_TO_KEY, {}).get("event_id") == event_id


@pytest.mark.timeout(90)
async def test_a_direct_room_the_bot_opens_is_encrypted_and_what_it_sent_before_the_join_is_readable(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, _olga, alice):
        bot_account = bot.bot
        bot_id = bot_account.user_id
        wrong = await alice.command(room, "!rsvp perhaps")  # a private answer: the bot opens a direct room
        await bot.processed(wrong)
        dm = json.loads(await store.get_state("matrix", "dm_rooms") or "{}")[alice.user_id]

        # encrypted from its creation, marked direct on both sides, its history readable by whoever joins
        state = await room_state(bot_account, dm)
        assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
        assert state[("m.room.history_visibility", "")]["content"]["history_visibility"] in ("shared", "invited")
        invited = state[("m.room.member", alice.user_id)]["content"]
        assert invited["membership"] == "invite" and invited.get("is_direct") is True
        assert await direct_rooms_of(bot_account) == {alice.user_id: [dm]}

        # a restart while alice has not accepted the invitation yet, and another private answer
        await bot.restart()
        unknown = await alice.command(room, "!vote 99 1")
        await bot.processed(unknown)
        sent = [e for e in await messages(bot_account.client, dm) if e.get("sender") == bot_id
                and "state_key" not in e]
        assert [e["type"] for e in sent] == ["m.room.encrypted"] * 2, sent
        assert "Usage" not in str(sent) and "#99" not in str(sent)

        # alice accepts: her client reads both, sent while she was only invited, with the keys it was given
        await alice.account.client.join(dm)
        said = await said_privately(alice, dm, bot_id)
        assert "Usage:" in next(e for e in said if private_answer_to(wrong)(e))["content"]["body"]
        assert "no poll #99" in next(e for e in said if private_answer_to(unknown)(e))["content"]["body"].lower()

        # and what comes after she joined, too (the room key changes with the membership)
        again = await alice.command(room, "!rsvp perhaps")
        await bot.processed(again)
        assert "Usage:" in (await alice.wait_for(dm, private_answer_to(again)))["content"]["body"]
        assert await direct_rooms_of(bot_account) == {alice.user_id: [dm]}


@pytest.mark.timeout(90)
async def test_a_member_without_device_keys_reads_the_bots_direct_messages_and_a_device_with_keys_later_too(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    olga = await members("olga")
    # bob's client does no encryption: his account has a device, but no device keys on the homeserver
    bob = await matrix_user("bob")
    await bob.client.set_displayname("bob")
    bot_account = await matrix_user("bot")
    bot_id = bot_account.user_id
    room = await create_room(olga.account.client, invite=[bob.user_id], name="plain circle")
    await join(bob.client, room)
    settings = matrix_settings(tmp_path, bot_account, [room])
    bot = MatrixBot(App(settings, store, load_collection(settings.readings), clock), bot_account)
    bob_with_keys: Member | None = None
    await bot.start()
    try:
        await invite(olga.account.client, room, bot_id)
        await wait_for_event(olga.account.client, room, lambda e: e.get("type") == "m.room.member"
                             and e.get("state_key") == bot_id and e["content"].get("membership") == "join",
                             timeout=WAIT, interval=0.02)

        async def bot_said(dm: str) -> list[Source]:
            """What the bot sent into the direct room, as bob's plain client receives it."""
            return [e for e in await messages(bob.client, dm) if e.get("sender") == bot_id and "state_key" not in e]

        # a private answer: bob's direct room is opened in clear, so his client reads it
        wrong = await send_text(bob.client, room, "!rsvp perhaps")
        await bot.processed(wrong)
        dm = json.loads(await store.get_state("matrix", "dm_rooms") or "{}")[bob.user_id]
        state = await room_state(bot_account, dm)
        assert ("m.room.encryption", "") not in state
        assert state[("m.room.member", bob.user_id)]["content"].get("is_direct") is True
        await join(bob.client, dm)
        [first] = await bot_said(dm)
        assert first["type"] == "m.room.message" and "Usage:" in first["content"]["body"]

        # still no keys: the next one stays readable (the room is not switched to encryption under him)
        unknown = await send_text(bob.client, room, "!vote 99 1")
        await bot.processed(unknown)
        assert [e["type"] for e in await bot_said(dm)] == ["m.room.message"] * 2
        assert "no poll #99" in (await bot_said(dm))[-1]["content"]["body"].lower()
        assert ("m.room.encryption", "") not in await room_state(bot_account, dm)

        # bob's client starts encrypting (his device uploads keys): the next message is encrypted, for that device
        bob_with_keys = Member(bob, tmp_path / "bob-store")
        await bob_with_keys.client.keys_upload()
        again = await send_text(bob.client, room, "!rsvp perhaps")
        await bot.processed(again)
        state = await room_state(bot_account, dm)
        assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
        assert state[("m.room.encryption", "")]["sender"] == bot_id
        answer = await bob_with_keys.wait_for(dm, private_answer_to(again))
        assert "Usage:" in answer["content"]["body"]
        raw = await raw_event(bob, dm, answer["event_id"])
        assert raw["type"] == "m.room.encrypted" and "Usage" not in str(raw)
    finally:
        await bot.stop()
        if bob_with_keys is not None:
            await bob_with_keys.client.close()


@pytest.mark.timeout(90)
async def test_an_export_into_an_encrypted_room_uploads_ciphertext_the_member_decrypts_to_the_csv(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock,
    synapse: SynapseServer
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, olga, alice):
        bot_id = bot.bot.user_id
        now = datetime.now(UTC)
        clock.set(now)
        meeting = await store.add_meeting("study", now - timedelta(minutes=10), now + timedelta(minutes=80), SEED,
                                          None, now)
        await bot.processed(await alice.command(room, "!here"))
        assert [u.id for u, _ in await store.checkins(meeting.id)] == [alice.user_id]

        ask = await olga.command(room, "!attendance export")
        await bot.processed(ask)
        dm = await dm_with_bot(store, olga)
        [shown] = [e for e in await said_privately(olga, dm, bot_id) if e["content"].get("msgtype") == "m.file"]
        circle = bot.app.settings.circles[0]
        expected, rows = await record_csv(store, bot.app.readings, [(circle, bot.app.settings.zone_of(circle))],
                                          None, None, clock.now())
        assert rows == 1 and alice.user_id.encode() in expected

        # the server holds an m.room.encrypted event: neither the file's name nor where it is
        raw = await raw_event(olga.account, dm, shown["event_id"])
        content = shown["content"]
        assert raw["type"] == "m.room.encrypted" and "mxc://" not in str(raw) and content["body"] not in str(raw)
        # decrypted, an m.file whose `file` is the spec's EncryptedFile, in place of `url`
        assert content["body"].endswith(".csv") and content["info"]["mimetype"] == "text/csv"
        assert content["info"]["size"] == len(expected) and "url" not in content
        file = content["file"]
        assert file["url"].startswith("mxc://") and file["v"] == "v2"
        assert file["key"]["alg"] == "A256CTR" and file["key"]["kty"] == "oct" and file["key"]["ext"] is True
        assert {"encrypt", "decrypt"} <= set(file["key"]["key_ops"]) and file["key"]["k"]
        assert file["iv"] and file["hashes"]["sha256"]

        # the media repository has ciphertext only, under no name and no media type
        got = await olga.client.download(mxc=file["url"])
        assert isinstance(got, DownloadResponse) and isinstance(got.body, bytes)
        assert got.content_type == "application/octet-stream" and not got.filename
        assert len(got.body) == len(expected) and got.body != expected
        assert alice.user_id.encode() not in got.body and b"platform id" not in got.body
        stored = [p.read_bytes() for p in (synapse.base_dir / "media_store").rglob("*") if p.is_file()]
        assert stored and not [b for b in stored if alice.user_id.encode() in b]
        assert base64.b64encode(hashlib.sha256(got.body).digest()).decode().rstrip("=") == file["hashes"]["sha256"]

        # the member's client fetches it and decrypts it to the exact CSV
        assert decrypt_attachment(got.body, file["key"]["k"], file["hashes"]["sha256"], file["iv"]) == expected
        assert await olga.download(content) == expected


@pytest.mark.timeout(90)
async def test_a_plain_direct_room_the_bot_opened_before_is_switched_to_encryption(
    matrix_user: MakeUser, members: Callable[..., Any], tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    async with encrypted_circle(matrix_user, members, tmp_path, store, clock) as (bot, room, olga, _alice):
        bot_account = bot.bot
        bot_id = bot_account.user_id
        # olga's direct room as the bot opened them before they were encrypted, joined by her
        created = await bot_account.client.room_create(is_direct=True, invite=[olga.user_id],
                                                       preset=RoomPreset.trusted_private_chat)
        assert isinstance(created, RoomCreateResponse)
        old = str(created.room_id)
        await olga.account.client.join(old)
        await bot.stop()
        await store.set_state("matrix", "dm_rooms", json.dumps({olga.user_id: old}))
        await bot.restart()

        # the first thing sent there after the start is a file: the room is switched before it is uploaded
        ask = await olga.command(room, "!attendance export")
        await bot.processed(ask)
        assert json.loads(await store.get_state("matrix", "dm_rooms") or "{}") == {olga.user_id: old}  # the same
        state = await room_state(bot_account, old)
        assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
        assert state[("m.room.encryption", "")]["sender"] == bot_id
        sent = [e for e in await messages(bot_account.client, old) if e.get("sender") == bot_id
                and "state_key" not in e]
        assert [e["type"] for e in sent] == ["m.room.encrypted"] * 2 and "record" not in str(sent), sent
        said = await said_privately(olga, old, bot_id)
        assert " row" in next(e for e in said if private_answer_to(ask)(e))["content"]["body"]
        [file] = [e["content"] for e in said if e["content"].get("msgtype") == "m.file"]
        assert "url" not in file and file["file"]["url"].startswith("mxc://")
        assert (await olga.download(file)).startswith(codecs.BOM_UTF8 + b"circle,meeting")

"""The Matrix driver: the whole bot (core + MatrixAdapter + matrix-nio) against a real Synapse on loopback.

Users are real Matrix accounts with their own nio clients. They type commands into the circle's room, vote in
native polls by sending Element-format response events (alternating the unstable and the stable form), and
read the bot's answers from the room (or from their direct-message room with the bot, for private answers).

This module holds the driver and its fixtures for `test_scenarios_matrix.py` and `test_matrix.py`; its own
tests check the driver itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from circlebot.adapters.lookups import AppLookups
from circlebot.adapters.matrix import PRIVATE_MARK, REPLY_TO_KEY, MatrixAdapter, rooms_from_settings
from circlebot.app import App
from circlebot.config import Settings
from circlebot.readings import load_collection
from circlebot.store import Store
from conftest import circle_config, make_settings
from drivers import Answer, FakeClock
from matrix_member import Member
from synapse_harness import (
    MatrixAccount,
    SynapseServer,
    create_room,
    invite,
    join,
    messages,
    send_event,
    send_text,
    wait_for_event,
)

MakeUser = Callable[..., Awaitable[MatrixAccount]]
T = TypeVar("T")
TOKEN_ENV = "CIRCLEBOT_TEST_MATRIX_TOKEN"
WAIT = 15.0


def in_reply_to(event: dict[str, Any]) -> str | None:
    rel = (event.get("content") or {}).get("m.relates_to") or {}
    target = (rel.get("m.in_reply_to") or {}).get("event_id")
    return target if isinstance(target, str) else None


def matrix_settings(tmp_path: Path, bot: MatrixAccount, rooms: list[str], *, encryption: bool = True,
                    **circle: Any) -> Settings:
    """Settings for one circle living in `rooms`, organised by power level 50 (the default); the crypto store
    is the default one, beside the database in `tmp_path`."""
    circle.setdefault("organisers", {"console": []})
    return make_settings(
        tmp_path,
        circles=[circle_config(where={"console": False, "matrix_rooms": rooms}, **circle)],
        matrix={"homeserver": bot.user.homeserver, "user_id": bot.user_id, "access_token_env": TOKEN_ENV,
                "device_id": bot.user.device_id, "encryption": encryption},
    )


class MatrixBot:
    """circlebot's core with a Matrix adapter, run as a task; `restart` builds a fresh adapter on the same
    store, as a new process would."""

    def __init__(self, app: App, bot: MatrixAccount) -> None:
        self.app = app
        self.bot = bot
        self.adapter: MatrixAdapter = self._adapter()
        self.task: asyncio.Task[None] | None = None

    def _adapter(self) -> MatrixAdapter:
        s = self.app.settings
        assert s.matrix is not None
        adapter = MatrixAdapter(s.matrix, AppLookups(self.app, "matrix"), rooms_from_settings(s),
                                access_token=self.bot.user.access_token, sync_timeout_ms=10_000, backoff=(0.05, 0.5))
        self.app.add_adapter(adapter)
        return adapter

    async def start(self) -> None:
        self.task = asyncio.create_task(self.adapter.serve(self.app.dispatch), name="matrix-bot")
        await self.wait(self.adapter.ready.wait())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def restart(self) -> None:
        await self.stop()
        self.adapter = self._adapter()
        await self.start()

    async def wait(self, aw: Awaitable[T], timeout: float = WAIT) -> T:  # noqa: ASYNC109
        """Await `aw`, failing at once if the bot's task died instead of waiting for the timeout."""
        assert self.task is not None, "the bot is not running"
        job = asyncio.ensure_future(aw)
        done, _ = await asyncio.wait({job, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if job in done:
            return job.result()
        job.cancel()
        if self.task in done:
            self.task.result()
            raise AssertionError("the bot stopped")
        raise TimeoutError(f"not done within {timeout} s")

    async def processed(self, event_id: str) -> None:
        await self.wait(self.adapter.processed(event_id))


class MatrixDriver:
    """Drives the bot as Matrix users do (the Driver protocol of drivers.py)."""

    organiser = "olga"

    def __init__(self, make_user: MakeUser, bot: MatrixBot, room_id: str, olga: MatrixAccount,
                 clock: FakeClock) -> None:
        self.make_user = make_user
        self.bot = bot
        self.room_id = room_id
        self.clock = clock
        self.users: dict[str, MatrixAccount] = {self.organiser: olga}
        # Each user's encrypting client: the direct rooms the bot opens are encrypted, read as Element would.
        self.members: dict[str, Member] = {}
        settings = bot.app.settings.matrix
        assert settings is not None and settings.store_path is not None
        self._member_stores = settings.store_path.parent / "member-stores"
        self._dm_joined: set[tuple[str, str]] = set()
        self._posts: dict[str, str] = {}
        self._forms = itertools.cycle(("unstable", "stable"))
        self.synapse: SynapseServer | None = None  # set by tests that take the homeserver down (fail_directs)

    @property
    def app(self) -> App:
        return self.bot.app

    async def user(self, name: str) -> MatrixAccount:
        """A room member called `name`, registered and joined on first use."""
        account = self.users.get(name)
        if account is None:
            account = await self.make_user(name)
            await account.client.set_displayname(name)
            await invite(self.users[self.organiser].client, self.room_id, account.user_id)
            await join(account.client, self.room_id)
            self.users[name] = account
        if name not in self.members:  # its device keys uploaded before the bot may write to it
            member = self.members[name] = Member(account, self._member_stores / name)
            await member.client.keys_upload()
        return account

    async def close(self) -> None:
        """Close the users' encrypting clients (the fixture closes their plain ones)."""
        for member in self.members.values():
            with contextlib.suppress(Exception):
                await member.client.close()

    async def dm_events(self, user: str, room: str) -> list[dict[str, Any]]:
        """The user's direct room with the bot as their client shows it (decrypted, since it is encrypted)."""
        return await self.members[user].history(room, limit=60)

    async def command(self, user: str, text: str) -> str:
        """Send `!text` as `user` and wait until the bot has handled it; returns the command's event id."""
        account = await self.user(user)
        event_id = await send_text(account.client, self.room_id, self.bot.adapter.prefix + text)
        await self.bot.processed(event_id)
        return event_id

    async def say(self, user: str, text: str) -> Answer:
        event_id = await self.command(user, text)
        account = self.users[user]
        events = await messages(account.client, self.room_id, limit=60)
        self._record(events)
        bot = self.bot.bot.user_id
        answers = [e for e in events if e.get("sender") == bot and in_reply_to(e) == event_id]
        if answers:
            return Answer("\n\n".join(str(e["content"]["body"]) for e in answers), private=False,
                          files=await self._files(user, answers))
        marked = any(
            e.get("sender") == bot and e.get("type") == "m.reaction"
            and (e["content"].get("m.relates_to") or {}).get("event_id") == event_id
            and e["content"]["m.relates_to"].get("key") == PRIVATE_MARK
            for e in events
        )
        assert marked, f"no answer to {text!r} in the room and no sign of a private one"
        dm = await self.dm_room(user)
        private = [e for e in await self.dm_events(user, dm)
                   if (e.get("content") or {}).get(REPLY_TO_KEY, {}).get("event_id") == event_id]
        assert private, f"the private answer to {text!r} is not in the direct-message room"
        return Answer("\n\n".join(str(e["content"]["body"]) for e in private), private=True,
                      files=await self._files(user, private))

    async def _files(self, user: str, events: list[dict[str, Any]]) -> tuple[tuple[str, bytes], ...]:
        """The files of the `m.file` events among `events`, downloaded as the user's client does: from the
        authenticated media endpoint (Synapse serves new media only there), decrypted when encrypted."""
        contents = [e.get("content") or {} for e in events]
        return tuple([(str(c.get("filename") or c["body"]), await self.members[user].download(c))
                      for c in contents if c.get("msgtype") == "m.file"])

    async def dm_room(self, user: str) -> str:
        """The user's direct-message room with the bot, joined (accepting the bot's invitation) on first use."""
        account = self.users[user]
        raw = await self.app.store.get_state("matrix", "dm_rooms")
        room = json.loads(raw or "{}").get(account.user_id)
        assert room, f"the bot has no direct-message room with {user}"
        if (user, room) not in self._dm_joined:
            await join(account.client, room)
            self._dm_joined.add((user, room))
        return str(room)

    async def vote(self, user: str, poll_id: int, answers: list[int]) -> None:
        """Vote as Element does: a poll response event (unstable and stable forms in turn)."""
        event_id = await self.respond(user, poll_id, [f"a{n}" for n in answers], next(self._forms))
        await self.bot.processed(event_id)

    async def poll_event(self, poll_id: int) -> str:
        refs = [r for r in await self.app.store.poll_messages(poll_id) if r.channel.platform == "matrix"]
        assert refs, f"poll #{poll_id} has no Matrix poll"
        return refs[0].id

    async def respond(self, user: str, poll_id: int, ids: list[str], form: str = "unstable") -> str:
        """Send a poll response with raw answer ids; returns its event id (not waiting for the bot)."""
        account = await self.user(user)
        start = await self.poll_event(poll_id)
        rel = {"rel_type": "m.reference", "event_id": start}
        if form == "stable":
            return await send_event(account.client, self.room_id, "m.poll.response",
                                    {"m.relates_to": rel, "m.selections": ids})
        return await send_event(account.client, self.room_id, "org.matrix.msc3381.poll.response",
                                {"m.relates_to": rel, "org.matrix.msc3381.poll.response": {"answers": ids}})

    def _record(self, events: list[dict[str, Any]]) -> None:
        """Remember what the bot posted on its own (not answers): messages (in threads too), poll starts and
        ends."""
        for e in events:
            content = e.get("content") or {}
            in_thread = bool((content.get("m.relates_to") or {}).get("is_falling_back"))  # a reply only as fallback
            if e.get("sender") != self.bot.bot.user_id or (in_reply_to(e) and not in_thread):
                continue
            text = content.get("body") or content.get("org.matrix.msc1767.text")
            if isinstance(text, str):
                self._posts[str(e["event_id"])] = text

    def posts(self) -> list[str]:
        return list(self._posts.values())

    async def directs(self, user: str) -> list[str]:
        """The bot's own messages in the user's direct room (not private answers to commands)."""
        account = await self.user(user)
        raw = await self.app.store.get_state("matrix", "dm_rooms")
        room = json.loads(raw or "{}").get(account.user_id)
        if room is None:
            return []
        if (user, room) not in self._dm_joined:
            await join(account.client, room)
            self._dm_joined.add((user, room))
        return [str(e["content"]["body"]) for e in await self.dm_events(user, room)
                if e.get("sender") == self.bot.bot.user_id and e.get("type") == "m.room.message"
                and REPLY_TO_KEY not in (e.get("content") or {})]

    async def refuse_directs(self, user: str) -> None:
        """The user leaves their direct room with the bot."""
        room = await self.dm_room(user)
        await self.users[user].client.room_leave(room)

    async def fail_directs(self, user: str) -> None:
        """The homeserver goes down: every send fails (nio cannot connect), direct messages to `user` too."""
        assert self.synapse is not None, "set driver.synapse to take the homeserver down"
        await asyncio.to_thread(self.synapse.stop)

    async def mend_directs(self, user: str) -> None:
        """The homeserver is back."""
        assert self.synapse is not None
        await asyncio.to_thread(self.synapse.start)

    async def pinged(self, post: str) -> set[str]:
        """Whom the post notified: an `m.text` event's `m.mentions` (a notice notifies nobody)."""
        account = self.users[self.organiser]
        found = [e for e in await messages(account.client, self.room_id, limit=100)
                 if e.get("sender") == self.bot.bot.user_id and (e.get("content") or {}).get("body") == post]
        assert found, f"the bot posted no {post!r}"
        content = found[0]["content"]
        if content.get("msgtype") != "m.text":
            return set()
        names = {a.user_id: name for name, a in self.users.items()}
        return {names.get(u, u) for u in (content.get("m.mentions") or {}).get("user_ids", [])}


@pytest_asyncio.fixture
async def matrix_driver(
    matrix_user: MakeUser, tmp_path: Path, store: Store, clock: FakeClock, synapse: SynapseServer
) -> AsyncIterator[MatrixDriver]:
    """A circle in a fresh room (version 12, created by olga, the organiser), with a running bot."""
    olga = await matrix_user("olga")
    await olga.client.set_displayname("olga")
    bot_account = await matrix_user("bot")
    room = await create_room(olga.client, name="study circle")
    settings = matrix_settings(tmp_path, bot_account, [room])
    app = App(settings, store, load_collection(settings.readings), clock)
    bot = MatrixBot(app, bot_account)
    await bot.start()
    driver = MatrixDriver(matrix_user, bot, room, olga, clock)
    try:
        await invite(olga.client, room, bot_account.user_id)
        await wait_for_event(olga.client, room, lambda e: e.get("type") == "m.room.member"
                             and e.get("state_key") == bot_account.user_id
                             and e["content"].get("membership") == "join", timeout=WAIT, interval=0.02)
        yield driver
    finally:
        await bot.stop()
        await driver.close()


@pytest.mark.timeout(30)
async def test_the_driver_reads_public_and_private_answers(matrix_driver: MatrixDriver) -> None:
    public = await matrix_driver.say("alice", "circle")
    assert "Test study circle" in public and not public.private
    private = await matrix_driver.say("alice", "rsvp perhaps")
    assert private.private and "Usage:" in private

"""Command-to-answer latency through a real Synapse: circlebot's Matrix adapter beside a bare matrix-nio echo bot.

Run on demand: ``.venv/bin/python bench/matrix_latency.py [--commands 200]``. It starts its own Synapse on
loopback (tests/synapse_harness.py), one room per bot, and a user who sends a command, then waits until its own
sync shows the answer (a reply to the command). The two bots are measured alternately, the same way, in the
same run; the target is circlebot's p50 and p95 within 1.2x of the echo bot's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from nio import AsyncClient, RoomSendResponse, SyncResponse  # noqa: E402

from circlebot.adapters.lookups import AppLookups  # noqa: E402
from circlebot.adapters.matrix import SYNC_FILTER, MatrixAdapter, client_config, rooms_from_settings  # noqa: E402
from circlebot.app import App  # noqa: E402
from circlebot.config import validate  # noqa: E402
from circlebot.readings import load_collection  # noqa: E402
from circlebot.store import Database, Store  # noqa: E402
from synapse_harness import MatrixUser, SynapseServer, client_for, create_room, join  # noqa: E402


def _reply_target(src: dict[str, Any]) -> str | None:
    rel = (src.get("content") or {}).get("m.relates_to") or {}
    target = (rel.get("m.in_reply_to") or {}).get("event_id")
    return target if isinstance(target, str) else None


async def echo_bot(user: MatrixUser, ready: asyncio.Event) -> None:
    """The baseline: a bare nio bot that answers every `!` message with a notice replying to it."""
    client = AsyncClient(user.homeserver, user.user_id, device_id=user.device_id, config=client_config())
    client.restore_login(user.user_id, user.device_id, user.access_token)
    try:
        token: str | None = None
        while True:
            resp = await client.sync(timeout=30_000 if token else 0, sync_filter=SYNC_FILTER, since=token)
            if not isinstance(resp, SyncResponse):
                continue
            for room_id in resp.rooms.invite:
                await client.join(room_id)
            if token is not None:
                for room_id, info in resp.rooms.join.items():
                    for ev in info.timeline.events:
                        src = ev.source
                        body = (src.get("content") or {}).get("body", "")
                        if src.get("sender") != user.user_id and str(body).startswith("!"):
                            await client.room_send(room_id, "m.room.message", {
                                "msgtype": "m.notice", "body": f"echo: {body}",
                                "m.relates_to": {"m.in_reply_to": {"event_id": src["event_id"]}}})
            token = resp.next_batch
            ready.set()
    finally:
        await client.close()


class Sender:
    """A user who sends commands and notices, through its own long-polling sync, when the answer arrives."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.early: dict[str, float] = {}

    async def run(self) -> None:
        token: str | None = None
        while True:
            resp = await self.client.sync(timeout=30_000 if token else 0, sync_filter=SYNC_FILTER, since=token)
            now = time.perf_counter()
            if not isinstance(resp, SyncResponse):
                continue
            for info in resp.rooms.join.values():
                for ev in info.timeline.events:
                    target = _reply_target(ev.source)
                    if target is None:
                        continue
                    fut = self.waiting.pop(target, None)
                    if fut is not None and not fut.done():
                        fut.set_result(now)
                    else:
                        self.early[target] = now
            token = resp.next_batch

    async def ask(self, room_id: str, text: str) -> float:
        """Seconds from sending `text` until its answer showed up in the sender's sync."""
        start = time.perf_counter()
        resp = await self.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
        assert isinstance(resp, RoomSendResponse), resp
        if resp.event_id in self.early:
            return self.early.pop(resp.event_id) - start
        fut = self.waiting[resp.event_id] = asyncio.get_running_loop().create_future()
        return await asyncio.wait_for(fut, 15) - start


def _summary(name: str, xs: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(xs, n=100)
    p50, p95 = statistics.median(xs), qs[94]
    print(f"{name:>10}: p50 {p50 * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms  mean {statistics.mean(xs) * 1000:6.1f} ms"
          f"  (n={len(xs)})")
    return p50, p95


async def bench(server: SynapseServer, n: int, workdir: Path) -> None:
    alice = await server.register_user("alice")
    circle_bot = await server.register_user("circlebot")
    echo = await server.register_user("echo")
    sender_client = await client_for(alice)
    room = await create_room(sender_client, invite=[circle_bot.user_id], name="circle")
    echo_room = await create_room(sender_client, invite=[echo.user_id], name="echo")
    circle_client = await client_for(circle_bot)
    await join(circle_client, room)
    await circle_client.close()

    settings = validate({
        "database": str(workdir / "circlebot.sqlite3"), "readings": str(ROOT / "readings"),
        "circles": [{"slug": "bench", "name": "Bench circle", "timezone": "Europe/London",
                     "meets": {"weekdays": ["thursday"], "time": "19:00"},
                     "where": {"console": False, "matrix_rooms": [room]}}],
        "matrix": {"homeserver": server.url, "user_id": circle_bot.user_id, "access_token_env": "UNUSED",
                   "device_id": circle_bot.device_id},
    }, workdir / "circlebot.toml")
    db = await Database.open(settings.database)
    store = Store(db)
    app = App(settings, store, load_collection(settings.readings))
    assert settings.matrix is not None
    adapter = MatrixAdapter(settings.matrix, AppLookups(app, "matrix"), rooms_from_settings(settings),
                            access_token=circle_bot.access_token)
    app.add_adapter(adapter)
    store.batcher.start()
    echo_ready = asyncio.Event()
    sender = Sender(sender_client)
    tasks = [asyncio.create_task(adapter.serve(app.dispatch), name="circlebot"),
             asyncio.create_task(echo_bot(echo, echo_ready), name="echo-bot"),
             asyncio.create_task(sender.run(), name="sender")]
    try:
        await asyncio.wait_for(adapter.ready.wait(), 30)
        await asyncio.wait_for(echo_ready.wait(), 30)
        for _ in range(200):  # the echo bot joins on invitation
            members = await sender_client.joined_members(echo_room)
            if any(m.user_id == echo.user_id for m in getattr(members, "members", [])):
                break
            await asyncio.sleep(0.05)
        for _ in range(10):  # warm up both (connections, caches)
            await sender.ask(room, "!circle")
            await sender.ask(echo_room, "!circle")
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(n):
            ours.append(await sender.ask(room, "!circle"))
            theirs.append(await sender.ask(echo_room, "!circle"))
        print(f"Command-to-answer latency through Synapse ({n} commands each, alternating):")
        c50, c95 = _summary("circlebot", ours)
        e50, e95 = _summary("echo bot", theirs)
        print(f"     ratio: p50 {c50 / e50:.2f}x  p95 {c95 / e95:.2f}x  (target: within 1.2x)")
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await sender_client.close()
        await store.batcher.stop()
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="circlebot-bench-") as tmp, SynapseServer(Path(tmp) / "synapse") as hs:
        print(f"Synapse started in {hs.last_start_seconds:.2f} s at {hs.url}")
        asyncio.run(bench(hs, args.commands, Path(tmp)))


if __name__ == "__main__":
    main()

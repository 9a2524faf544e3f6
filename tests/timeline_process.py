"""A bot process for the restart tests: opens the database, runs the timeline at a given time, prints every
post it sends as a JSON line, and exits. With --hang-on TEXT, sending a post containing TEXT prints
"SENDING" and hangs, so the test can kill the process between claiming the post and sending it.

With --matrix ROOM the bot runs on the real Matrix adapter (homeserver, user and device from the
CIRCLEBOT_TEST_MATRIX_* variables) in that room; --hang-after-send TEXT lets the homeserver take the post
containing TEXT, then prints "SENT" and hangs before its reactions and before the bot records it, so the test
can kill the process between sending and marking.

    python tests/timeline_process.py DATABASE NOW_ISO [--hang-on TEXT] [--matrix ROOM [--hang-after-send TEXT]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from circlebot.adapters.lookups import AppLookups
from circlebot.adapters.matrix import MatrixAdapter, rooms_from_settings
from circlebot.app import App
from circlebot.config import Settings
from circlebot.core.domain import ChannelRef, MessageRef, Post
from circlebot.core.timeline import Timeline
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from conftest import circle_config, make_settings
from drivers import FakeClock, RecordingAdapter


class PrintingAdapter(RecordingAdapter):
    hang_on: str | None = None

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        if self.hang_on and self.hang_on in post.text:
            print("SENDING", flush=True)
            await asyncio.Event().wait()
        ref = await super().send(where, post, key=key)
        print(json.dumps({"text": self.render(post)}), flush=True)
        return ref


class HangingMatrixAdapter(MatrixAdapter):
    """The real Matrix adapter; for a post containing `hang_after_send`, hangs once Synapse has the message."""

    hang_after_send: str | None = None
    _hang = False

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        self._hang = bool(self.hang_after_send and self.hang_after_send in str(post.text))
        ref = await super().send(where, post, key=key)
        print(json.dumps({"text": str(post.text), "event_id": ref.id}), flush=True)
        return ref

    async def _react(self, room_id: str, event_id: str, key: str, txn: str | None = None) -> str:
        if self._hang:
            print("SENT", flush=True)
            await asyncio.Event().wait()
        return await super()._react(room_id, event_id, key, txn)


def settings_for(database: Path, matrix_room: str | None) -> Settings:
    if matrix_room is None:
        return make_settings(database.parent, database=str(database), circles=[circle_config(syllabus=[])])
    return make_settings(
        database.parent, database=str(database),
        circles=[circle_config(syllabus=[], where={"console": False, "matrix_rooms": [matrix_room]},
                               organisers={"console": []})],
        matrix={"homeserver": os.environ["CIRCLEBOT_TEST_MATRIX_HOMESERVER"],
                "user_id": os.environ["CIRCLEBOT_TEST_MATRIX_USER"], "access_token_env": "CIRCLEBOT_TEST_MATRIX_TOKEN",
                "device_id": os.environ["CIRCLEBOT_TEST_MATRIX_DEVICE"]},
    )


async def main(database: Path, now: datetime, hang_on: str | None, matrix_room: str | None,
               hang_after_send: str | None) -> None:
    settings = settings_for(database, matrix_room)
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), FakeClock(now))
    task: asyncio.Task[None] | None = None
    if settings.matrix is None:
        adapter = PrintingAdapter(settings.zone_of(settings.circles[0]))
        adapter.hang_on = hang_on
        app.add_adapter(adapter)
    else:
        matrix = HangingMatrixAdapter(settings.matrix, AppLookups(app, "matrix"), rooms_from_settings(settings),
                                      access_token=os.environ["CIRCLEBOT_TEST_MATRIX_TOKEN"], sync_timeout_ms=1000,
                                      backoff=(0.05, 0.5))
        matrix.hang_after_send = hang_after_send
        app.add_adapter(matrix)
        task = asyncio.create_task(matrix.serve(app.dispatch))
        await asyncio.wait_for(matrix.ready.wait(), 20)  # the first sync is handled: reactions made while down
    await Timeline(app).start()
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await store.batcher.stop()
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("database", type=Path)
    parser.add_argument("now", type=datetime.fromisoformat)
    parser.add_argument("--hang-on")
    parser.add_argument("--matrix")
    parser.add_argument("--hang-after-send")
    args = parser.parse_args()
    asyncio.run(main(args.database, args.now, args.hang_on, args.matrix, args.hang_after_send))

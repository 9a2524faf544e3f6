"""A bot process for the restart tests: opens the database, runs the timeline at a given time, prints every
post it sends as a JSON line, and exits. With --hang-on TEXT, sending a post containing TEXT prints
"SENDING" and hangs, so the test can kill the process between claiming the post and sending it.

    python tests/timeline_process.py DATABASE NOW_ISO [--hang-on TEXT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from circlebot.app import App
from circlebot.domain import ChannelRef, MessageRef, Post
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from circlebot.timeline import Timeline
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


async def main(database: Path, now: datetime, hang_on: str | None) -> None:
    settings = make_settings(database.parent, database=str(database), circles=[circle_config(syllabus=[])])
    db = await Database.open(settings.database)
    store = Store(db)
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), FakeClock(now))
    adapter = PrintingAdapter(settings.zone_of(settings.circles[0]))
    adapter.hang_on = hang_on
    app.add_adapter(adapter)
    await Timeline(app).start()
    await store.batcher.stop()
    await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("database", type=Path)
    parser.add_argument("now", type=datetime.fromisoformat)
    parser.add_argument("--hang-on")
    args = parser.parse_args()
    asyncio.run(main(args.database, args.now, args.hang_on))

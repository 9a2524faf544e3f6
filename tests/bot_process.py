"""`circlebot run` with the bot's clock held at one time, for tests that run several real bot processes.

    python tests/bot_process.py NOW_ISO run --config FILE [...]

Everything after NOW_ISO is `circlebot`'s own command line; only the time the bot reads is fixed (its leases
and the scheduler's waits stay on the wall clock), and shards identify without Discord's 5 s pause.
"""

from __future__ import annotations

import sys
from datetime import datetime

from circlebot import cli
from circlebot.adapters.discord import DiscordAdapter
from circlebot.core import clock

if __name__ == "__main__":
    held = datetime.fromisoformat(sys.argv[1])
    clock.SystemClock.now = lambda self: held  # type: ignore[method-assign]
    DiscordAdapter.reidentify_pause = 0.0  # the fake Discord needs no 5 s between two shards' IDENTIFYs
    sys.exit(cli.main(sys.argv[2:]))

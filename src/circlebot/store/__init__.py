"""SQLite storage: the connection and its transactions (`db`), ordered migrations, and queries per table group."""

from __future__ import annotations

from circlebot.store.db import Database, StoreError
from circlebot.store.queries import Meeting, PollRow, Store

__all__ = ["Database", "Meeting", "PollRow", "Store", "StoreError"]

"""SQLite storage: the connection and its transactions (`db`), ordered migrations, and queries per table group."""

from __future__ import annotations

from circlebot.store.db import Database, StoreError, WriteRejected
from circlebot.store.queries import AdapterState, Delivery, Meeting, PollRow, PostClaim, Store

__all__ = [
    "AdapterState", "Database", "Delivery", "Meeting", "PollRow", "PostClaim", "Store", "StoreError", "WriteRejected",
]

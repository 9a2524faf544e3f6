"""Storage on SQLite or PostgreSQL: the database and its transactions (`db`, `postgresql`), ordered migrations,
and queries per table group."""

from __future__ import annotations

from circlebot.store import postgresql as _postgresql  # noqa: F401  (Database.open then takes postgresql:// URLs)
from circlebot.store.db import Connection, Database, Row, StoreError, WriteRejected
from circlebot.store.queries import (
    AdapterState,
    Delivery,
    Meeting,
    PollClosed,
    PollRow,
    PostClaim,
    Store,
    refused_as_closed,
)

__all__ = [
    "AdapterState", "Connection", "Database", "Delivery", "Meeting", "PollClosed", "PollRow", "PostClaim", "Row",
    "Store", "StoreError", "WriteRejected", "refused_as_closed",
]

"""Talking to the homeserver: nio's client settings, its error values as exceptions, and reading raw events'
common fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from nio import AsyncClientConfig

_T = TypeVar("_T")

PLATFORM = "matrix"
#: The room encryption Matrix clients use (Megolm): the bot encrypts the direct rooms it opens with it.
MEGOLM = "m.megolm.v1.aes-sha2"


class MatrixError(RuntimeError):
    """A Matrix request failed: nio's error value, turned into an exception at the adapter's edge."""


class FatalMatrixError(MatrixError):
    """A failure that retrying cannot fix (a rejected access token): the adapter stops."""


def _check(resp: object, ok: type[_T], what: str) -> _T:
    if isinstance(resp, ok):
        return resp
    status = getattr(resp, "status_code", None)
    message = getattr(resp, "message", None)
    raise MatrixError(f"{what} failed: {status or type(resp).__name__} {message or ''}".rstrip())


def client_config(encryption: bool = False) -> AsyncClientConfig:
    """nio's defaults retry a dead connection forever and sleep on every 429. circlebot's own loops retry
    with backoff during an outage, so a single request must give up after a few quick tries. With
    `encryption`, nio keeps the device's keys in its SQLite crypto store (see `crypto`)."""
    return AsyncClientConfig(
        max_limit_exceeded=3,  # honour the server's retry_after three times, then report the error
        max_timeouts=2,  # two quick retries replace a pooled connection that died with a server restart
        backoff_factor=0.2,
        max_timeout_retry_wait_time=2,
        request_timeout=30,
        store_sync_tokens=False,
        encryption_enabled=encryption,
    )


def _ts(ms: object) -> datetime:
    """An event's ``origin_server_ts`` (milliseconds) as a time; one that is not a usable number (a server's
    mistake, or a forged event) is taken as now."""
    if isinstance(ms, int | float) and not isinstance(ms, bool):
        try:
            return datetime.fromtimestamp(ms / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _source(event: Any) -> dict[str, Any]:
    src = getattr(event, "source", None)
    return src if isinstance(src, dict) else {}


def _q(part: str) -> str:
    return quote(part, safe="")


"""The record's scenarios (record_scenarios.ALL) through the core's test adapter, on SQLite and on
PostgreSQL, fake clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import record_scenarios
from drivers import CoreDriver
from pg_harness import BOTH_DATABASES


@BOTH_DATABASES
@pytest.mark.parametrize("scenario", record_scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(core: CoreDriver, scenario: Callable[[CoreDriver], Awaitable[None]]) -> None:
    await scenario(core)

"""The record's scenarios (record_scenarios.ALL) through the Matrix adapter against a real Synapse on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

import record_scenarios
from test_matrix_driver import MatrixDriver, matrix_driver

__all__ = ["matrix_driver"]  # the fixture, imported so that pytest finds it here


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", record_scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(matrix_driver: MatrixDriver, scenario: Callable[[MatrixDriver], Awaitable[None]]) -> None:
    await scenario(matrix_driver)

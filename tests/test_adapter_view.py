"""Every adapter gets the same narrow view of the bot (`core.adapter.Lookups`: its own state and a few look-ups)
and `dispatch`: no adapter module reaches the store, the router or the app, except `adapters/lookups.py`, which
makes that view, and `adapters/build.py`, which hands it to each adapter."""

from __future__ import annotations

from test_layering import _graph

BRIDGES = ("circlebot.adapters.lookups", "circlebot.adapters.build")
WIDE = ("circlebot.store", "circlebot.app", "circlebot.core.router", "circlebot.core.context", "circlebot.features")


def test_adapters_reach_the_bot_only_through_their_view() -> None:
    graph = _graph()
    adapters = [m for m in graph if m.startswith("circlebot.adapters.") and m not in BRIDGES]
    assert "circlebot.adapters.matrix.sync" in adapters and "circlebot.adapters.discord" in adapters
    wide = {m: sorted(d for d in graph[m] if d.startswith(WIDE)) for m in adapters}
    assert not {m: d for m, d in wide.items() if d}, wide

"""Slash-command-to-response latency through the loopback fake Discord: circlebot beside a bare discord.py bot.

Run on demand: ``.venv/bin/python bench/discord_latency.py [N]`` (default 500 commands each). Both bots answer
``/circle`` in a guild channel; latency is from the fake dispatching INTERACTION_CREATE to it receiving the
interaction callback. The bare bot answers with a fixed text from a discord.py CommandTree; circlebot runs the
whole path (adapter, core routing, permission check, SQLite read, reply). Target: circlebot p50/p95 within 1.2x.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import discord  # noqa: E402
from discord import app_commands  # noqa: E402

from circlebot.adapters.discord import DiscordAdapter  # noqa: E402
from circlebot.adapters.lookups import AppLookups  # noqa: E402
from circlebot.app import App  # noqa: E402
from circlebot.readings import load_collection  # noqa: E402
from circlebot.store import Database, Store  # noqa: E402
from discord_driver import discord_settings  # noqa: E402
from fakediscord import FakeChannel, FakeDiscord, FakeMember, make_client, start_client, stop_client  # noqa: E402

WARMUP = 50
ROUNDS = 3
CORE_MS: list[float] = []  # per circlebot command: time spent in the core (dispatch minus the adapter's reply)
ANSWER: list[str] = ["Test study circle"]  # what circlebot answered; the bare bot answers the same text


async def measure(fake: FakeDiscord, member: FakeMember, channel: FakeChannel, n: int) -> list[float]:
    """Latencies (ms) of `n` sequential /circle commands, after a warm-up."""
    out: list[float] = []
    for i in range(WARMUP + n):
        t0 = time.perf_counter()
        inter = await fake.slash(member, channel, "circle")
        response = await inter.wait_response()
        if i >= WARMUP:
            out.append((time.perf_counter() - t0) * 1000)
    ANSWER[0] = str((response.get("data") or {}).get("content") or ANSWER[0])
    return out


async def bare_bot(n: int) -> list[float]:
    fake = FakeDiscord()
    await fake.start()
    try:
        with fake.installed():
            guild = fake.add_guild()
            channel = guild.add_text_channel("study")
            member = fake.add_member(guild, "alice")
            client = make_client(intents=discord.Intents.none() | discord.Intents(guilds=True))
            tree = app_commands.CommandTree(client)

            @tree.command(name="circle", description="What this circle is.", guild=discord.Object(guild.id))
            async def circle(interaction: discord.Interaction) -> None:
                await interaction.response.send_message(ANSWER[0],
                                                        allowed_mentions=discord.AllowedMentions.none())

            task = await start_client(fake, client)
            try:
                await tree.sync(guild=discord.Object(guild.id))
                return await measure(fake, member, channel, n)
            finally:
                await stop_client(client, task)
    finally:
        await fake.stop()


async def circlebot(n: int) -> list[float]:
    fake = FakeDiscord()
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        db: Database | None = None
        try:
            with fake.installed():
                guild = fake.add_guild()
                channel = guild.add_text_channel("study")
                member = fake.add_member(guild, "alice")
                settings = discord_settings(Path(tmp), fake, guild, channel, guild.add_role("Organisers"))
                assert settings.discord is not None
                db = await Database.open(settings.database)
                store = Store(db)
                store.batcher.start()
                app = App(settings, store, load_collection(settings.readings))
                adapter = DiscordAdapter(settings.discord, settings.circles, app.commands.commands,
                                         AppLookups(app, "discord"), token=fake.token, guild_ready_timeout=0.05)
                app.add_adapter(adapter)
                dispatch, reply = app.dispatch, adapter.reply

                async def timed_reply(*args: Any, **kwargs: Any) -> None:
                    t0 = time.perf_counter()
                    await reply(*args, **kwargs)
                    CORE_MS[-1] -= (time.perf_counter() - t0) * 1000

                async def timed_dispatch(event: Any) -> None:
                    CORE_MS.append(0.0)
                    t0 = time.perf_counter()
                    await dispatch(event)
                    CORE_MS[-1] += (time.perf_counter() - t0) * 1000

                adapter.reply = timed_reply  # type: ignore[method-assign]
                task = asyncio.create_task(adapter.serve(timed_dispatch))
                try:
                    await asyncio.wait_for(adapter.ready.wait(), 10)
                    return await measure(fake, member, channel, n)
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    await store.batcher.stop()
        finally:
            if db is not None:
                await db.close()
            await fake.stop()


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


async def main(n: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    # circlebot first: the bare bot then answers with exactly the text circlebot answered (same payload)
    runs: list[tuple[str, Callable[[int], Awaitable[list[float]]]]] = [("circlebot", circlebot),
                                                                        ("bare discord.py", bare_bot)]
    results: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _round in range(ROUNDS):  # alternate, so a busy moment of the shared machine hits both alike
        for name, run in runs:
            results[name] += await run(n)
    print(f"/circle, {ROUNDS} x {n} commands each, alternating (after {WARMUP} warm-up each), loopback fake Discord; "
          "both answer the same "
          f"{len(ANSWER[0])}-character text")
    for name, lat in sorted(results.items()):
        print(f"  {name:16s} p50 {pct(lat, 50):6.2f} ms   p95 {pct(lat, 95):6.2f} ms   max {max(lat):6.2f} ms")
    bare, ours = results["bare discord.py"], results["circlebot"]
    r50, r95 = pct(ours, 50) / pct(bare, 50), pct(ours, 95) / pct(bare, 95)
    verdict = "within" if max(r50, r95) <= 1.2 else "NOT within"
    print(f"  ratio            p50 {r50:.2f}x   p95 {r95:.2f}x   ({verdict} the 1.2x target)")
    core = [c for i, c in enumerate(CORE_MS) if i % (WARMUP + n) >= WARMUP]
    print(f"  of which the core (routing, permission, SQLite, text): p50 {pct(core, 50):.2f} ms, "
          f"p95 {pct(core, 95):.2f} ms")
    adapter_only = [t - c for t, c in zip(ours, core, strict=True)]
    a50, a95 = pct(adapter_only, 50), pct(adapter_only, 95)
    print(f"  circlebot without the core's work: p50 {a50:.2f} ms ({a50 / pct(bare, 50):.2f}x), "
          f"p95 {a95:.2f} ms ({a95 / pct(bare, 95):.2f}x)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))

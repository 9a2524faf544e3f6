"""Several bot processes on one PostgreSQL database (issue 16): posts claimed per location, each sent once;
a process killed midway has its unfinished posts taken over; Discord shards split between the processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import discord
import pytest

from circlebot.core.domain import ChannelRef
from circlebot.store import Database, PostClaim, Store
from conftest import REPO, SEED, START
from fakediscord import FakeDiscord, fake_discord_fixture, make_client, running_client  # noqa: F401
from pg_harness import PostgresServer

TOKEN_ENV = "CIRCLEBOT_TEST_DISCORD_TOKEN"
CIRCLES = 40
MEETINGS = 5  # per circle: 200 posts


async def test_each_location_of_a_post_is_claimed_once_across_processes_and_a_stopped_ones_is_taken_over(
        postgres: PostgresServer) -> None:
    url = await postgres.fresh_schema()
    a, b = Store(await Database.open(url)), Store(await Database.open(url))  # two processes' stores
    try:
        now = START
        discord_loc, matrix_loc = ChannelRef("discord", "1"), ChannelRef("matrix", "!r")
        lease = now + timedelta(seconds=30)
        # process a runs Discord only, b runs Matrix and Discord: each claims what nobody holds yet
        assert await a.claim_posts([PostClaim("c/1/start", "c", None, "start", now, (discord_loc,))], now,
                                   owner="a", lease_until=lease) == {"c/1/start": (discord_loc,)}
        both = PostClaim("c/1/start", "c", None, "start", now, (matrix_loc, discord_loc))
        assert await b.claim_posts([both], now, owner="b", lease_until=lease) == {"c/1/start": (matrix_loc,)}
        assert await b.claim_posts([both], now, owner="b", lease_until=lease) == {}  # nothing twice
        # claims made at the same moment by both: each location goes to one of them
        other = PostClaim("c/2/start", "c", None, "start", now, (discord_loc,))
        got = await asyncio.gather(*(s.claim_posts([other], now, owner=o, lease_until=lease)
                                     for s, o in ((a, "a"), (b, "b"))))
        assert sorted(map(len, got)) == [0, 1]
        # b stays alive (renews), a stops: once a's lease has run out, b takes a's locations over
        assert await b.renew_leases("b", now + timedelta(seconds=90)) >= 1
        assert await b.take_over_deliveries("b", ["discord", "matrix"], now=now + timedelta(seconds=10),
                                            lease_until=now + timedelta(seconds=90), held_too=False) == []
        taken = await b.take_over_deliveries("b", ["discord", "matrix"], now=now + timedelta(seconds=31),
                                             lease_until=now + timedelta(seconds=90), held_too=False)
        expected = [("c/1/start", discord_loc)] + ([("c/2/start", discord_loc)] if got[0] else [])
        assert sorted((d.post_key, d.where) for d in taken) == expected
        assert all(d.first_try_at == now for d in taken)
        assert await a.renew_leases("a", now + timedelta(seconds=90)) == 0  # a holds nothing now
    finally:
        await a.db.close()
        await b.db.close()


async def test_a_direct_reminder_is_claimed_once_across_processes_and_a_stopped_ones_is_taken_over(
        postgres: PostgresServer) -> None:
    """Direct reminders on a shared database: claimed by one process at most (claims at the same moment
    included), held while its lease lasts, and taken over by another once the holder stopped renewing it;
    only for a process running the member's platform, and only once its next try is due."""
    from circlebot.core.domain import UserRef
    from circlebot.store.turnout import DirectReminders

    url = await postgres.fresh_schema()
    a, b = Store(await Database.open(url)), Store(await Database.open(url))  # two processes' stores
    try:
        now = START
        m = await a.add_meeting("c", now + timedelta(days=1), now + timedelta(days=1, hours=1), SEED, None, now)
        alice = await a.ensure_member(UserRef("discord", "1", "alice"))
        ra, rb = DirectReminders(a.db), DirectReminders(b.db)
        wanted = [(m.id, alice, m.starts_at)]
        lease = now + timedelta(seconds=30)
        await asyncio.gather(ra.claim(wanted, now, owner="a", lease_until=lease),
                             rb.claim(wanted, now, owner="b", lease_until=lease))
        held = await asyncio.gather(*(r.take(o, ["discord"], now=now, wall_now=now, lease_until=lease,
                                             held_too=False) for r, o in ((ra, "a"), (rb, "b"))))
        assert sorted(map(len, held)) == [0, 1], held  # one process holds it
        holder, other = (ra, rb) if held[0] else (rb, ra)
        name = "a" if held[0] else "b"
        other_name = "b" if held[0] else "a"
        (claim,) = held[0] or held[1]
        await holder.trying(claim, now)
        await holder.retry_at(claim, now + timedelta(seconds=2), "DiscordServerError: 503", now)
        later = now + timedelta(seconds=40)  # the holder stopped renewing: its lease ran out
        assert await other.take(other_name, ["matrix"], now=later, wall_now=later, lease_until=later,
                                held_too=False) == []  # not a platform it runs
        assert await other.take(other_name, ["discord"], now=now + timedelta(seconds=1), wall_now=later,
                                lease_until=later, held_too=False) == []  # its next try is not due yet
        (taken,) = await other.take(other_name, ["discord"], now=later, wall_now=later, lease_until=later,
                                    held_too=False)
        assert (taken.attempts, taken.detail, taken.sending_since) == (1, "DiscordServerError: 503", None)
        await other.done(taken, "sent", later)
        assert await holder.take(name, ["discord"], now=later, wall_now=later, lease_until=later,
                                 held_too=True) == []  # sent: nothing left to take, whoever asks
    finally:
        await a.db.close()
        await b.db.close()


class _Sharded(discord.AutoShardedClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # the fake needs no 5 s between IDENTIFYs


async def test_the_fake_gives_each_shard_its_own_guilds(fake_discord: FakeDiscord) -> None:
    guilds = [fake_discord.add_guild(f"G{i}", shard=(i, 4)) for i in range(4)]
    client = make_client(cls=_Sharded, shard_count=4, shard_ids=[2, 3])
    async with running_client(fake_discord, client):
        assert sorted(g.id for g in client.guilds) == sorted([guilds[2].id, guilds[3].id])
        assert sorted(s.shard for s in fake_discord.sessions.values()) == [[2, 4], [3, 4]]  # type: ignore[type-var]


def _log(path: Path) -> IO[bytes]:
    return path.open("wb")


def _config(path: Path, url: str, fake: FakeDiscord, channels: list[int], guilds: list[int],
            shard_ids: list[int]) -> Path:
    lines = [
        f'database = "{url}"',
        f'readings = "{REPO / "readings"}"',
        "delivery_lease_seconds = 1",
        'log_level = "INFO"',
        "[console]",
        "enabled = false",
        "[discord]",
        f'token_env = "{TOKEN_ENV}"',
        f"guilds = {json.dumps([str(g) for g in guilds])}",
        f'api_base = "{fake.api_base}"',
        f'gateway_url = "{fake.gateway_url}"',
        "shard_count = 4",
        f"shard_ids = {json.dumps(shard_ids)}",
    ]
    for i, channel in enumerate(channels):
        lines += [
            "[[circles]]",
            f'slug = "c{i}"',
            f'name = "Circle {i}"',
            'timezone = "UTC"',
            'meets = { weekdays = ["thursday"], time = "19:00", duration = "1h" }',
            f'where = {{ console = false, discord_channels = ["{channel}"] }}',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.timeout(120)
async def test_two_bot_processes_on_one_database_post_each_of_200_posts_once_though_one_is_killed(
        tmp_path: Path, postgres: PostgresServer, fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    guilds = [fake.add_guild(f"Union {i}", shard=(i, 4)) for i in range(4)]
    channels = [guilds[i % 4].add_text_channel(f"circle-{i}").id for i in range(CIRCLES)]
    url = await postgres.fresh_schema()
    # the bots' clocks are held at the present: what they schedule for later (the summaries) stays in the future
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store(await Database.open(url))
    try:  # 200 meetings whose discussion questions fell due within the last minute
        for i in range(CIRCLES * MEETINGS):
            starts = now - timedelta(seconds=(i * 59) // (CIRCLES * MEETINGS))
            await store.add_meeting(f"c{i % CIRCLES}", starts, starts + timedelta(hours=1), SEED, None, now)
    finally:
        await store.db.close()
    fake.message_delay = 0.1  # a platform that takes its time: the kill comes while posts are in flight
    env = {**os.environ, TOKEN_ENV: fake.token}
    script = str(Path(__file__).with_name("bot_process.py"))
    procs = []
    for name, shards in (("a", [0, 1]), ("b", [2, 3])):
        config = _config(tmp_path / f"{name}.toml", url, fake, channels, [g.id for g in guilds], shards)
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, script, now.isoformat(), "run", "--config", str(config), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=_log(tmp_path / f"{name}.log")))
    probe = await Database.open(url)
    try:
        async def posted() -> list[dict[str, object]]:
            return [m for c in channels for m in fake.channel_messages(c)]

        async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
            for _ in range(2000):  # 40 s
                if await check():
                    return
                await asyncio.sleep(0.02)
            logs = "\n".join((tmp_path / f"{n}.log").read_text(errors="replace")[-3000:] for n in "ab")
            raise AssertionError(f"{what}; the processes' logs:\n{logs}")

        async def some_posted() -> bool:
            return len(await posted()) >= 40

        await until(some_posted, "no post arrived")
        owners = [str(r[0]) for r in await probe.fetchall(
            "SELECT DISTINCT owner FROM post_deliveries WHERE state = 'sending' AND owner IS NOT NULL")]
        assert owners, "every post was already sent: the kill would come too late"
        pids = {int(o.split(":")[1]) for o in owners}
        victim = next(p for p in procs if p.pid in pids)
        survivor = next(p for p in procs if p is not victim)
        victim.send_signal(signal.SIGKILL)
        await victim.wait()

        async def all_sent() -> bool:
            row = await probe.fetchone("SELECT count(*) FROM post_deliveries WHERE state = 'sent'")
            return row is not None and int(row[0]) == CIRCLES * MEETINGS

        await until(all_sent, "the other process did not carry on")
        assert survivor.returncode is None, "the surviving process stopped"
        messages = await posted()
        # a post is one message or several (a long one is cut in chunks), each sent with its own nonce: a nonce
        # seen twice would be a post sent twice; every post's first message is the one recorded as sent
        nonces = [str(m.get("nonce")) for m in messages]
        assert len(set(nonces)) == len(nonces), "a message was posted twice"
        first = {str(r[0]) for r in await probe.fetchall("SELECT message_id FROM post_deliveries WHERE state = 'sent'")}
        assert len(first) == CIRCLES * MEETINGS and first <= {str(m["id"]) for m in messages}
        per_channel = Counter(int(str(m["channel_id"])) for m in messages)
        assert len(messages) % (CIRCLES * MEETINGS) == 0, f"{len(messages)} messages for {CIRCLES * MEETINGS} posts"
        assert set(per_channel.values()) == {len(messages) // CIRCLES}, per_channel
        shards = sorted(s.shard for s in fake.sessions.values())  # type: ignore[type-var]
        assert shards == [[0, 4], [1, 4], [2, 4], [3, 4]]
        survivor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(survivor.wait(), 30) == 0
    finally:
        await probe.close()
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()


def test_the_deployment_in_deploy_holds_together() -> None:
    """deploy/compose.yaml (the README's deployment): PostgreSQL and two bot processes, whose configs are valid
    and split the platforms: one Matrix process, Discord's 4 shards each held once."""
    import yaml

    from circlebot.config import load

    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    assert set(compose["services"]) == {"postgres", "bot-a", "bot-b"}
    configs = {name: load(REPO / "deploy" / f"{name}.toml") for name in ("bot-a", "bot-b")}
    assert all(s.on_postgresql and s.database_password_env for s in configs.values())
    assert [n for n, s in configs.items() if s.matrix is not None] == ["bot-a"]
    shards = [i for s in configs.values() if s.discord is not None for i in s.discord.shard_ids or ()]
    assert sorted(shards) == [0, 1, 2, 3] and {s.discord.shard_count for s in configs.values() if s.discord} == {4}
    assert configs["bot-a"].circles == configs["bot-b"].circles
    for name in configs:
        service = compose["services"][name]
        assert f"./{name}.toml:/config/circlebot.toml:ro" in service["volumes"]
        assert "CIRCLEBOT_DB_PASSWORD" in service["environment"]

"""Linked accounts: one person on Discord and on Matrix counts once. Through the whole bot (the core's test
adapter on two platforms, a real database file or PostgreSQL schema, the fake clock): the link flow with its
one-time codes (wrong, expired, used, guessed), one ballot per poll (the latest vote wins, from either
platform, merged at link time too), one RSVP, one reminder, organiser rights from either account, `unlink`;
and a second process on the same database seeing the link."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import turnout_scenarios
from circlebot.app import App
from circlebot.core.domain import ChannelRef, Invocation, UserRef, VoteCast
from circlebot.readings import load_collection
from circlebot.store import Database, Store
from circlebot.store.copy import copy_database
from conftest import circle_config, make_settings
from drivers import FakeClock, RecordingAdapter, number_after
from pg_harness import BOTH_DATABASES, PostgresServer
from test_shared_caches import Start, start

__all__ = ["start"]  # the fixture of two processes on one database

ROOM = "!study:example.org"
CHANNEL = "234567890123456789"
CODE = re.compile(r"Your code: (\d{4}-\d{4})")


@dataclass
class Said:
    text: str
    private: bool

    def __contains__(self, part: str) -> bool:
        return part in self.text


@dataclass
class TwoPlatforms:
    """A circle on Discord and Matrix (the core's recording adapter standing for each), one process."""

    app: App
    discord: RecordingAdapter
    matrix: RecordingAdapter
    clock: FakeClock

    @staticmethod
    def user(platform: str, name: str) -> UserRef:
        return UserRef("matrix", f"@{name}:example.org", name) if platform == "matrix" else UserRef(
            "discord", str(abs(hash(name)) % 10**17 + 10**17), name)

    def adapter(self, platform: str) -> RecordingAdapter:
        return self.matrix if platform == "matrix" else self.discord

    async def say(self, platform: str, name: str, text: str) -> Said:
        adapter = self.adapter(platform)
        before = len(adapter.replies)
        where = ChannelRef("matrix", ROOM) if platform == "matrix" else ChannelRef("discord", CHANNEL)
        await self.app.dispatch(Invocation(self.user(platform, name), where, self.clock.now(), text=text))
        (reply,) = adapter.replies[before:]
        return Said(adapter.render(reply[1]), reply[2])

    async def vote(self, platform: str, name: str, poll: int, answer: int) -> None:
        """A native vote (a click in the platform's poll), answers 1-based."""
        await self.app.dispatch(VoteCast(self.user(platform, name), (answer - 1,), self.clock.now(),
                                         message=self.adapter(platform).polls[poll]))

    async def link(self, name: str, *, first: str = "discord", then: str = "matrix") -> Said:
        asked = await self.say(first, name, "link")
        (code,) = CODE.findall(asked.text)
        return await self.say(then, name, f"link {code}")


async def open_two(tmp_path: Path, database: str, clock: FakeClock, **circle: object
                   ) -> tuple[TwoPlatforms, Store]:
    settings = make_settings(tmp_path, database=database, circles=[circle_config(
        where={"discord_channels": [CHANNEL], "matrix_rooms": [ROOM]},
        organisers={"matrix_users": ["@olga:example.org"]}, **circle)])
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    app = App(settings, store, load_collection(settings.readings), clock)
    zone = settings.zone_of(settings.circles[0])
    discord = RecordingAdapter(zone, platform="discord", prefix="")
    matrix = RecordingAdapter(zone, platform="matrix", prefix="!")
    app.add_adapter(discord)
    app.add_adapter(matrix)
    return TwoPlatforms(app, discord, matrix, clock), store


@pytest.fixture
async def two(tmp_path: Path, database: str, clock: FakeClock) -> AsyncIterator[TwoPlatforms]:
    bot, store = await open_two(tmp_path, database, clock)
    try:
        yield bot
    finally:
        await store.batcher.stop()
        await store.db.close()


@BOTH_DATABASES
async def test_link_answers_privately_with_a_code_and_how_to_use_it_and_the_code_links(two: TwoPlatforms) -> None:
    asked = await two.say("discord", "alice", "link")
    assert asked.private, asked
    (code,) = CODE.findall(asked.text)
    assert f"on Matrix, send !link {code} to the bot within 10 minutes" in asked, asked
    linked = await two.say("matrix", "alice", f"link {code}")
    assert linked.private and "Linked: alice on Discord, alice on Matrix are one member" in linked, linked
    again = await two.say("matrix", "alice", f"link {code}")  # single use
    assert "not one I gave (or it was used already)" in again, again


@BOTH_DATABASES
async def test_a_wrong_an_expired_or_a_mistyped_code_gets_a_clear_answer(two: TwoPlatforms) -> None:
    wrong = await two.say("matrix", "alice", "link 0000-0000")
    assert "That code is not one I gave" in wrong and "ask for a new one with !link from" in wrong, wrong
    typo = await two.say("matrix", "alice", "link 12345")
    assert "A code is 8 digits, like 4821-9930; got '12345'" in typo and "Usage: !link [code]" in typo, typo
    (code,) = CODE.findall((await two.say("discord", "alice", "link")).text)
    two.clock.advance(timedelta(minutes=10, seconds=1))
    expired = await two.say("matrix", "alice", f"link {code}")
    assert "That code has expired (a code works for 10 minutes)" in expired, expired
    (code,) = CODE.findall((await two.say("discord", "alice", "link")).text)
    own = await two.say("discord", "alice", f"link {code}")
    assert "That code is this account's own" in own, own
    poll = number_after("poll", (await two.say("matrix", "olga", 'poll "Where?" "Here" "There"')).text)
    await two.say("discord", "alice", f"vote {poll} 1")
    await two.say("matrix", "alice", f"vote {poll} 2")
    assert "(open, 2 voters)" in await two.say("matrix", "olga", f"poll results {poll}")  # not linked


@BOTH_DATABASES
async def test_codes_cannot_be_guessed_a_few_wrong_ones_an_hour(two: TwoPlatforms) -> None:
    (code,) = CODE.findall((await two.say("discord", "alice", "link")).text)
    for n in range(5):
        guess = f"{(int(code.replace('-', '')) + n + 1) % 10**8:08d}"
        assert "not one I gave" in await two.say("matrix", "mallory", f"link {guess}")
    refused = await two.say("matrix", "mallory", f"link {code}")  # even the right one, now
    assert "Too many wrong codes from this account (5 in an hour)" in refused, refused
    assert "Linked" in await two.say("matrix", "alice", f"link {code}")  # alice's own other account still may
    (code,) = CODE.findall((await two.say("discord", "bob", "link")).text)
    two.clock.advance(timedelta(hours=1))
    (code,) = CODE.findall((await two.say("discord", "bob", "link")).text)
    assert "Linked" in await two.say("matrix", "mallory", f"link {code}")  # an hour on, mallory may try again


@BOTH_DATABASES
async def test_votes_from_both_accounts_count_once_and_the_last_stands(two: TwoPlatforms) -> None:
    poll = number_after("poll", (await two.say("matrix", "olga", 'poll "Where?" "Here" "There" "Elsewhere"'))
                        .text)
    await two.say("discord", "alice", f"vote {poll} 1")
    two.clock.advance(timedelta(minutes=1))
    await two.vote("matrix", "alice", poll, 2)  # later: this one stands when the two are merged
    await two.vote("discord", "bob", poll, 3)
    assert "(open, 3 voters)" in await two.say("matrix", "olga", f"poll results {poll}")

    assert "Linked" in await two.link("alice")
    shown = await two.say("matrix", "olga", f"poll results {poll}")
    assert "(open, 2 voters)" in shown and "1. Here: 0" in shown and "2. There: 1" in shown, shown

    two.clock.advance(timedelta(minutes=1))
    await two.vote("discord", "alice", poll, 1)  # a click on Discord, after the link
    shown = await two.say("discord", "bob", f"poll results {poll}")
    assert "(open, 2 voters)" in shown and "1. Here: 1" in shown and "2. There: 0" in shown, shown
    two.clock.advance(timedelta(minutes=1))
    await two.say("matrix", "alice", f"vote {poll} 3")  # and by command on Matrix
    shown = await two.say("discord", "bob", f"poll results {poll}")
    assert "(open, 2 voters)" in shown and "1. Here: 0" in shown and "3. Elsewhere: 2" in shown, shown


@BOTH_DATABASES
async def test_a_poll_closed_before_the_link_keeps_the_results_it_announced(two: TwoPlatforms) -> None:
    """The closed poll's results were posted (and the database refuses any ballot in it): linking later merges
    the ballots of open polls only, so what was announced stays true."""
    closed = number_after("poll", (await two.say("matrix", "olga", 'poll "Done?" "Yes" "No"')).text)
    still = number_after("poll", (await two.say("matrix", "olga", 'poll "Open?" "Yes" "No"')).text)
    for poll in (closed, still):
        await two.say("discord", "alice", f"vote {poll} 1")
        await two.say("matrix", "alice", f"vote {poll} 2")
    assert "(closed, 2 voters)" in await two.say("matrix", "olga", f"poll close {closed}")
    await two.link("alice")
    shown = await two.say("matrix", "olga", f"poll results {closed}")
    assert "(closed, 2 voters)" in shown and "1. Yes: 1" in shown and "2. No: 1" in shown, shown
    shown = await two.say("matrix", "olga", f"poll results {still}")
    assert "(open, 1 voter)" in shown, shown
    assert "Unlinked" in await two.say("matrix", "alice", "unlink")
    shown = await two.say("matrix", "olga", f"poll results {closed}")
    assert "(closed, 2 voters)" in shown and "1. Yes: 1" in shown and "2. No: 1" in shown, shown


@BOTH_DATABASES
async def test_a_read_back_on_one_platform_keeps_a_later_vote_from_the_other(two: TwoPlatforms) -> None:
    """A linked person's ballot is their latest vote from either platform. Reading back Discord's poll after a
    reconnect (untimed: what each voter holds now) must not put back their older Discord vote, nor withdraw a
    ballot Discord does not show; reading back Matrix's (timed) must not roll back a later Discord vote, while
    a later Matrix vote counts."""
    from circlebot.core.domain import PollReadBack

    poll = number_after("poll", (await two.say("matrix", "olga", 'poll "Where?" "Here" "There" "Elsewhere"'))
                        .text)
    await two.link("alice")
    await two.link("bob")
    await two.vote("discord", "alice", poll, 1)
    two.clock.advance(timedelta(minutes=1))
    await two.vote("matrix", "alice", poll, 2)  # alice's ballot: There
    await two.vote("matrix", "bob", poll, 3)  # bob's: Elsewhere, voted on Matrix only
    voted_at = two.clock.now()
    two.clock.advance(timedelta(minutes=1))

    def held(platform: str, name: str, answer: int, at: datetime) -> VoteCast:
        return VoteCast(two.user(platform, name), (answer - 1,), at, message=two.adapter(platform).polls[poll])

    now = two.clock.now()
    await two.app.dispatch(PollReadBack(two.discord.polls[poll], (held("discord", "alice", 1, now),), now,
                                        timed=False))
    shown = await two.say("matrix", "olga", f"poll results {poll}")
    assert "(open, 2 voters)" in shown and "2. There: 1" in shown and "3. Elsewhere: 1" in shown, shown

    await two.app.dispatch(PollReadBack(two.matrix.polls[poll], (held("matrix", "alice", 2, voted_at),
                                                                 held("matrix", "bob", 1, now)), now, timed=True))
    shown = await two.say("matrix", "olga", f"poll results {poll}")
    assert "(open, 2 voters)" in shown and "1. Here: 1" in shown and "2. There: 1" in shown, shown


@BOTH_DATABASES
async def test_rsvps_from_both_accounts_are_one(two: TwoPlatforms) -> None:
    timeline = await turnout_scenarios.start_timeline(two)  # type: ignore[arg-type]  # meeting #1 is planned
    await two.say("discord", "alice", "rsvp no")
    two.clock.advance(timedelta(minutes=1))
    await two.say("matrix", "alice", "rsvp yes")
    assert "RSVPs: 2 yes, 0 maybe, 0 no" not in (await two.say("discord", "bob", "upcoming")).text
    assert "RSVPs: 1 yes, 0 maybe, 1 no" in await two.say("discord", "bob", "upcoming")
    await two.link("alice")
    assert "RSVPs: 1 yes, 0 maybe, 0 no" in await two.say("discord", "bob", "upcoming")  # the later answer
    await two.say("discord", "alice", "rsvp maybe")
    shown = await two.say("matrix", "olga", "attendance 1")
    assert "RSVPs: 0 yes, 1 maybe, 0 no" in await two.say("matrix", "bob", "upcoming"), shown
    assert shown.text.count("alice") == 1, shown
    await timeline.close()


@BOTH_DATABASES
@pytest.mark.parametrize("capacity", [2, 1])
async def test_a_place_freed_by_a_link_goes_to_the_first_waiting_and_a_held_place_is_kept(
        tmp_path: Path, database: str, clock: FakeClock, capacity: int) -> None:
    """Capacity 2: alice said yes from both accounts, taking both places, and bob waits. Linked, alice holds
    one place: the other goes to bob, who is told. With capacity 1, alice's place (Discord) is kept though her
    later yes (Matrix) was waiting: linking never costs a place."""
    bot, store = await open_two(tmp_path, database, clock, turnout={"capacity": capacity})
    timeline = await turnout_scenarios.start_timeline(bot)  # type: ignore[arg-type]
    try:
        assert "You have a place" in await bot.say("discord", "alice", "rsvp yes")
        bot.clock.advance(timedelta(seconds=1))
        second = await bot.say("matrix", "alice", "rsvp yes")
        if capacity == 2:
            assert "You have a place" in second, second
            assert "number 1 on the waitlist" in await bot.say("discord", "bob", "rsvp yes")
        else:
            assert "number 1 on the waitlist" in second, second
        await bot.link("alice")
        upcoming = await bot.say("matrix", "bob", "upcoming")
        if capacity == 2:
            told = [bot.matrix.render(p) for _, p, _ in bot.matrix.sent if "A place has freed up" in
                    bot.matrix.render(p)]
            assert len(told) == 1 and "bob, you are in" in told[0], told
            assert "RSVPs: 2 yes, 0 maybe, 0 no; full (2 places)" in upcoming, upcoming
        else:
            assert "RSVPs: 1 yes, 0 maybe, 0 no; full (1 places)" in upcoming, upcoming
            shown = await bot.say("matrix", "olga", "attendance 1")
            assert "RSVP yes (1): alice" in shown and "Waitlist (0, 1 places): -" in shown, shown
    finally:
        await timeline.close()
        await store.batcher.stop()
        await store.db.close()


@BOTH_DATABASES
async def test_an_organiser_on_one_platform_is_one_from_the_other_once_linked(two: TwoPlatforms) -> None:
    refused = await two.say("discord", "olga", 'poll "Where?" "Here" "There"')
    assert "is for the organisers" in refused, refused
    await two.link("olga", first="matrix", then="discord")
    opened = await two.say("discord", "olga", 'poll "Where?" "Here" "There"')
    assert "is for the organisers" not in opened and "poll #1" in opened.text.lower(), opened


@BOTH_DATABASES
async def test_an_organiser_by_power_level_or_role_is_one_from_the_other_account(two: TwoPlatforms) -> None:
    """Matrix power level 50 makes pat an organiser there (in the room), and the Discord role makes dora one
    there: once each links the other account, that account is an organiser too, while the standing was seen
    within a week (every command showing it renews it); a week after it was last seen, no longer."""
    from circlebot.core.domain import Authority

    circle = two.app.settings.circles[0]
    two.app.settings = two.app.settings.model_copy(update={"circles": [circle.model_copy(update={
        "organisers": circle.organisers.model_copy(update={"discord_roles": ["345678901234567890"]})})]})
    two.app._channels = {k: two.app.settings.circles[0] for k in two.app._channels}

    async def with_standing(platform: str, name: str, text: str) -> Said:
        authority = (Authority(power_level=50) if platform == "matrix"
                     else Authority(roles=frozenset({"345678901234567890"})))
        adapter = two.adapter(platform)
        before = len(adapter.replies)
        where = ChannelRef("matrix", ROOM) if platform == "matrix" else ChannelRef("discord", CHANNEL)
        await two.app.dispatch(Invocation(two.user(platform, name), where, two.clock.now(), text=text,
                                          authority=authority))
        (reply,) = adapter.replies[before:]
        return Said(adapter.render(reply[1]), reply[2])

    for name, by_standing, other in (("pat", "matrix", "discord"), ("dora", "discord", "matrix")):
        assert "is for the organisers" in await two.say(other, name, "skip 2026-12-03")
        await two.link(name, first=other, then=by_standing)
        assert "is for the organisers" in await two.say(other, name, "skip 2026-12-03")  # not seen as one yet
        assert "is for the organisers" not in await with_standing(by_standing, name, "upcoming")
        allowed = await two.say(other, name, "skip 2026-12-10")
        assert "is for the organisers" not in allowed and "10 Dec" in allowed, allowed

    two.clock.advance(timedelta(days=6))
    assert "is for the organisers" not in await two.say("discord", "pat", "skip 2026-12-17")
    two.clock.advance(timedelta(days=1, seconds=1))
    assert "is for the organisers" in await two.say("discord", "pat", "skip 2026-12-24")
    await with_standing("matrix", "pat", "upcoming")  # seen again: renewed
    assert "is for the organisers" not in await two.say("discord", "pat", "skip 2026-12-24")


@BOTH_DATABASES
async def test_unlink_makes_the_other_account_a_member_of_its_own_again(two: TwoPlatforms) -> None:
    poll = number_after("poll", (await two.say("matrix", "olga", 'poll "Where?" "Here" "There"')).text)
    await two.link("alice")
    await two.say("discord", "alice", f"vote {poll} 1")
    await two.say("matrix", "alice", f"vote {poll} 2")
    assert "(open, 1 voter)" in await two.say("matrix", "olga", f"poll results {poll}")
    gone = await two.say("matrix", "alice", "unlink")
    assert gone.private and "Unlinked: alice on Matrix is a member of its own again" in gone, gone
    assert "stays with the account you linked to" in gone, gone
    shown = await two.say("matrix", "olga", f"poll results {poll}")
    assert "(open, 1 voter)" in shown and "2. There: 1" in shown, shown  # the ballot stays with the person
    await two.say("matrix", "alice", f"vote {poll} 1")
    shown = await two.say("matrix", "olga", f"poll results {poll}")
    assert "(open, 2 voters)" in shown and "1. Here: 1" in shown and "2. There: 1" in shown, shown
    assert "not linked to another" in await two.say("matrix", "alice", "unlink")
    assert "Linked" in await two.link("alice")  # and may link again


@BOTH_DATABASES
async def test_a_linked_person_gets_one_reminder_by_direct_message(two: TwoPlatforms) -> None:
    timeline = await turnout_scenarios.start_timeline(two)  # type: ignore[arg-type]
    turnout_scenarios.quick_directs(two)  # type: ignore[arg-type]
    await two.say("discord", "alice", "remind me dm on")
    await two.say("matrix", "alice", "remind me dm on")
    await two.say("discord", "alice", "rsvp yes")
    await two.say("matrix", "alice", "rsvp yes")
    await two.link("alice")
    two.clock.set(turnout_scenarios.REMINDER_DUE)
    await timeline.tick()
    await timeline.close()
    sent = [(u.platform, p) for a in (two.discord, two.matrix) for u, p in a.directs]
    assert [p for p, _ in sent] == ["discord"], sent  # where alice asked for the code


@BOTH_DATABASES
async def test_a_link_made_in_one_process_is_seen_by_another_on_the_same_database(start: Start) -> None:
    """Two bot processes on one database, one on the console and one on Matrix. Alice (known to both, her
    identity cached by the console's vote path) links her Matrix account from the Matrix process: the console
    process, once its watch has seen the change, counts her console vote as her one ballot, by the vote path
    that does no I/O too."""
    console, matrix = await start("console"), await start("matrix")
    poll = number_after("poll", await console.say("olga", 'poll "Where?" "Here" "There"'))
    alice = console.user("alice")
    assert await console.app.dispatch(VoteCast(alice, (0,), console.app.clock.now(), poll_id=poll)) is None
    assert console.store.known_member(alice) is not None  # cached: the next vote would take it as it is
    assert "is counted" in await matrix.say("alice", f"vote {poll} 2")
    assert "(open, 2 voters)" in await console.say("olga", f"poll results {poll}")

    (code,) = CODE.findall(await console.say("alice", "link"))
    assert "Linked" in await matrix.say("alice", f"link {code}")
    await console.change_noticed("members")
    assert console.store.known_member(alice) is None  # dropped: looked up again, as the person

    console.app.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    assert await console.app.dispatch(VoteCast(alice, (0,), console.app.clock.now(), poll_id=poll)) is None
    for process in (console, matrix):
        shown = await process.say("olga", f"poll results {poll}")
        assert "(open, 1 voter)" in shown and "1. Here: 1" in shown and "2. There: 0" in shown, shown


@BOTH_DATABASES
async def test_a_code_sent_in_a_direct_chat_links_though_several_circles_live_there(
        tmp_path: Path, database: str, clock: FakeClock) -> None:
    """The bot asks for the code to be sent to it, and accounts are not a circle's: a direct chat with the bot
    on Matrix, where two circles live, takes `link` and `unlink` (other commands there still ask which circle)."""
    settings = make_settings(tmp_path, database=database, circles=[
        circle_config(where={"discord_channels": [CHANNEL], "matrix_rooms": [ROOM]}),
        circle_config(slug="other", name="Other circle", where={"matrix_rooms": ["!other:example.org"]})])
    store = Store(await Database.open(settings.database))
    store.batcher.start()
    try:
        app = App(settings, store, load_collection(settings.readings), clock)
        zone = settings.zone_of(settings.circles[0])
        bot = TwoPlatforms(app, RecordingAdapter(zone, platform="discord"), RecordingAdapter(zone, platform="matrix",
                                                                                          prefix="!"), clock)
        app.add_adapter(bot.discord)
        app.add_adapter(bot.matrix)

        async def direct(text: str) -> Said:
            before = len(bot.matrix.replies)
            user = bot.user("matrix", "alice")
            await app.dispatch(Invocation(user, ChannelRef("matrix", "!dm-alice:example.org"), clock.now(),
                                          text=text, direct=True))
            (reply,) = bot.matrix.replies[before:]
            return Said(bot.matrix.render(reply[1]), reply[2])

        (code,) = CODE.findall((await bot.say("discord", "alice", "link")).text)
        linked = await direct(f"link {code}")
        assert "Linked: alice on Discord, alice on Matrix" in linked, linked
        assert "I cannot tell which study circle" in await direct("upcoming")
        assert "Unlinked" in await direct("unlink")
        asked = await direct("link")
        assert "Your code: " in asked and "send link" in asked, asked
    finally:
        await store.batcher.stop()
        await store.db.close()


@BOTH_DATABASES
async def test_two_accounts_with_different_names_both_stay_known_without_a_look_up(two: TwoPlatforms) -> None:
    """Alice is "Alice D" on Discord and "alice" on Matrix. Once linked and each seen, both accounts are the
    same member to the store's cache with no I/O (what the vote path uses), however often they alternate; a
    rename is still taken."""
    store = two.app.store
    discord = dataclasses.replace(two.user("discord", "alice"), name="Alice D")
    matrix = two.user("matrix", "alice")
    asked = await two.app.dispatch(Invocation(discord, ChannelRef("discord", CHANNEL), two.clock.now(), text="link"))
    assert asked is None
    (code,) = CODE.findall(two.discord.render(two.discord.replies[-1][1]))
    assert "Linked" in await two.say("matrix", "alice", f"link {code}")
    person = await store.ensure_member(discord)
    assert await store.ensure_member(matrix) == person
    for _ in range(3):
        assert store.known_member(discord) == person and store.known_member(matrix) == person
    assert store.known_member(dataclasses.replace(matrix, name="Alice M")) is None  # renamed: looked up
    assert await store.ensure_member(dataclasses.replace(matrix, name="Alice M")) == person
    assert store.known_member(discord) == person


async def test_linked_accounts_are_copied_to_postgresql_whatever_order_their_members_came_in(
        tmp_path: Path, clock: FakeClock, postgres: PostgresServer) -> None:
    """`circlebot db copy`: a linked account refers to its person's member, which may be newer than it (alice's
    Matrix account was seen first, her Discord account asked for the code). The copy keeps the link: on
    PostgreSQL she is still one voter, and still linked."""
    sqlite = str(tmp_path / "circlebot.sqlite3")
    bot, store = await open_two(tmp_path, sqlite, clock)
    try:
        poll = number_after("poll", (await bot.say("matrix", "olga", 'poll "Where?" "Here" "There"')).text)
        await bot.say("matrix", "alice", f"vote {poll} 2")  # her Matrix account: the older member
        assert "Linked" in await bot.link("alice", first="discord", then="matrix")
    finally:
        await store.batcher.stop()
        await store.db.close()
    target = await postgres.fresh_schema()
    source, copy = await Database.open(sqlite), await Database.open(target)
    try:
        await copy_database(source, copy)
    finally:
        await source.close()
        await copy.close()
    bot, store = await open_two(tmp_path / "pg", target, clock)
    try:
        await bot.say("discord", "alice", f"vote {poll} 1")
        shown = await bot.say("matrix", "olga", f"poll results {poll}")
        assert "(open, 1 voter)" in shown and "1. Here: 1" in shown, shown
        assert "already" in await bot.link("alice")
    finally:
        await store.batcher.stop()
        await store.db.close()

"""Tests that prove tests/fakediscord.py with a bare, unmodified discord.py client."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import discord
import pytest
from discord import app_commands

from fakediscord import (  # noqa: F401
    MANAGE_GUILD,
    FakeChannel,
    FakeDiscord,
    FakeGuild,
    FakeMember,
    fake_discord_fixture,
    make_client,
    running_client,
    start_client,
    stop_client,
)

pytestmark = pytest.mark.timeout(10)


async def test_login_ready_guild_available(fake_discord: FakeDiscord) -> None:
    """Login, READY, GUILD_CREATE: the guild becomes available with channels and members."""
    guild = fake_discord.add_guild("Circle")
    general = guild.add_text_channel("general")
    alice = fake_discord.add_member(guild, "alice", permissions=MANAGE_GUILD)
    client = make_client()
    available: list[discord.Guild] = []

    @client.event
    async def on_guild_available(g: discord.Guild) -> None:
        available.append(g)

    async with running_client(fake_discord, client):
        assert client.user is not None and client.user.id == fake_discord.bot.id
        assert client.application_id == fake_discord.app_id
        g = client.get_guild(guild.id)
        assert g is not None and g.name == "Circle"
        assert [c.name for c in g.text_channels] == ["general"]
        assert g.get_channel(general.id) is not None
        member = g.get_member(alice.id)
        assert member is not None and member.guild_permissions.manage_guild
        assert g.member_count == len(g.members) == 3
        assert g.me is not None
        assert [x.id for x in available] == [guild.id]
        # Without the presences intent GUILD_CREATE carries only the bot; the client chunked (op 8).
        assert any(f["op"] == 8 for f in fake_discord.gateway_received)
        # The client's first heartbeat was ACKed.
        await fake_discord.wait_for(lambda: client.latency != float("inf"))
    fake_discord.assert_clean()


async def test_bad_token_is_login_failure(fake_discord: FakeDiscord) -> None:
    """GET /users/@me with a wrong token answers 401, which discord.py turns into LoginFailure."""
    client = make_client()
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()
    assert fake_discord.find_requests("GET", "/users/@me")[0].status == 401


async def test_unknown_route_is_recorded(fake_discord: FakeDiscord) -> None:
    """An unknown route answers a JSON 404 (NotFound) and is recorded."""
    fake_discord.add_guild("Circle")
    client = make_client()
    async with running_client(fake_discord, client):
        with pytest.raises(discord.NotFound):
            await client.http.request(discord.http.Route("GET", "/nowhere/{x}", x=1))
    assert [(r.method, r.path) for r in fake_discord.unknown_requests] == [("GET", "/nowhere/1")]


def _guild_with_people(fake: FakeDiscord) -> tuple[FakeGuild, FakeChannel, FakeMember, FakeMember]:
    """A guild with #general, alice (Manage Guild) and bob."""
    guild = fake.add_guild("Circle")
    chan = guild.add_text_channel("general")
    alice = fake.add_member(guild, "alice", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    return guild, chan, alice, bob


async def test_tree_sync_registers_guild_commands(fake_discord: FakeDiscord) -> None:
    """tree.sync(guild=...) PUTs the guild's commands; the fake stores them with ids."""
    guild, _chan, _alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="ping", description="Ping", guild=discord.Object(guild.id))
    @app_commands.default_permissions(manage_guild=True)
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong")

    async with running_client(fake_discord, client):
        synced = await tree.sync(guild=discord.Object(guild.id))
        assert [c.name for c in synced] == ["ping"]
        stored = fake_discord.guild_commands[guild.id]
        assert stored[0]["name"] == "ping" and stored[0]["id"] == str(synced[0].id)
        assert stored[0]["default_member_permissions"] == str(MANAGE_GUILD)
        assert await tree.sync() == []  # global: nothing
        fetched = await tree.fetch_commands(guild=discord.Object(guild.id))
        assert [c.id for c in fetched] == [synced[0].id]
    fake_discord.assert_clean()


async def test_slash_command_typed_options_and_ephemeral_reply(fake_discord: FakeDiscord) -> None:
    """Options arrive typed (str, int, float, bool, Member); an ephemeral reply has flags 64."""
    guild, chan, alice, bob = _guild_with_people(fake_discord)
    client = make_client()
    tree = app_commands.CommandTree(client)
    got: dict[str, object] = {}

    @tree.command(name="rsvp", description="RSVP", guild=discord.Object(guild.id))
    async def rsvp(
        interaction: discord.Interaction,
        title: str,
        count: int,
        ratio: float,
        going: bool,
        who: discord.Member,
        note: str | None = None,
    ) -> None:
        got.update(title=title, count=count, ratio=ratio, going=going, who=who, note=note)
        got["user"] = interaction.user
        got["perms"] = interaction.permissions
        got["locale"] = interaction.locale
        await interaction.response.send_message(f"ok {title}", ephemeral=True)

    async with running_client(fake_discord, client):
        await tree.sync(guild=discord.Object(guild.id))
        inter = await fake_discord.slash(
            alice,
            chan,
            "rsvp",
            {"title": "Republic", "count": 3, "ratio": 0.5, "going": True, "who": bob},
            locale="de",
        )
        resp = await inter.wait_response()
    assert resp["type"] == 4
    assert resp["data"]["content"] == "ok Republic" and resp["data"]["flags"] == 64
    assert got["title"] == "Republic" and got["count"] == 3 and got["ratio"] == 0.5 and got["going"] is True
    assert got["note"] is None
    who = got["who"]
    assert isinstance(who, discord.Member) and who.id == bob.id
    user = got["user"]
    assert isinstance(user, discord.Member) and user.id == alice.id
    perms = got["perms"]
    assert isinstance(perms, discord.Permissions) and perms.manage_guild
    assert got["locale"] is discord.Locale.german
    assert inter.original is not None and inter.original["flags"] & 64
    assert fake_discord.channel_messages(chan) == []  # ephemeral: not a channel message
    callback = fake_discord.find_requests("POST", r"/interactions/\d+/.+/callback")[0]
    assert not callback.authorized and callback.query.get("with_response") in ("1", "true", "True")
    fake_discord.assert_clean()


async def test_subcommand_group_path(fake_discord: FakeDiscord) -> None:
    """A path "circle poll create" is sent as nested SUB_COMMAND_GROUP / SUB_COMMAND options."""
    guild, chan, alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    tree = app_commands.CommandTree(client)
    circle = app_commands.Group(name="circle", description="Circle")
    poll = app_commands.Group(name="poll", description="Polls", parent=circle)
    got: list[str] = []

    @poll.command(name="create", description="Create a poll")
    async def create(interaction: discord.Interaction, question: str) -> None:
        got.append(question)
        await interaction.response.send_message("created")

    tree.add_command(circle, guild=discord.Object(guild.id))
    async with running_client(fake_discord, client):
        await tree.sync(guild=discord.Object(guild.id))
        inter = await fake_discord.slash(alice, chan, "circle poll create", {"question": "When?"})
        resp = await inter.wait_response()
        msg = await fake_discord.next_message(chan)
    assert got == ["When?"]
    assert resp["type"] == 4 and msg["content"] == "created" and msg["webhook_id"] == str(fake_discord.app_id)
    opts = inter.payload["data"]["options"]
    assert opts[0]["type"] == 2 and opts[0]["options"][0]["type"] == 1
    assert opts[0]["options"][0]["options"] == [{"name": "question", "type": 3, "value": "When?"}]


async def test_defer_then_followups_and_edit(fake_discord: FakeDiscord) -> None:
    """defer() answers type 5; the first follow-up edits the loading message, later ones are new."""
    guild, chan, alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    tree = app_commands.CommandTree(client)

    @tree.command(name="slow", description="Slow", guild=discord.Object(guild.id))
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        first = await interaction.followup.send("done", wait=True)
        assert first.content == "done"
        await interaction.followup.send("only you", ephemeral=True)
        await interaction.edit_original_response(content="done!")

    async with running_client(fake_discord, client):
        await tree.sync(guild=discord.Object(guild.id))
        inter = await fake_discord.slash(alice, chan, "slow")
        resp = await inter.wait_response()
        followups = await inter.wait_followups(2)
        original = await inter.wait_original_edit()
    assert resp == {"type": 5}
    assert followups[0]["id"] == original["id"]  # the loading message, edited
    assert original["content"] == "done!" and not original["flags"] & 128
    assert followups[1]["content"] == "only you" and followups[1]["flags"] & 64
    assert [m["id"] for m in fake_discord.channel_messages(chan)] == [original["id"]]
    fake_discord.assert_clean()


async def test_autocomplete_round_trip(fake_discord: FakeDiscord) -> None:
    """An autocomplete interaction reaches the callback with the partial text; choices come back."""
    guild, chan, alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    tree = app_commands.CommandTree(client)
    readings = ["plato-republic", "plotinus-enneads", "kant-critique"]

    async def reading_ac(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=r, value=r) for r in readings if r.startswith(current)]

    @tree.command(name="read", description="Read", guild=discord.Object(guild.id))
    @app_commands.autocomplete(reading=reading_ac)
    async def read(interaction: discord.Interaction, reading: str, week: int = 1) -> None:
        await interaction.response.send_message(reading)

    async with running_client(fake_discord, client):
        await tree.sync(guild=discord.Object(guild.id))
        inter = await fake_discord.autocomplete(alice, chan, "read", "reading", {"reading": "pl", "week": 2})
        resp = await inter.wait_response()
    assert resp["type"] == 8
    assert [c["value"] for c in resp["data"]["choices"]] == ["plato-republic", "plotinus-enneads"]
    focused = [o for o in inter.payload["data"]["options"] if o.get("focused")]
    assert focused == [{"name": "reading", "type": 3, "value": "pl", "focused": True}]
    fake_discord.assert_clean()


async def test_poll_votes_end_and_voters(fake_discord: FakeDiscord) -> None:
    """A poll gets answer ids; votes arrive as raw events; end_poll finalizes; voters() pages."""
    guild, chan, alice, bob = _guild_with_people(fake_discord)
    carol = fake_discord.add_member(guild, "carol")
    client = make_client()
    raw: list[tuple[str, int, int]] = []
    cooked: list[tuple[str, int, int]] = []

    @client.event
    async def on_raw_poll_vote_add(p: discord.RawPollVoteActionEvent) -> None:
        raw.append(("add", p.user_id, p.answer_id))

    @client.event
    async def on_raw_poll_vote_remove(p: discord.RawPollVoteActionEvent) -> None:
        raw.append(("remove", p.user_id, p.answer_id))

    @client.event
    async def on_poll_vote_add(user: discord.Member, answer: discord.PollAnswer) -> None:
        cooked.append(("add", user.id, answer.id))

    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        poll = discord.Poll(question="Next reading?", duration=timedelta(hours=24))
        poll.add_answer(text="Plato")
        poll.add_answer(text="Kant")
        msg = await channel.send(poll=poll)
        assert msg.poll is not None and [a.id for a in msg.poll.answers] == [1, 2]
        assert msg.poll.expires_at is not None
        sent = fake_discord.find_requests("POST", r"/channels/\d+/messages")[0].json
        assert sent["poll"]["duration"] == 24 and sent["poll"]["answers"][1]["poll_media"]["text"] == "Kant"

        await fake_discord.vote(alice, msg.id, 1)
        await fake_discord.vote(bob, msg.id, 1)
        await fake_discord.vote(carol, msg.id, 2)
        await fake_discord.unvote(bob, msg.id, 1)
        await fake_discord.wait_for(lambda: len(raw) == 4)
        assert raw == [("add", alice.id, 1), ("add", bob.id, 1), ("add", carol.id, 2), ("remove", bob.id, 1)]
        await fake_discord.wait_for(lambda: len(cooked) == 3)

        fetched = await channel.fetch_message(msg.id)
        assert fetched.poll is not None
        voters = [u.id async for u in fetched.poll.get_answer(1).voters()]  # type: ignore[union-attr]
        assert voters == [alice.id]
        assert fetched.poll.get_answer(2).vote_count == 1  # type: ignore[union-attr]

        ended = await msg.end_poll()
        assert ended.poll is not None and ended.poll.is_finalized()
        assert fake_discord.polls[msg.id].finalized
        with pytest.raises(ValueError):
            await fake_discord.vote(bob, msg.id, 1)
    fake_discord.assert_clean()


async def test_voters_paging(fake_discord: FakeDiscord) -> None:
    """GET .../answers/{id} pages with after/limit; PollAnswer.voters() walks all pages."""
    guild, chan, _alice, _bob = _guild_with_people(fake_discord)
    people = [fake_discord.add_member(guild, f"user{i}") for i in range(130)]
    client = make_client()
    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        poll = discord.Poll(question="Q?", duration=timedelta(hours=1))
        poll.add_answer(text="yes")
        msg = await channel.send(poll=poll)
        for p in people:
            await fake_discord.vote(p, msg.id, 1)
        fetched = await channel.fetch_message(msg.id)
        answer = fetched.poll.get_answer(1)  # type: ignore[union-attr]
        assert answer is not None and answer.vote_count == 130
        ids = {u.id async for u in answer.voters()}
    assert ids == {p.id for p in people}
    pages = fake_discord.find_requests("GET", r"/channels/\d+/polls/\d+/answers/1")
    assert len(pages) == 2 and pages[1].query["after"]


async def test_persistent_view_button_click(fake_discord: FakeDiscord) -> None:
    """A persistent view (timeout=None, fixed custom_id, add_view) handles clicks, incl. edit_message."""
    _guild, chan, alice, _bob = _guild_with_people(fake_discord)
    clicks: list[int] = []

    class RsvpView(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Going", custom_id="rsvp:going", style=discord.ButtonStyle.success)
        async def going(self, interaction: discord.Interaction, button: discord.ui.Button[RsvpView]) -> None:
            clicks.append(interaction.user.id)
            await interaction.response.send_message("noted", ephemeral=True)

        @discord.ui.button(label="Count", custom_id="rsvp:count")
        async def count(self, interaction: discord.Interaction, button: discord.ui.Button[RsvpView]) -> None:
            await interaction.response.edit_message(content=f"{len(clicks)} going")

    client = make_client()
    async with running_client(fake_discord, client):
        client.add_view(RsvpView())
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("RSVP here", view=RsvpView())
        stored = fake_discord.get_message(msg.id)
        assert stored["components"][0]["components"][0]["custom_id"] == "rsvp:going"

        inter = await fake_discord.click(alice, msg.id, "rsvp:going")
        resp = await inter.wait_response()
        assert resp["type"] == 4 and resp["data"]["flags"] == 64 and clicks == [alice.id]

        inter2 = await fake_discord.click(alice, msg.id, "rsvp:count")
        resp2 = await inter2.wait_response()
        assert resp2["type"] == 7
        assert fake_discord.get_message(msg.id)["content"] == "1 going"
    fake_discord.assert_clean()


async def test_thread_on_message(fake_discord: FakeDiscord) -> None:
    """message.create_thread() makes a type-11 channel (id = message id) and THREAD_CREATE."""
    _guild, chan, _alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    created: list[discord.Thread] = []

    @client.event
    async def on_thread_create(thread: discord.Thread) -> None:
        created.append(thread)

    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("Week 1: Republic")
        thread = await msg.create_thread(name="Week 1 discussion", auto_archive_duration=1440)
        assert thread.id == msg.id and thread.type is discord.ChannelType.public_thread
        assert thread.parent_id == chan.id
        await fake_discord.wait_for(lambda: created)
        sent = await thread.send("First question")
        assert sent.channel.id == thread.id
        assert (await fake_discord.next_message(thread.id))["content"] == "First question"
    fake_discord.assert_clean()


async def test_rate_limit_is_retried(fake_discord: FakeDiscord) -> None:
    """Two 429s (with Via and X-RateLimit-* headers) are retried after retry_after; then it works."""
    _guild, chan, _alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        fake_discord.rate_limit("POST", r"/channels/\d+/messages", count=2, retry_after=0.02)
        msg = await channel.send("hello")
        assert msg.content == "hello"
    statuses = [r.status for r in fake_discord.find_requests("POST", r"/channels/\d+/messages")]
    assert statuses == [429, 429, 200]
    assert len(fake_discord.channel_messages(chan)) == 1


async def test_a_repeated_nonce_returns_the_first_message(fake_discord: FakeDiscord) -> None:
    """discord.py's send(nonce=...) sets enforce_nonce: the same nonce from the same author returns the message
    already created (as Create Message documents); another nonce creates one (discord.py sends a random nonce
    when given none); over 25 chars is a 400."""
    _guild, chan, _alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        first = await channel.send("Reading for Thursday", nonce="n" * 25)
        again = await channel.send("Reading for Thursday", nonce="n" * 25)
        other = await channel.send("Reading for Thursday", nonce="other")
        plain = await channel.send("Reading for Thursday")
        assert again.id == first.id and len({first.id, other.id, plain.id}) == 3
        assert all(r.json["enforce_nonce"] for r in fake_discord.find_requests("POST", r"/channels/\d+/messages"))
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x", nonce="n" * 26)
        assert too_long.value.code == 50035
        fake_discord.nonce_window = 0  # outside Discord's few minutes, the nonce is not checked any more
        late = await channel.send("Reading for Thursday", nonce="n" * 25)
        assert late.id != first.id
    assert len(fake_discord.channel_messages(chan)) == 4
    fake_discord.assert_clean()


async def test_an_outage_answers_503(fake_discord: FakeDiscord) -> None:
    _guild, chan, _alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        fake_discord.outage("POST", r"/channels/\d+/messages")
        with pytest.raises(discord.DiscordServerError):
            await channel.send("hello")
        fake_discord.end_outage()
        assert (await channel.send("hello")).content == "hello"
    assert len(fake_discord.channel_messages(chan)) == 1


async def test_reconnect_resumes_and_replays(fake_discord: FakeDiscord) -> None:
    """RECONNECT (op 7) → RESUME on resume_gateway_url; a dispatch made meanwhile is replayed."""
    _guild, chan, alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    seen: list[str] = []
    resumed = asyncio.Event()

    @client.event
    async def on_message(message: discord.Message) -> None:
        seen.append(message.content)

    @client.event
    async def on_resumed() -> None:
        resumed.set()

    async with running_client(fake_discord, client):
        assert await fake_discord.force_reconnect() == 1
        await fake_discord.post_message(alice, chan, "while away")
        await fake_discord.wait_resumed()
        await asyncio.wait_for(resumed.wait(), 5)
        await fake_discord.wait_for(lambda: "while away" in seen)
        assert fake_discord.identify_count == 1
        assert fake_discord.gateway_paths == ["/gateway", "/resume-gateway"]

        # Drop the socket from the server side while holding new connections: also resumed.
        fake_discord.hold_gateway()
        await fake_discord.drop_connections()
        await fake_discord.post_message(alice, chan, "during outage")
        fake_discord.release_gateway()
        await fake_discord.wait_resumed(2)
        await fake_discord.wait_for(lambda: "during outage" in seen)
        assert fake_discord.identify_count == 1
    assert seen.count("while away") == 1 and seen.count("during outage") == 1


async def test_intents_filter_content_and_poll_votes(fake_discord: FakeDiscord) -> None:
    """Without message_content others' content is empty (except mentions); without polls no votes."""
    _guild, chan, alice, _bob = _guild_with_people(fake_discord)
    intents = discord.Intents.default()
    intents.message_content = False
    intents.polls = False
    client = make_client(intents=intents)
    contents: list[str] = []
    votes: list[int] = []

    @client.event
    async def on_message(message: discord.Message) -> None:
        contents.append(message.content)

    @client.event
    async def on_raw_poll_vote_add(p: discord.RawPollVoteActionEvent) -> None:
        votes.append(p.user_id)

    async with running_client(fake_discord, client):
        assert client.user is not None
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        await fake_discord.post_message(alice, chan, "secret plans")
        await fake_discord.post_message(alice, chan, f"hey {client.user.mention}")
        poll = discord.Poll(question="Q?", duration=timedelta(hours=1))
        poll.add_answer(text="yes")
        msg = await channel.send("mine", poll=poll)
        await fake_discord.vote(alice, msg.id, 1)
        await fake_discord.post_message(alice, chan, "last")
        await fake_discord.wait_for(lambda: len(contents) == 4)
    assert contents == ["", f"hey {fake_discord.bot.mention}", "mine", ""]
    assert votes == []
    frames = [f for s in fake_discord.sessions.values() for f in s.history]
    assert not [f for f in frames if f["t"] == "MESSAGE_POLL_VOTE_ADD"]
    assert fake_discord.polls[msg.id].votes[1] == [alice.id]


async def test_allowed_mentions_recorded(fake_discord: FakeDiscord) -> None:
    """allowed_mentions is sent as given and the fake resolves mentions by it."""
    _guild, chan, alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        text = f"@everyone read this {alice.user.mention}"
        quiet = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        loud = await channel.send(text)
    posts = fake_discord.find_requests("POST", r"/channels/\d+/messages")
    assert posts[0].json["allowed_mentions"] == {"parse": []}
    assert "allowed_mentions" not in posts[1].json or posts[1].json["allowed_mentions"]["parse"]
    assert quiet.mentions == [] and not quiet.mention_everyone
    assert [u.id for u in loud.mentions] == [alice.id] and loud.mention_everyone


async def test_privileged_intent_not_enabled(fake_discord: FakeDiscord) -> None:
    """IDENTIFY asking for a privileged intent the app lacks is closed with 4014."""
    fake_discord.enabled_privileged_intents = 0
    client = make_client()  # asks for members + message_content
    with pytest.raises(discord.PrivilegedIntentsRequired):
        task = await start_client(fake_discord, client, timeout=3)
        await stop_client(client, task)


async def test_files_upload_as_multipart_attachments(fake_discord: FakeDiscord) -> None:
    """discord.py's send(file=...) is a multipart/form-data body: `payload_json` with `attachments` naming
    `files[n]` parts (discord-api-docs, Reference, Uploading Files). The message gets Attachment objects with
    the bytes kept; an entry naming no part, or a part without a filename, is a 400; over 10 MiB a 413."""
    import io

    import aiohttp

    _guild, chan, _alice, _bob = _guild_with_people(fake_discord)
    client = make_client()
    async with running_client(fake_discord, client):
        channel = client.get_channel(chan.id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("the record", file=discord.File(io.BytesIO(b"a,b\r\n1,2\r\n"), "record.csv"))
        assert [(a.filename, a.size) for a in sent.attachments] == [("record.csv", 10)]
        only_file = await channel.send(file=discord.File(io.BytesIO(b"x"), "x.txt"))  # no content: fine
        assert only_file.attachments and only_file.content == ""
        with pytest.raises(discord.HTTPException) as big:
            await channel.send(file=discord.File(io.BytesIO(b"0" * (10 * 1024 * 1024 + 1)), "big.bin"))
        assert big.value.status == 413 and big.value.code == 40005
    att = fake_discord.channel_messages(chan)[0]["attachments"][0]
    assert att["content_type"] == "text/csv" and att["url"].endswith("/record.csv") and att["proxy_url"]
    assert fake_discord.attachment_data[int(att["id"])] == b"a,b\r\n1,2\r\n"

    url = f"{fake_discord.api_base}/channels/{chan.id}/messages"
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("payload_json", '{"content": "x", "attachments": [{"id": 1, "filename": "a.csv"}]}',
                       content_type="application/json")
        form.add_field("files[0]", b"a", filename="a.csv")
        async with http.post(url, data=form, headers=headers) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50035  # files[1] was never uploaded
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("payload_json", '{"content": "x"}', content_type="application/json")
        form.add_field("files[0]", "a")  # a plain text field: no filename
        async with http.post(url, data=form, headers=headers) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50035
    assert len(fake_discord.channel_messages(chan)) == 2

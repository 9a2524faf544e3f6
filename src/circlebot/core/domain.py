"""Plain values shared by the core and every adapter.

Adapters turn platform events into these values and these values back into platform messages; nothing in here
knows about Discord, Matrix or the terminal.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from circlebot.core.text import Text, TimeValue


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person on one platform: `id` is stable, `name` is what to show."""

    platform: str
    id: str
    name: str = ""

    @property
    def display(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """Where a circle lives on one platform: a Discord channel, a Matrix room, a console window."""

    platform: str
    id: str


DIRECT = "direct:"  # a ChannelRef id with this prefix is a member's direct conversation with the bot


def direct_channel(user: UserRef) -> ChannelRef:
    """Where a post meant for one member alone goes: their direct conversation with the bot on their platform
    (a Matrix direct-message room, a Discord DM, the console with "only ... sees this"). Room, channel and
    circle ids never start with the prefix, so an adapter's `send` can tell."""
    return ChannelRef(user.platform, DIRECT + user.id)


def direct_recipient(where: ChannelRef) -> str | None:
    """The member's platform id if `where` is a direct conversation (`direct_channel`), else None."""
    return where.id[len(DIRECT):] if where.id.startswith(DIRECT) else None


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message the bot sent, as the platform names it."""

    channel: ChannelRef
    id: str


@dataclass(frozen=True, slots=True)
class Authority:
    """What the platform says about a user's standing, for the core's permission check.

    Discord fills `roles` and `manages_server`; Matrix fills `power_level`. The core decides.
    """

    roles: frozenset[str] = frozenset()
    power_level: int | None = None
    manages_server: bool = False


class RsvpAnswer(enum.StrEnum):
    YES = "yes"
    MAYBE = "maybe"
    NO = "no"


@dataclass(frozen=True, slots=True)
class Invocation:
    """A command from chat.

    Text adapters fill `text` (the words after the prefix); structured adapters (Discord slash commands) fill
    `path` and `options` instead. `handle` is the adapter's own object for answering (an interaction, an
    event id); the core never looks inside it. `direct`: sent in a direct conversation with the bot rather than
    in a circle's channel (a vote in a secret poll, unseen by the room); the core finds the circle it is for.
    """

    user: UserRef
    channel: ChannelRef
    at: datetime
    text: str | None = None
    path: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    authority: Authority = Authority()
    handle: Any = None
    direct: bool = False


class VoteChange(enum.StrEnum):
    """How a VoteCast changes the user's ballot: replace it (Matrix, chat), or add / remove one answer
    (Discord sends one event per answer)."""

    SET = "set"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class VoteCast:
    """A vote in a poll: by the core's poll id, or by the platform message that carries the poll.

    `answers` are 0-based answer indices; with `change=SET` an empty tuple withdraws the vote.
    """

    user: UserRef
    answers: tuple[int, ...]
    at: datetime
    poll_id: int | None = None
    message: MessageRef | None = None
    change: VoteChange = VoteChange.SET


@dataclass(frozen=True, slots=True)
class RsvpCast:
    """An RSVP from a button or a reaction on a meeting's post; `answer=None` withdraws it."""

    user: UserRef
    answer: RsvpAnswer | None
    at: datetime
    meeting_id: int | None = None
    message: MessageRef | None = None


@dataclass(frozen=True, slots=True)
class ProgressCast:
    """How much of a meeting's reading a member read ("all", "part" or "not"), from a button on the reading's
    post; answered to the member alone, as the `read` command is."""

    user: UserRef
    answer: str
    at: datetime
    meeting_id: int
    message: MessageRef | None = None


@dataclass(frozen=True, slots=True)
class CheckInCast:
    """A check-in from a button or a reaction on a meeting's questions post."""

    user: UserRef
    at: datetime
    meeting_id: int | None = None
    message: MessageRef | None = None


@dataclass(frozen=True, slots=True)
class PollEndCast:
    """A poll ended on the platform itself (a Matrix moderator ending it in Element). The core closes it
    everywhere only if `user` is an organiser by the circle's rule (`authority` as for a command)."""

    user: UserRef
    at: datetime
    message: MessageRef
    authority: Authority = Authority()


@dataclass(frozen=True, slots=True)
class PollReadBack:
    """Everything a platform's native poll at `message` holds now, read back after the bot was away: one
    `VoteCast` (change SET) per voter with their current native ballot. A member of that platform missing
    from `ballots` has no native vote there (withdrawn, or their responses redacted).

    `timed`: the ballots carry the time they were cast (Matrix); otherwise (Discord) their `at` is the time
    of reading, and only a change from the native ballot last seen counts as a new vote."""

    message: MessageRef
    ballots: tuple[VoteCast, ...]
    at: datetime
    timed: bool


Event = Invocation | VoteCast | RsvpCast | ProgressCast | CheckInCast | PollEndCast | PollReadBack


class Control(enum.StrEnum):
    """Interactive controls a post may carry where the platform has them (buttons, reactions)."""

    RSVP = "rsvp"
    CHECK_IN = "check_in"
    READ = "read"  # how much of the reading one read: buttons only, where the answer can be private


@dataclass(frozen=True, slots=True)
class Post:
    """Something the bot says: light Markdown with structured parts (times, commands; see `circlebot.core.text`),
    rendered by each adapter for its platform. User text inside it is only ever text.

    `mentions` are people the post is meant to notify; `meeting_id` and `controls` let adapters attach RSVP
    or check-in buttons/reactions; `thread_of` puts the post in a thread on that message where there are any.
    """

    text: Text | str
    mentions: tuple[UserRef, ...] = ()
    notify: bool = False
    meeting_id: int | None = None
    controls: tuple[Control, ...] = ()
    thread_of: MessageRef | None = None

    @property
    def content(self) -> Text:
        """The post's text as a `Text`, whichever way it was given."""
        return Text.of(self.text)


def post_to_json(post: Post) -> str:
    """A post as stored for every process to send the same (a post decided once: the RSVP deadline's, the
    nudge): JSON of its text's segments (`Text.to_data`), mentions, controls and the rest, in plain ASCII
    whatever users typed into it. `post_from_json` reads it back."""
    thread = post.thread_of
    return json.dumps({
        "text": post.content.to_data(),
        "mentions": [[u.platform, u.id, u.name] for u in post.mentions],
        "notify": post.notify,
        "meeting_id": post.meeting_id,
        "controls": [c.value for c in post.controls],
        "thread_of": None if thread is None else [thread.channel.platform, thread.channel.id, thread.id],
    }, separators=(",", ":"))


def post_from_json(stored: str) -> Post:
    """The post `post_to_json` wrote (its text a `Text`); raises ValueError ("not a stored post: ...") naming
    what is wrong. Keys it does not know are left alone (written by a newer circlebot)."""
    try:
        data = json.loads(stored)
    except ValueError as e:
        raise ValueError(f"not a stored post: not JSON ({e})") from None
    try:
        if not isinstance(data, dict) or "text" not in data:
            raise ValueError("a post is an object with its 'text'")
        text = Text.from_data(data["text"])
        mentions = data.get("mentions", [])
        if not isinstance(mentions, list) or not all(_strings(m, 3) for m in mentions):
            raise ValueError("'mentions' is a list of [platform, id, name]")
        notify, meeting_id = data.get("notify", False), data.get("meeting_id")
        if not isinstance(notify, bool):
            raise ValueError("'notify' is true or false")
        if meeting_id is not None and (type(meeting_id) is not int):
            raise ValueError("'meeting_id' is a number or null")
        controls, known = data.get("controls", []), {k.value for k in Control}
        if not isinstance(controls, list) or not all(isinstance(c, str) and c in known for c in controls):
            raise ValueError(f"'controls' is a list of {', '.join(k.value for k in Control)}")
        thread = data.get("thread_of")
        if thread is not None and not _strings(thread, 3):
            raise ValueError("'thread_of' is [platform, channel, message id] or null")
    except ValueError as e:
        raise ValueError(f"not a stored post: {e}") from None
    return Post(text, tuple(UserRef(*m) for m in mentions), notify, meeting_id,
                tuple(Control(c) for c in controls),
                None if thread is None else MessageRef(ChannelRef(thread[0], thread[1]), thread[2]))


def _strings(value: object, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(isinstance(x, str) for x in value)


@dataclass(frozen=True, slots=True)
class FileUpload:
    """A file the bot hands someone (an organiser's CSV export): its name, media type and bytes. Each adapter
    delivers it its platform's way (`ChatAdapter.send_file`)."""

    name: str
    data: bytes
    media_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class PollSpec:
    """A poll as adapters need it to render a native poll. `vote_hint` is how to vote by command on the
    platform the poll is sent to (`!vote 3 <n>`, `/vote poll:3 answers:<n>`), written by the core."""

    id: int
    question: str
    answers: tuple[str, ...]
    multi: bool
    secret: bool
    closes_at: datetime | None
    vote_hint: str = ""

    def rules(self, secret_note: str | None = None) -> Text:
        """How the poll works, in a few words: "pick one; closes <time>" (a secret poll adds `secret_note`)."""
        rules: list[Text | str] = ["pick several" if self.multi else "pick one"]
        if self.secret and secret_note:
            rules.append(secret_note)
        if self.closes_at:
            rules.append("closes " + Text(TimeValue(self.closes_at)))
        return Text.join("; ", rules)


@dataclass(frozen=True, slots=True)
class PollResults:
    """Tallied results of a poll."""

    poll: PollSpec
    counts: tuple[int, ...]
    voters: int
    closed: bool

    def winners(self) -> tuple[int, ...]:
        top = max(self.counts, default=0)
        if top == 0:
            return ()
        return tuple(i for i, c in enumerate(self.counts) if c == top)

"""The Matrix adapter: circlebot in Matrix rooms, through matrix-nio. One purpose a module: `sync` (the loop,
back-fill, token), `commands`, `rooms` (standing, invitations, encrypted rooms), `direct` (DM rooms), `votes`
(polls and votes; `polls` holds the MSC3381 events), `reactions` (RSVP and check-in), `send` (contents, HTML,
chunks, transaction ids), `crypto` (end-to-end encryption: the crypto store, key chores, sealing), `client`
(nio settings, errors), `host` (what the parts share) and `adapter` (`MatrixAdapter`, all of them together).

What it does, in the order events flow:

* Syncs with a filter that asks for up to 100 timeline events per room, and back-fills with ``/messages`` when
  a sync is ``limited``, so a burst of votes or commands is never cut short. The sync token is kept in the
  store (``adapter_state``) after each sync is handled: a restart neither replays old commands nor misses what
  came while the bot was down. The very first start (no token) reads no history at all.
* Joins configured rooms when invited (others only with ``accept_invites``); ignores events from before its
  own join, its own events and every ``m.notice``.
* Commands start with the prefix (``!``); the text after it goes to the core as ``Invocation(text=...)``, with
  the sender's room power level in ``Authority`` (room creators of room version 12+ rank above any level).
* Answers are ``m.notice`` replies (``m.in_reply_to`` the command) with an HTML ``formatted_body`` (user text
  escaped) and a plain ``body``; reminders (``Post.notify``) are ``m.text`` with ``m.mentions``. Long posts are
  split. Private answers go to a direct-message room with the asker; the command gets a 📨 reaction.
* Polls are MSC3381 native polls (see :mod:`circlebot.adapters.matrix.polls`); votes are read from the
  timeline, and at every start from the relations of each open poll, so votes cast while the bot was down
  count.
* RSVP by ✅ ❔ ❌ reactions on a meeting post (removing the reaction removes the RSVP), check-in by a reaction
  on the questions post; the bot puts the reaction keys there itself.
* In end-to-end encrypted rooms (``encryption = true``, the default) everything above works encrypted: nio
  decrypts what comes, the bot seals what it sends (reactions too), room keys go to members' devices trusted
  on first use. The crypto store (the device's keys) is kept beside the database; the device stays the same
  across restarts.
* When the homeserver goes away the sync loop retries with backoff (capped) and carries on from its token.
"""

from __future__ import annotations

from circlebot.adapters.matrix.adapter import (
    MatrixAdapter,
    adapter_from_settings,
    rooms_from_settings,
)
from circlebot.adapters.matrix.client import PLATFORM, FatalMatrixError, MatrixError, client_config
from circlebot.adapters.matrix.commands import CommandEvent, parse_command
from circlebot.adapters.matrix.host import CREATOR_LEVEL, MatrixRoom
from circlebot.adapters.matrix.reactions import (
    CHECK_IN_KEY,
    RSVP_KEYS,
    RSVP_OFFERED,
    ReactionEvent,
    parse_reaction,
    parse_redaction,
)
from circlebot.adapters.matrix.send import CHUNK_CHARS, MAX_CONTENT_BYTES, PRIVATE_MARK, REPLY_TO_KEY
from circlebot.adapters.matrix.sync import STOP_GRACE, SYNC_FILTER

__all__ = [
    "CHECK_IN_KEY",
    "CHUNK_CHARS",
    "CREATOR_LEVEL",
    "MAX_CONTENT_BYTES",
    "PLATFORM",
    "PRIVATE_MARK",
    "REPLY_TO_KEY",
    "RSVP_KEYS",
    "RSVP_OFFERED",
    "STOP_GRACE",
    "SYNC_FILTER",
    "CommandEvent",
    "FatalMatrixError",
    "MatrixAdapter",
    "MatrixError",
    "MatrixRoom",
    "ReactionEvent",
    "adapter_from_settings",
    "client_config",
    "parse_command",
    "parse_reaction",
    "parse_redaction",
    "rooms_from_settings",
]

"""Native polls (MSC3381, events in `polls`): starting and ending them, votes read from the timeline and read
back from each open poll's relations at start, redacted responses, and ends sent from other clients."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from nio import RoomGetEventResponse
from nio.api import Api, MessageDirection, RelationshipType
from nio.responses import RoomEventRelationsResponse

from circlebot.adapters.matrix import polls
from circlebot.adapters.matrix.client import PLATFORM, MatrixError, _check, _source, _ts
from circlebot.adapters.matrix.host import Host, PendingVotes
from circlebot.adapters.matrix.sync import _BACKFILL_PAGES
from circlebot.adapters.render import plain_text
from circlebot.core.domain import (
    Authority,
    ChannelRef,
    MessageRef,
    PollEndCast,
    PollReadBack,
    PollResults,
    PollSpec,
    UserRef,
    VoteCast,
)
from circlebot.core.text import Text, named_time

log = logging.getLogger(__name__)


class Votes(Host):
    """Polls in rooms, and the votes on them."""

    # polls -----------------------------------------------------------------------------------------
    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        """Start an MSC3381 poll (disclosed, or undisclosed for a secret poll)."""
        zone = self._zone_of(where.id)
        lines: list[Text | str] = [f"Poll #{poll.id}: {poll.question}"]
        lines += [f"{i}. {a}" for i, a in enumerate(poll.answers, 1)]
        rules = poll.rules("results are shown when it closes (hidden by your client, not by the server)")
        how = poll.vote_hint or f"{self.prefix}vote {poll.id} <n>"
        lines.append("(" + rules + f") Vote here, or with {how}")
        if poll.secret:
            lines.append(f"To vote unseen, send {how} to me in a direct message (invite me to a direct chat).")
        fallback = Text.join("\n", lines).render(time=lambda t: named_time(t, zone), command=lambda c: c.words)
        question = poll.question + (" (secret until it closes)" if poll.secret else "")
        content = polls.start_content(poll, question, poll.answers, fallback)
        return MessageRef(where, await self._send_event(where.id, polls.START_UNSTABLE, content))

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        """End the poll with its results; responses after the end no longer count."""
        if await self._poll_end(ref.id) is not None:
            return  # ended in Matrix already: the core posts the results
        ending = self._ending.get(ref.id)
        if ending is not None:  # ended in Element by an organiser whose end clients honour: it is the end
            await self._note_poll_end(ending)
            return
        body = plain_text(text)
        end_id = await self._send_event(ref.channel.id, polls.END_UNSTABLE, polls.end_content(ref.id, body))
        resp = await self.client.room_get_event(ref.channel.id, end_id)
        if isinstance(resp, RoomGetEventResponse):
            ts = resp.event.source.get("origin_server_ts")
            if isinstance(ts, int):
                await self._note_poll_end(polls.PollEnd(end_id, self.user_id, ref.id, ts))


    async def _on_foreign_end(self, room_id: str, src: Mapping[str, Any]) -> None:
        """Someone ended one of our polls in their client: it counts if they may redact others' events."""
        end = polls.parse_end(src)
        if end is None or self._dispatch is None:
            return
        standing = await self._room_standing(room_id)
        level = standing.level(end.sender)
        if level >= standing.redact:  # clients honour this end (MSC3381): if the core closes the poll, it stands
            self._ending[end.start_id] = end
        user = UserRef(PLATFORM, end.sender, await self._display_name(room_id, end.sender))
        try:
            await self._dispatch(PollEndCast(user, _ts(end.ts), MessageRef(ChannelRef(PLATFORM, room_id),
                                                                           end.start_id),
                                             Authority(power_level=level)))
        finally:
            self._ending.pop(end.start_id, None)

    # votes -----------------------------------------------------------------------------------------
    async def _note_poll_end(self, end: polls.PollEnd) -> None:
        known = await self._poll_end(end.start_id)
        if known is None or end.ts < known:
            self._poll_ends[end.start_id] = end.ts
            await self._state.put("poll_end", end.start_id, str(end.ts), poll_message=end.start_id)

    async def _poll_end(self, start_id: str) -> int | None:
        if start_id not in self._poll_ends:
            value = await self._state.get("poll_end", start_id)
            self._poll_ends[start_id] = int(value) if value else None
        return self._poll_ends.get(start_id)

    async def _flush_votes(self, pending: PendingVotes) -> None:
        """Store gathered responses: per poll and user only the latest counts; those after the end are ignored."""
        by_poll: dict[tuple[str, str], list[polls.PollResponse]] = {}
        for room_id, r in pending.responses:
            by_poll.setdefault((room_id, r.start_id), []).append(r)
        casts: list[VoteCast] = []
        for (room_id, start_id), responses in by_poll.items():
            end = await self._poll_end(start_id)
            for r in responses:
                self._responses[r.event_id] = (room_id, start_id)
            for r in polls.latest_per_user(responses, end).values():
                name = self._names.get((room_id, r.sender), "")
                casts.append(VoteCast(UserRef(PLATFORM, r.sender, name), r.answers, _ts(r.ts),
                                      message=MessageRef(ChannelRef(PLATFORM, room_id), start_id)))
        try:
            await self._cast(casts)  # NotStored: not marked, so the sync comes again with them
            for _, r in pending.responses:
                self._done(r.event_id)
        finally:
            pending.responses.clear()

    async def _cast(self, casts: Sequence[VoteCast]) -> None:
        if self._dispatch is not None and casts:
            await self._dispatch(list(casts))  # a batch: the core stores the lot in one transaction

    async def _read_back_open_polls(self) -> None:
        """Count the votes of every open poll from its relations: what came while the bot was away counts."""
        circles = {r.circle for r in self._rooms.values()}
        for poll in await self._lookups.open_polls():
            if poll.circle in circles:
                try:
                    await self._read_back(poll.message.channel.id, poll.message.id)
                except MatrixError as e:
                    log.warning("matrix: cannot read back the votes of poll %d (%s)", poll.poll_id, e)

    async def _read_back(self, room_id: str, start_id: str) -> None:
        """Set the poll's Matrix ballots to what its relations hold now: each user's latest response before its
        end. Synapse drops a redacted response from the relations, so a redaction gives back the one before."""
        events: list[dict[str, Any]] = []
        since: str | None = None
        complete = False
        for _ in range(_BACKFILL_PAGES):
            method, path = Api.room_get_event_relations(self.client.access_token, room_id, start_id,
                                                        RelationshipType.reference, None, MessageDirection.back,
                                                        since, None, 100)
            resp = _check(await self.client._send(RoomEventRelationsResponse, method, path,
                                                  response_data=(room_id, start_id)),
                          RoomEventRelationsResponse, f"read the relations of {start_id}")
            events.extend(s for s in (_source(self._readable(e)) for e in resp.events) if s)  # nio: not decrypted
            if not resp.next_batch:
                complete = True
                break
            since = resp.next_batch
        events.reverse()
        for src in events:
            end = polls.parse_end(src)
            if end is not None and end.sender == self.user_id:
                await self._note_poll_end(end)
        responses = [r for src in events if (r := polls.parse_response(src)) is not None]
        for r in responses:
            self._responses[r.event_id] = (room_id, start_id)
        ref = MessageRef(ChannelRef(PLATFORM, room_id), start_id)
        latest = polls.latest_per_user(responses, await self._poll_end(start_id))
        ballots = tuple(VoteCast(UserRef(PLATFORM, r.sender, self._names.get((room_id, r.sender), "")), r.answers,
                                 _ts(r.ts), message=ref) for r in latest.values())
        log.info("matrix: read back %d response(s) to poll %s", len(responses), start_id)
        if not complete:  # too many to read back: count what was read, withdraw nothing
            log.warning("matrix: read back only the latest %d responses to poll %s", len(responses), start_id)
            await self._cast(ballots)
        elif self._dispatch is not None:
            await self._dispatch(PollReadBack(ref, ballots, datetime.now(UTC), timed=True))

    async def _on_response_redacted(self, room_id: str, event_id: str) -> None:
        """If the redacted event was a poll response, read the poll back: the user's previous response counts
        again (as MSC3381 and Element have it), or none if it was their only one."""
        known = self._responses.get(event_id)
        if known is not None:
            await self._read_back(*known)
            return
        resp = await self.client.room_get_event(room_id, event_id)  # not remembered: is it a response at all?
        if not isinstance(resp, RoomGetEventResponse) or resp.event.source.get("type") not in polls.RESPONSE_TYPES:
            return
        room = self._rooms.get(room_id)
        if room is None:
            return
        for poll in await self._lookups.open_polls():
            if poll.circle == room.circle and poll.message.channel == ChannelRef(PLATFORM, room_id):
                await self._read_back(room_id, poll.message.id)

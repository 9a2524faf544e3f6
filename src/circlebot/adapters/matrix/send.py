"""Sending: a post as Matrix event contents (HTML and plain body, mentions, chunks under the size limit), with
transaction ids for resends; replies, threads and private answers by direct message."""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from nio import RoomGetStateEventResponse, RoomSendResponse, UploadResponse
from nio.api import Api

from circlebot.adapters.matrix.client import PLATFORM, _check
from circlebot.adapters.matrix.host import Handle, Host
from circlebot.adapters.render import named_markdown, plain_text, split_text, to_html
from circlebot.core.adapter import DirectRefused, idempotency_token
from circlebot.core.domain import ChannelRef, FileUpload, Invocation, MessageRef, Post, UserRef

#: Events are limited to 65,536 bytes as a whole; keep the content well under it.
MAX_CONTENT_BYTES = 60_000
CHUNK_CHARS = 8000
PRIVATE_MARK = "📨"
#: Where a private answer sent by DM says which command it answers (a namespaced key; clients ignore it).
REPLY_TO_KEY = "ci.circlebot.reply_to"


class Send(Host):
    """The adapter's sends: posts, replies, reactions."""

    # sending ---------------------------------------------------------------------------------------
    def _zone_of(self, room_id: str) -> ZoneInfo:
        room = self._rooms.get(room_id)
        return room.zone if room else self._zone

    async def _send_event(self, room_id: str, kind: str, content: dict[str, Any], txn: str | None = None) -> str:
        """Send one event, encrypted in an encrypted room (reactions too, which nio's ``room_send`` leaves in
        clear); with a transaction id, a repeat (same device, same id) returns the first event."""
        sent_as, body = await self._seal(room_id, kind, content)
        method, path, data = Api.room_send(self.client.access_token, room_id, sent_as, body, txn or uuid4())
        resp = await self.client._send(RoomSendResponse, method, path, data, (room_id,))
        return _check(resp, RoomSendResponse, f"send {kind} to {room_id}").event_id  # type: ignore[no-any-return]

    def _contents(self, text: str, post: Post, relates: dict[str, Any] | None,
                  extra: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        notify = post.notify
        mentions = [u for u in post.mentions if u.platform == PLATFORM]
        out: list[dict[str, Any]] = []
        pending = split_text(text, CHUNK_CHARS) or [""]
        while pending:
            chunk = pending.pop(0)
            head_plain = head_html = ""
            if mentions and not out:
                head_plain = ", ".join(u.display for u in mentions) + ": "
                head_html = ", ".join(
                    f'<a href="https://matrix.to/#/{_html_attr(u.id)}">{_html_text(u.display)}</a>' for u in mentions
                ) + ": "
            content: dict[str, Any] = {
                "msgtype": "m.text" if notify else "m.notice",
                "body": head_plain + plain_text(chunk),
                "format": "org.matrix.custom.html",
                "formatted_body": head_html + to_html(chunk),
                "m.mentions": {"user_ids": [u.id for u in mentions]} if notify and mentions else {},
            }
            if relates:
                content["m.relates_to"] = relates
            if extra:
                content.update(extra)
            if len(json.dumps(content, ensure_ascii=False).encode()) > MAX_CONTENT_BYTES and len(chunk) > 100:
                pending[:0] = split_text(chunk, max(100, len(chunk) // 2))
                continue
            out.append(content)
        return out

    async def _send_post(self, room_id: str, post: Post, zone: ZoneInfo, relates: dict[str, Any] | None = None,
                         extra: Mapping[str, Any] | None = None, key: str | None = None) -> list[str]:
        if post.thread_of is not None and relates is None:
            relates = {"rel_type": "m.thread", "event_id": post.thread_of.id, "is_falling_back": True,
                       "m.in_reply_to": {"event_id": post.thread_of.id}}
        text = named_markdown(post.content, zone, self.prefix)
        return [await self._send_event(room_id, "m.room.message", c, _txn(key, f"chunk{i}"))
                for i, c in enumerate(self._contents(text, post, relates, extra))]

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Post into a room; a post with RSVP or check-in controls gets the reaction keys to click.

        With `key`, every event of the post (its chunks, its reactions) goes with a transaction id derived from
        it, so sending the post again after a crash returns the events already in the room and adds what was
        missing (Synapse remembers transaction ids for a day: `dedup_window`)."""
        ids = await self._send_post(where.id, post, self._zone_of(where.id), key=key)
        ref = MessageRef(where, ids[0])
        if post.controls:
            await self._offer_controls(where, ref, post, key)
        return ref

    direct_interval = 0.5  # seconds between direct messages (reminders), well below what gets a bot flagged

    async def send_direct(self, user: UserRef, post: Post, *, key: str | None = None) -> MessageRef:
        """A message in the member's direct room with the bot (opened, with an invitation, on first use). A
        member who left that room raises `DirectRefused`: they are not invited again."""
        if user.platform != PLATFORM:
            raise DirectRefused(f"{user.id!r} is not a Matrix user")
        if user.id in self._dm_left:
            raise DirectRefused(f"{user.id} left their direct room with the bot")
        room = self._dms.get(user.id)
        if room is None:
            room = await self._dm_room(user.id)
        else:
            resp = await self.client.room_get_state_event(room, "m.room.member", user.id)
            if isinstance(resp, RoomGetStateEventResponse) and resp.content.get("membership") in ("leave", "ban"):
                self._forget_dm_room(room)
                self._dm_left.add(user.id)
                raise DirectRefused(f"{user.id} left their direct room with the bot")
        ids = await self._send_post(room, post, self._zone_of(room), key=key)
        return MessageRef(ChannelRef(PLATFORM, room), ids[0])

    async def _react(self, room_id: str, event_id: str, key: str, txn: str | None = None) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return await self._send_event(room_id, "m.reaction", content, txn)

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        """Answer a command with a notice replying to it; a private answer goes by direct message."""
        handle = to.handle if isinstance(to.handle, Handle) else None
        zone = self._zone_of(to.channel.id)
        if handle is None:
            await self._send_post(to.channel.id, post, zone)
            return
        if private and self._dms.get(to.user.id) != handle.room_id:
            dm = await self._dm_room(to.user.id)
            reply_to = {REPLY_TO_KEY: {"room_id": handle.room_id, "event_id": handle.event_id}}
            await self._send_post(dm, post, zone, extra=reply_to)
            await self._react(handle.room_id, handle.event_id, PRIVATE_MARK)
            return
        relates: dict[str, Any] = {"m.in_reply_to": {"event_id": handle.event_id}}
        if handle.thread_root:
            relates.update(rel_type="m.thread", event_id=handle.thread_root, is_falling_back=False)
        await self._send_post(handle.room_id, post, zone, relates=relates)

    async def send_file(self, to: Invocation, file: FileUpload, post: Post, *, private: bool = False) -> None:
        """Answer a command with `post` and an ``m.file`` event: the file uploaded to the homeserver's media
        repository (encrypted, as an attachment's ``file``, where the room is encrypted), in the room the
        answer goes to (the asker's direct-message room when `private`), related to the command as the answer
        is. The upload comes first: if the homeserver refuses it, nothing of the answer has been sent."""
        handle = to.handle if isinstance(to.handle, Handle) else None
        extra: dict[str, Any] = {}
        if handle is None:
            room_id = to.channel.id
        elif private and self._dms.get(to.user.id) != handle.room_id:
            room_id = await self._dm_room(to.user.id)
            extra[REPLY_TO_KEY] = {"room_id": handle.room_id, "event_id": handle.event_id}
        else:
            room_id = handle.room_id
            relates: dict[str, Any] = {"m.in_reply_to": {"event_id": handle.event_id}}
            if handle.thread_root:
                relates.update(rel_type="m.thread", event_id=handle.thread_root, is_falling_back=False)
            extra["m.relates_to"] = relates
        encrypt = await self._encrypted_room(room_id) is not None
        # Encrypted, the media repository gets ciphertext under no name (nio sends it as octet-stream): the
        # name and media type are only in the encrypted event, as Element uploads an attachment.
        resp, keys = await self.client.upload(io.BytesIO(file.data), content_type=file.media_type,
                                              filename=None if encrypt else file.name, encrypt=encrypt,
                                              filesize=len(file.data))
        uri = _check(resp, UploadResponse, f"upload {file.name}").content_uri
        await self.reply(to, post, private=private)
        content: dict[str, Any] = {"msgtype": "m.file", "body": file.name, "filename": file.name,
                                   "info": {"mimetype": file.media_type, "size": len(file.data)}, **extra}
        if encrypt and keys is not None:
            content["file"] = {**keys, "url": uri}
        else:
            content["url"] = uri
        await self._send_event(room_id, "m.room.message", content)


def _txn(key: str | None, part: str) -> str | None:
    """The transaction id of one event of the send keyed `key` (None: nio picks a random one)."""
    return None if key is None else "circlebot." + idempotency_token(key, part, 40)


def _html_text(text: str) -> str:
    return html.escape(text, quote=False)


def _html_attr(text: str) -> str:
    return html.escape(text, quote=True)


"""The terminal adapter, the embedded default: a chat with the bot in your terminal, no tokens needed.

Every line is a command (a leading `!` or `/` is allowed). Lines starting with `/` that name a console
command change the session: `/as NAME` speaks as someone else, `/circle SLUG` switches circle, `/quit` ends.
"""

from __future__ import annotations

import asyncio
import io
import re
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from circlebot.adapters.render import named_markdown, plain_text
from circlebot.core.adapter import Dispatch, Lookups, PollLimits
from circlebot.core.domain import (
    ChannelRef,
    FileUpload,
    Invocation,
    MessageRef,
    PollResults,
    PollSpec,
    Post,
    UserRef,
)
from circlebot.core.text import BIDI_CONTROLS, Text, cmd

PLATFORM = "console"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]")  # terminal escapes, bidi controls


class ConsoleAdapter:
    """Reads commands from a text stream and prints the bot's posts."""

    platform = PLATFORM
    prefix = ""
    poll_limits = PollLimits()
    ready = None  # it can print as soon as it serves
    syntax = None  # prefix + text
    dedup_window = timedelta(0)  # a terminal cannot recognise a repeated post

    def __init__(
        self,
        circles: list[tuple[str, str, ZoneInfo]],
        *,
        user: str = "organiser",
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        clock: Callable[[], datetime] | None = None,
        lookups: Lookups | None = None,
        page_url: Callable[[str], str | None] | None = None,
        files_dir: Path | None = None,
    ) -> None:
        if not circles:
            raise ValueError("the console needs at least one circle that lives on the console")
        self._circles = {slug: (name, zone) for slug, name, zone in circles}
        self._circle = circles[0][0]
        self._user = user
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        if stdout is None and isinstance(self._out, io.TextIOWrapper):
            self._out.reconfigure(errors="replace")  # whatever the terminal's encoding, a post always prints
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lookups = lookups  # its state keeps the post numbers, so they go on after a restart
        self._page_url = page_url  # a circle's web page, for the banner (None: no web server)
        self._files_dir = files_dir or Path("exports")  # where files handed over (exports) are written
        self._next_id: int | None = None
        self._ids_lock = asyncio.Lock()

    # output -----------------------------------------------------------------------------------------
    def _zone(self, channel_id: str) -> ZoneInfo:
        return self._circles.get(channel_id, self._circles[self._circle])[1]

    def _print(self, text: str) -> None:
        # what users typed is echoed in posts: keep their control characters (terminal escapes) out of ours
        self._out.write(_CONTROL.sub("�", text) + "\n")
        self._out.flush()

    def _render(self, channel: ChannelRef, post: Post) -> str:
        return plain_text(named_markdown(post.content, self._zone(channel.id), self.prefix), keep_code=True)

    async def send(self, where: ChannelRef, post: Post, *, key: str | None = None) -> MessageRef:
        """Print a post; the terminal cannot take back or recognise a repeated one, so `key` is unused."""
        ref = MessageRef(where, str(await self._post_number()))
        tag = f"[{where.id} #{ref.id}]"
        mentions = " ".join(f"@{u.display}" for u in post.mentions)
        self._print(f"{tag} {mentions + ' ' if mentions else ''}{self._render(where, post)}")
        return ref

    async def _post_number(self) -> int:
        """The next post's number: 1, 2, ... across restarts when the console has its state (`lookups`)."""
        async with self._ids_lock:
            if self._next_id is None:
                stored = await self._lookups.state.setting("next_post") if self._lookups else None
                self._next_id = int(stored) if stored and stored.isdigit() else 1
            number, self._next_id = self._next_id, self._next_id + 1
            if self._lookups is not None:
                await self._lookups.state.set_setting("next_post", str(self._next_id))
            return number

    async def reply(self, to: Invocation, post: Post, *, private: bool = False) -> None:
        head = f"(only {to.user.display} sees this) " if private else ""
        self._print(f"{head}{self._render(to.channel, post)}")

    async def send_file(self, to: Invocation, file: FileUpload, post: Post, *, private: bool = False) -> None:
        """Write the file into the files directory (never over an existing file) and show its path."""
        path = await asyncio.to_thread(_write_new, self._files_dir, file)
        await self.reply(to, Post(Text.join("\n", [post.content, f"Written to {path}"])), private=private)

    async def start_poll(self, where: ChannelRef, poll: PollSpec) -> MessageRef:
        lines: list[Text | str] = [f"📊 Poll #{poll.id}: {poll.question}"]
        lines += [f"  {i}. {a}" for i, a in enumerate(poll.answers, 1)]
        how = Text(f"`{poll.vote_hint}`") if poll.vote_hint else cmd("vote", poll=poll.id, answers="<n>")
        lines.append("  (" + poll.rules("secret until it closes") + ") vote with: " + how)
        return await self.send(where, Post(Text.join("\n", lines)))

    async def end_poll(self, ref: MessageRef, results: PollResults, text: str) -> None:
        # the results themselves reach the terminal as the answer to `poll close`, or as the closing post
        await self.send(ref.channel, Post(f"📊 Poll #{results.poll.id} has ended (it was post #{ref.id})."))

    # input ------------------------------------------------------------------------------------------
    def banner(self) -> str:
        name = self._circles[self._circle][0]
        others = ", ".join(s for s in self._circles if s != self._circle)
        lines = [
            f"circlebot console: you are in {name} ({self._circle}) as '{self._user}'.",
            "Type a command (`help` lists them). `/as NAME` to be someone else (e.g. /as alice, /as organiser),",
            "`/circle SLUG` to switch circle" + (f" ({others})" if others else "") + ", `/quit` to leave.",
        ]
        page = self._page_url(self._circle) if self._page_url is not None else None
        if page:
            lines.append(f"The circle's page: {page} (its calendar: {page}/calendar.ics)")
        return "\n".join(lines)

    async def serve(self, dispatch: Dispatch) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def reader() -> None:  # a daemon thread: a blocked read never holds up shutdown
            try:
                for line in _decoded_lines(self._in):
                    loop.call_soon_threadsafe(lines.put_nowait, line)
            except (OSError, ValueError):
                pass
            finally:
                loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=reader, name="console-stdin", daemon=True).start()
        self._print(self.banner())
        while True:
            line = await lines.get()
            if line is None:
                return
            text = line.strip()
            if not text:
                continue
            if text.startswith("/") and self._meta(text[1:]):
                if text[1:].split()[0].lower() in ("quit", "exit"):
                    return
                continue
            text = text.lstrip("!/").strip()
            inv = Invocation(
                user=UserRef(PLATFORM, self._user, self._user),
                channel=ChannelRef(PLATFORM, self._circle),
                at=self._clock(),
                text=text,
            )
            handling = asyncio.ensure_future(dispatch(inv))
            try:
                await asyncio.shield(handling)
            except asyncio.CancelledError:
                await asyncio.wait([handling])  # stopping: the command in hand is finished and answered
                raise

    def _meta(self, text: str) -> bool:
        """Handle a console command; False if the line is an ordinary bot command."""
        words = text.split()
        if not words:
            return False
        head, args = words[0].lower(), words[1:]
        if head in ("quit", "exit"):
            self._print("Bye.")
            return True
        if head == "as":
            if len(args) != 1 or not args[0].isprintable() or len(args[0]) > 40:
                self._print("Usage: /as NAME (one word, e.g. /as alice or /as organiser)")
            else:
                self._user = args[0]
                self._print(f"You are now '{self._user}'.")
            return True
        if head == "circle":
            if len(args) != 1 or args[0] not in self._circles:
                self._print(f"Usage: /circle SLUG (one of: {', '.join(self._circles)})")
            else:
                self._circle = args[0]
                self._print(f"You are now in {self._circles[self._circle][0]} ({self._circle}).")
            return True
        if head == "who":
            self._print(f"You are '{self._user}' in {self._circle}.")
            return True
        return False


def _decoded_lines(stream: TextIO) -> Iterator[str]:
    """The lines of a text stream; from a terminal, read as bytes and decoded with every byte that is not in
    its encoding replaced (U+FFFD), so a stray byte is answered like any other line instead of ending the
    console (a strict decoder raises, and the read loop would stop)."""
    raw = getattr(stream, "buffer", None)
    if not isinstance(raw, io.BufferedIOBase | io.RawIOBase):
        yield from stream
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    for line in raw:
        yield line.decode(encoding, errors="replace")


def _write_new(directory: Path, file: FileUpload) -> Path:
    """Write `file` into `directory` (created if missing) under its own name, or with -2, -3 ... before the
    suffix when that name is taken; the name is only ever a name, never a path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = Path(file.name).name or "file"
    stem, suffix = Path(name).stem, Path(name).suffix
    for n in range(1, 10_000):
        path = directory / (name if n == 1 else f"{stem}-{n}{suffix}")
        try:
            with path.open("xb") as out:
                out.write(file.data)
        except FileExistsError:
            continue
        return path.resolve()
    raise FileExistsError(f"no free name for {name} in {directory}")

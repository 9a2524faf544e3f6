"""All commands, looked up by path: a command line resolved to the command it names and the words left to bind,
and the entry points that parse a line or bind Discord's options."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from circlebot.core.commands.bind import bind_options, bind_words
from circlebot.core.commands.declare import Command
from circlebot.core.commands.errors import UnclosedQuote, UnknownCommand, UsageError
from circlebot.core.commands.parse import MAX_INPUT, Word, split_words


@dataclass
class CommandTable:
    """All commands, looked up by path."""

    commands: Sequence[Command]
    _by_path: dict[tuple[str, ...], Command] = field(init=False)

    def __post_init__(self) -> None:
        self._by_path = {}
        for c in self.commands:
            if c.path in self._by_path:
                raise ValueError(f"command {c.name!r} declared twice")
            self._by_path[c.path] = c

    def get(self, path: tuple[str, ...]) -> Command | None:
        return self._by_path.get(path)

    def names(self) -> list[str]:
        return sorted({c.path[0] for c in self.commands})

    def resolve(self, text: str, prefix: str = "") -> tuple[Command, list[Word]]:
        """Find the command a line names (without the prefix); the rest of its words are not bound yet.
        `prefix` is how the platform's users start a command, for the hints in its errors."""
        if len(text) > MAX_INPUT:
            raise UsageError(f"that message is too long ({len(text)} characters; the most is {MAX_INPUT}).")
        try:
            words = split_words(text)
        except UnclosedQuote as e:  # name the command the quote belongs to, for its usage line
            with contextlib.suppress(UsageError):
                e.command = self.resolve(text[:e.start], prefix)[0] if e.start else None
            raise
        if not words:
            raise UnknownCommand(f"type a command; `{prefix}help` lists them.")
        head = words[0].text.lower()
        command = None
        if len(words) > 1 and not words[1].quoted:
            command = self.get((head, words[1].text.lower()))
            if command is not None:
                words = words[2:]
        if command is None:
            command = self.get((head,))
            words = words[1:]
        if command is None:
            near = [c.name for c in self.commands if c.path[0].startswith(head[:3])] if head else []
            hint = f" Did you mean: {', '.join(near)}?" if near else ""
            raise UnknownCommand(f"there is no command {head[:40]!r}.{hint} `{prefix}help` lists them.")
        return command, words

    def parse(self, text: str) -> tuple[Command, dict[str, Any]]:
        """Parse a command line into a command and its converted arguments."""
        command, words = self.resolve(text)
        return command, bind_words(command, words)

    def bind(self, command: Command, options: Mapping[str, Any]) -> dict[str, Any]:
        """Convert structured options (Discord slash-command options, by parameter name): `bind_options`."""
        return bind_options(command, options)

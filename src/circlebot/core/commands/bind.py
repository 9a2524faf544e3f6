"""A command's words (typed) or options (Discord's, by name) bound to its handler's keyword arguments, each
converted by its parameter's type; every mistake is a UsageError naming it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circlebot.core.commands.declare import Command, Param
from circlebot.core.commands.errors import UnclosedQuote, UsageError
from circlebot.core.commands.parse import Word, split_words
from circlebot.core.text import clean


def bind_options(command: Command, options: Mapping[str, Any]) -> dict[str, Any]:
    """Convert structured options (Discord slash-command options, by parameter name).

    An option's value is only text: words in it are never read as options (``answers:"A" "B" --secret``
    is refused, naming the option to set instead), and quote marks around a whole value are not part
    of it (``question:"Which day?"``)."""
    words: list[Word] = []
    for p in command.params:
        if p.name not in options or options[p.name] is None:
            continue
        v = options[p.name]
        if p.is_flag:
            if v:
                words.append(Word(f"--{p.name}"))
        elif p.option:
            words += [Word(f"--{p.name}"), Word(_whole_value(v), quoted=True)]
        elif p.greedy and isinstance(v, str):
            words += _value_words(command, p, v)
        elif p.greedy and isinstance(v, list | tuple):
            words += [Word(str(x), quoted=True) for x in v]
        else:
            words.append(Word(_whole_value(v), quoted=True))
    return bind_words(command, words)


def _whole_value(value: Any) -> str:
    """A structured option's value as one word: a value that is all one quoted phrase loses its quotes."""
    text = str(value)
    try:
        words = split_words(text)
    except UsageError:
        return text
    return words[0].text if len(words) == 1 and words[0].quoted else text


def _value_words(command: Command, param: Param, value: str) -> list[Word]:
    """The words of a structured option that takes several (quoted where they contain spaces), all text."""
    names = {p.name for p in command.params if p.option}
    out: list[Word] = []
    try:
        split = split_words(value)
    except UnclosedQuote as e:
        e.command = command
        raise
    for w in split:
        name = w.text[2:].partition("=")[0].lower()
        if not w.quoted and w.text.startswith("--") and name in names:
            raise UsageError(f"{w.text} inside {param.name} is text, not an option: set the command's {name} "
                             "option instead.", command)
        out.append(Word(w.text, quoted=True))
    return out


Assigned = Word | tuple[Word, ...] | bool


def assign_words(command: Command, words: list[Word]) -> dict[str, Assigned]:
    """Which words go to which parameter, before any conversion: a flag gets True, a greedy parameter the
    tuple of its words, any other the one word given. Missing or extra words and unknown options raise
    UsageError."""
    options = {p.name: p for p in command.params if p.option}
    positional = [p for p in command.params if not p.option]
    assigned: dict[str, Assigned] = {}
    rest: list[Word] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.text.startswith("--") and not w.quoted and len(w.text) > 2:
            name, _, inline = w.text[2:].partition("=")
            p = options.get(name.lower())
            if p is None:
                known = ", ".join(f"--{o}" for o in options) or "none"
                raise UsageError(f"unknown option --{name[:30]} (options: {known}).", command)
            if p.is_flag:
                assigned[p.name] = True
            elif inline:
                assigned[p.name] = Word(inline)
            else:
                i += 1
                if i >= len(words):
                    raise UsageError(f"--{p.name} needs a value ({p.type.name}).", command)
                assigned[p.name] = words[i]
        else:
            rest.append(w)
        i += 1
    for p in positional:
        if p.greedy:
            if rest:
                assigned[p.name], rest = tuple(rest), []
            elif p.required:
                raise UsageError(f"missing <{p.name}>: {p.help}", command)
        elif rest:
            assigned[p.name] = rest.pop(0)
        elif p.required:
            raise UsageError(f"missing <{p.name}>: {p.help}", command)
    if rest:
        extra = " ".join(w.text for w in rest)[:60]
        raise UsageError(f"too many words: {extra!r}.", command)
    return assigned


def bind_words(command: Command, words: list[Word]) -> dict[str, Any]:
    """Bind words to a command's parameters, converting each; every mistake raises UsageError."""
    assigned = assign_words(command, words)
    values: dict[str, Any] = {}
    for p in command.params:
        got = assigned.get(p.name)
        if got is None:
            values[p.name] = False if p.is_flag else p.default
        elif isinstance(got, bool):
            values[p.name] = got
        elif isinstance(got, tuple):
            values[p.name] = tuple(_convert(command, p, w.text) for w in got)
        else:
            values[p.name] = _convert(command, p, got.text)
    return values


def _convert(command: Command, p: Param, text: str) -> Any:
    try:
        return p.type.convert(clean(text))
    except ValueError as e:
        raise UsageError(f"<{p.name}> {e}", command) from None

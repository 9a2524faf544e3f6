"""How a platform's users type commands (`Syntax`), and the usage lines and `help` written in it from the
declarations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from circlebot.core.commands.declare import Command, Param
from circlebot.core.commands.errors import UsageError

if TYPE_CHECKING:
    from circlebot.core.commands.table import CommandTable


@dataclass(frozen=True)
class Syntax:
    """How a platform's users type commands: text after a prefix (terminal, Matrix: `!poll "Q?" "A" "B"`), or
    slash commands with named options (Discord: `/poll open question:... answers:...`), where `label` gives a
    command's name there. Usage and help are written in the platform's own syntax."""

    prefix: str = ""
    slash: bool = False
    label: Callable[[Command], str] | None = None

    def name(self, command: Command) -> str:
        return self.prefix + (self.label(command) if self.label else command.name)

    def param(self, p: Param) -> str:
        if not self.slash:
            return p.usage()
        value = "|".join(p.type.choices) if p.type.choices else p.type.name
        shown = f"{p.name}:True" if p.is_flag else f"{p.name}:<{value}>"
        return shown if p.required and not p.option else f"[{shown}]"

    def usage(self, command: Command) -> str:
        return " ".join([self.name(command), *(self.param(p) for p in command.params)])

    def example(self, command: Command, **values: object) -> str:
        """A command as users type it on this platform, with these values (``!vote 3 <n>``,
        ``/vote poll:3 answers:<n>``): every hint the bot gives is written by this, as usage is."""
        parts = [self.name(command)]
        for p in command.params:
            if p.name not in values:
                continue
            v = values[p.name]
            if self.slash:
                parts.append(f"{p.name}:{v}")
            elif p.is_flag:
                parts += [f"--{p.name}"] if v else []
            elif p.option:
                parts.append(f"--{p.name} {v}")
            else:
                parts.append(str(v))
        return " ".join(parts)

    def help_hint(self, command: Command) -> str:
        topic = self.label(command) if self.label else command.name
        return f"`{self.prefix}help command:{topic}`" if self.slash else f"`{self.prefix}help {command.name}`"


def help_text(table: CommandTable, topic: str | None, *, syntax: Syntax, organiser: bool) -> str:
    """`help` and `help <command>`, generated from the declarations, in the platform's syntax."""
    if topic:
        wanted = topic.lower().lstrip("/!")
        matches = [c for c in table.commands
                   if wanted in (c.name, c.path[0]) or (syntax.label is not None and wanted == syntax.label(c))]
        if not matches:
            raise UsageError(f"there is no command {topic[:40]!r}; `{syntax.prefix}help` lists them.")
        parts = []
        for c in matches:
            lines = [f"`{syntax.usage(c)}`" + (" (organisers only)" if c.organiser else ""), c.help]
            lines += [f"  {syntax.param(p)}: {p.help}" for p in c.params]
            if c.details:
                lines.append(c.details)
            if not syntax.slash:
                lines += [f"  e.g. `{syntax.prefix}{e}`" for e in c.examples]
            parts.append("\n".join(lines))
        return "\n\n".join(parts)
    lines = ["**Commands**"]
    for c in table.commands:
        if c.organiser and not organiser:
            continue
        mark = " *(organisers)*" if c.organiser else ""
        lines.append(f"`{syntax.usage(c)}`: {c.help}{mark}")
    more = f"`{syntax.prefix}help command:<name>`" if syntax.slash else f"`{syntax.prefix}help <command>`"
    lines.append(f"{more} tells more about one command.")
    return "\n".join(lines)

"""`help` and `circle`."""

from __future__ import annotations

from circlebot.core.commands import TEXT, Command, Param, help_text
from circlebot.core.context import Context
from circlebot.core.recurrence import rule_text
from circlebot.core.text import Text
from circlebot.features.common import meeting_title, when


async def help_(ctx: Context, command: tuple[str, ...] | None) -> str:
    topic = " ".join(command) if command else None
    syntax = ctx.bot.syntax(ctx.invocation.channel.platform)
    return help_text(ctx.bot.commands, topic, syntax=syntax, organiser=ctx.organiser)


async def circle(ctx: Context) -> Text:
    c = ctx.circle
    lines: list[Text | str] = [f"**{c.name}**"]
    if c.description:
        lines.append(c.description)
    lines.append(f"Meets {rule_text(c, ctx.zone)}.")
    where = [loc.platform for loc in ctx.bot.locations(c)]
    lines.append(f"Lives on: {', '.join(sorted(set(where))) or 'nowhere running'}.")
    upcoming = await ctx.store.meetings(c.slug, ending_after=ctx.now, limit=1)
    if upcoming:
        m = upcoming[0]
        lines.append(f"Next meeting: #{m.id}, " + when(m.starts_at) + f": {meeting_title(ctx, m)}.")
    else:
        lines.append("No meeting is scheduled yet.")
    if c.syllabus:
        titles = [f"`{s}`" for s in c.syllabus]
        lines.append(f"Syllabus: {', '.join(titles)}.")
    role = "an organiser" if ctx.organiser else "a member"
    lines.append(f"You are {role} here. `{ctx.prefix}help` lists what you can do.")
    return Text.join("\n", lines)


COMMANDS = [
    Command(("help",), "What the bot can do, or more about one command.", help_,
            (Param("command", TEXT, "a command name", required=False, greedy=True),), examples=("help poll",)),
    Command(("circle",), "What this circle is, when it meets and what is next.", circle),
]

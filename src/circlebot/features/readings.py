"""`readings [words]` and `reading <slug>`: the article collection in chat."""

from __future__ import annotations

from circlebot.app import Context
from circlebot.commands import READING, TEXT, Command, Param
from circlebot.features.common import reading_or_error

LIST_LIMIT = 15


async def readings(ctx: Context, words: tuple[str, ...] | None) -> str:
    query = " ".join(words or ())
    found = ctx.readings.search(query)
    if not found:
        if query:
            return f"No reading matches {query[:80]!r}. `{ctx.prefix}readings` lists them all."
        return "The collection is empty: add Markdown files to the readings directory."
    head = f"**{len(found)} reading(s) matching {query[:80]!r}**" if query else f"**{len(found)} reading(s)**"
    lines = [head]
    for r in found[:LIST_LIMIT]:
        tags = f" [{', '.join(r.tags)}]" if r.tags else ""
        lines.append(f"`{r.slug}`: {r.title} ({r.published.year}, {r.minutes} min){tags}")
    if len(found) > LIST_LIMIT:
        lines.append(f"… and {len(found) - LIST_LIMIT} more: add words to narrow the search.")
    lines.append(f"`{ctx.prefix}reading <slug>` shows one.")
    return "\n".join(lines)


async def reading(ctx: Context, slug: str) -> str:
    r = reading_or_error(ctx, slug)
    lines = [
        f"**{r.title}**",
        f"{r.author}, {r.publisher}, {r.published:%-d %B %Y}." + (f" Source: {r.source}." if r.source else ""),
        f"{r.words:,} words, about {r.minutes} min to read.",
        "",
        r.summary,
    ]
    if r.sections:
        lines += ["", "**Sections**"]
        lines += [f"{i}. {s.title} ({s.minutes} min)" for i, s in enumerate(r.sections, 1)]
    lines += ["", f"{len(r.questions)} discussion question(s): `{ctx.prefix}questions` during a meeting on it."]
    if r.tags:
        lines.append(f"Tags: {', '.join(r.tags)}")
    return "\n".join(lines)


COMMANDS = [
    Command(("readings",), "List the collection, or search titles, tags and authors.", readings,
            (Param("words", TEXT, "words to search for", required=False, greedy=True),),
            examples=("readings", "readings bolivia")),
    Command(("reading",), "One reading: summary, sections, reading time.", reading,
            (Param("slug", READING, "the reading's short name (see `readings`)"),),
            examples=("reading bolivia-2003-first-balance-sheet",)),
]

"""`readings [words]` and `reading <slug>`: the article collection in chat (listing, search, parts)."""

from __future__ import annotations

import asyncio

from circlebot.core.commands import READING, TEXT, Command, Param
from circlebot.core.context import Context
from circlebot.core.text import count
from circlebot.features.common import reading_or_error
from circlebot.readings import Reading

LIST_LIMIT = 15
SEARCH_LIMIT = 5


async def readings(ctx: Context, words: tuple[str, ...] | None) -> str:
    """The whole collection, or a full-text search (titles, tags, text) answering with the matching passages."""
    query = " ".join(words or ())
    if not query:
        return _listing(ctx)
    hits = await asyncio.to_thread(ctx.readings.index.search, query, SEARCH_LIMIT)
    if not hits:
        return f"No reading matches {query[:80]!r}. `{ctx.prefix}readings` lists them all."
    found = f"{len(hits)}+ readings" if len(hits) == SEARCH_LIMIT else count(len(hits), "reading")
    lines = [f"**{found} matching {query[:80]!r}**"]
    for hit in hits:
        r = ctx.readings.get(hit.slug)
        meta = f" ({r.published.year}, {r.minutes} min)" if r else ""
        lines.append(f"`{hit.slug}`: {hit.title}{meta}")
        if hit.passage:
            lines.append(f"> {hit.passage}")
    lines.append(f"`{ctx.prefix}reading <slug>` shows one.")
    return "\n".join(lines)


def _listing(ctx: Context) -> str:
    found = ctx.readings.search("")
    if not found:
        return "The collection is empty: add Markdown files to the readings directory."
    lines = [f"**{count(len(found), 'reading')}**"]
    for r in found[:LIST_LIMIT]:
        tags = f" [{', '.join(r.tags)}]" if r.tags else ""
        lines.append(f"`{r.slug}`: {r.title} ({r.published.year}, {r.minutes} min){tags}")
    if len(found) > LIST_LIMIT:
        lines.append(f"… and {len(found) - LIST_LIMIT} more: add words to search.")
    lines.append(f"`{ctx.prefix}reading <slug>` shows one.")
    return "\n".join(lines)


def parts_text(reading: Reading, part_minutes: int) -> list[str]:
    """The lines of `reading <slug>` that show how the reading splits into meetings."""
    parts = reading.parts(part_minutes)
    if len(parts) == 1:
        return [f"Fits one meeting (target {part_minutes} min of reading per meeting)."]
    lines = [f"**Parts** ({len(parts)} meetings of about {part_minutes} min of reading each)"]
    lines += [f"Part {p.index}: {p.title} ({p.minutes} min)" for p in parts]
    return lines


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
    lines += ["", *parts_text(r, ctx.circle.part_minutes)]
    lines += ["", f"{count(len(r.questions), 'discussion question')}: `{ctx.prefix}questions` during a meeting on it."]
    if r.tags:
        lines.append(f"Tags: {', '.join(r.tags)}")
    return "\n".join(lines)


COMMANDS = [
    Command(("readings",), "List the collection, or search titles, tags and the full text.", readings,
            (Param("words", TEXT, "words to search for", required=False, greedy=True),),
            examples=("readings", "readings bolivia")),
    Command(("reading",), "One reading: summary, sections, reading time.", reading,
            (Param("slug", READING, "the reading's short name (see `readings`)"),),
            examples=("reading bolivia-2003-first-balance-sheet",)),
]

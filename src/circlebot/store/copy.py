"""Moving a circle's store to another database (`circlebot db copy`): SQLite to PostgreSQL, or either way.

The source is read inside one transaction (a consistent snapshot; on SQLite it also keeps a running bot from
writing meanwhile), the target written inside one transaction: the copy is whole or nothing. The target must be
empty (a fresh database, migrated here to the same schema version as the source). Each table's row count is
checked on both sides before the target commits; self-numbering ids go on after the highest copied one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circlebot.store.db import Database, StoreError

CHUNK = 5000  # rows a statement batch writes


@dataclass(frozen=True, slots=True)
class Copied:
    """One table copied: its name and rows."""

    table: str
    rows: int


def parse_target(text: str) -> Path | str:
    """`sqlite:PATH` (or a plain path) or a postgresql:// URL, as `Database.open` takes it."""
    if text.startswith(("postgresql://", "postgres://")):
        return text
    return Path(text.removeprefix("sqlite:"))


def _coerce(kind: str) -> Callable[[Any], Any] | None:
    """How a value read from SQLite (which keeps any value in any column) is written into a typed column."""
    if kind in ("text", "character varying"):
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    if kind in ("bigint", "integer", "smallint"):
        return lambda v: v if v is None or type(v) is int else int(v)
    if kind in ("double precision", "real"):
        return lambda v: v if v is None or isinstance(v, float) else float(v)
    return None


# tables whose rows refer to rows of the same table: the rows referred to are written first (the foreign key is
# checked row by row); a linked account names its person's member, which is never linked itself
_PARENTS_FIRST = {"members": " ORDER BY CASE WHEN linked_to IS NULL THEN 0 ELSE 1 END, id"}


async def copy_database(source: Database, target: Database) -> list[Copied]:
    """Copy every table of `source` into the empty `target`; returns the row count of each table copied.
    Raises `StoreError` (with nothing written) if the target holds data or a count does not match."""
    if await source.version() != await target.version():
        raise StoreError(f"the source {source.name} is at schema version {await source.version()} and the target "
                         f"{target.name} at {await target.version()}: open both with the same circlebot")
    tables = [t for t in await source.tables() if t != "schema_version"]
    missing = set(tables) - set(await target.tables())
    if missing:
        raise StoreError(f"the target {target.name} has no table {', '.join(sorted(missing))}")
    held = []
    for table in tables:
        row = await target.fetchone(f"SELECT count(*) FROM {table}")
        if row and int(row[0]):
            held.append(f"{table} ({int(row[0])} rows)")
    if held:
        raise StoreError(f"the target {target.name} is not empty: {', '.join(held)}. Copy into a new, empty "
                         f"database (circlebot creates its tables there)")
    copied: list[Copied] = []
    # the rows go in as they are: the checks the store's triggers make on new rows (no ballot in a closed poll)
    # were made when the rows were first written
    async with source.transaction() as reader, target.transaction() as writer, target.triggers_off(writer):
        for table in tables:
            columns = await target.columns(table)
            names = [name for name, _ in columns]
            coerce = [_coerce(kind) for _, kind in columns]
            rows = list(await reader.execute_fetchall(f"SELECT {', '.join(names)} FROM {table}"
                                                      + _PARENTS_FIRST.get(table, "")))
            insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            for i in range(0, len(rows), CHUNK):
                await writer.executemany(insert, [
                    tuple(v if c is None else c(v) for v, c in zip(r, coerce, strict=True))
                    for r in rows[i : i + CHUNK]])
            written = list(await writer.execute_fetchall(f"SELECT count(*) FROM {table}"))
            if int(written[0][0]) != len(rows):
                raise StoreError(f"{table}: {len(rows)} rows read but {int(written[0][0])} in the target; nothing "
                                 f"was copied")
            copied.append(Copied(table, len(rows)))
        await target.ids_after_copy(writer)
    return copied

"""The stricter checks of ``circlebot readings check``: empty sections, duplicate slugs and titles, skipped files."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

from circlebot.readings.load import load_collection
from circlebot.readings.model import Collection, Reading, ReadingError


@dataclass(frozen=True)
class CheckReport:
    """What ``circlebot readings check`` found: the loaded collection, errors and warnings."""

    collection: Collection
    errors: tuple[ReadingError, ...]
    warnings: tuple[ReadingError, ...]


def reading_problems(reading: Reading) -> list[ReadingError]:
    """What ``readings check`` rejects in one reading that loads: a section without text."""
    return [
        ReadingError(
            reading.path, section.line, f"section {section.title!r} is empty: add its text or remove the heading"
        )
        for section in reading.sections
        if section.words == 0
    ]


def check_collection(directory: pathlib.Path) -> CheckReport:
    """Load *directory* and apply the stricter checks of ``readings check``.

    Beyond the loader's errors (front matter fields and types, questions for
    missing sections...), these are errors: a section without text, and two
    files whose names give the same slug once case is ignored (``a.md`` and
    ``A.md``: the second is also an invalid slug, but on a case-insensitive
    file system they collide).  Warnings: two readings with the same title,
    and files the loader skips because of their extension (``.MD``,
    ``.markdown``, ``.txt``).
    """
    collection = load_collection(directory)
    errors = list(collection.errors)
    warnings: list[ReadingError] = []
    for reading in collection:
        errors += reading_problems(reading)
    try:
        names = sorted(entry.name for entry in directory.iterdir())
    except OSError:
        names = []
    stems: dict[str, str] = {}
    for name in names:
        if name.startswith("."):
            continue
        stem, dot, suffix = name.rpartition(".")
        if not dot:
            continue
        if suffix == "md" and name.casefold() != "readme.md":
            first = stems.setdefault(stem.casefold(), name)
            if first != name:
                errors.append(
                    ReadingError(
                        directory / name,
                        0,
                        f"duplicate slug {stem.casefold()!r}: {first} has the same name but for case; "
                        "remove or rename one",
                    )
                )
        elif suffix.casefold() in {"md", "markdown", "txt"} and name.casefold() != "readme.md":
            warnings.append(
                ReadingError(
                    directory / name,
                    0,
                    "skipped: only files ending in '.md' are readings (`circlebot readings import` "
                    "turns a text file into one)",
                )
            )
    titles: dict[str, Reading] = {}
    for reading in collection:
        other = titles.setdefault(" ".join(reading.title.casefold().split()), reading)
        if other is not reading:
            warnings.append(
                ReadingError(reading.path, 0, f"same title as {other.path.name}: is it the same article twice?")
            )
    errors.sort(key=lambda error: (str(error.path), error.line))
    return CheckReport(collection, tuple(errors), tuple(warnings))

"""The readings load cache: the same collection with or without it, and never a stale or broken one."""

from __future__ import annotations

import os
import pathlib

import pytest

from circlebot.cli import main
from circlebot.readings import load_collection
from circlebot.readings.cache import default_cache_path
from test_readings import make


@pytest.fixture
def collection_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "readings"
    directory.mkdir()
    for name in ("alpha", "beta", "gamma"):
        (directory / f"{name}.md").write_text(make(body=f"Intro of {name}.\n\n## One\n\nText.\n"), encoding="utf-8")
    (directory / "broken.md").write_text("no front matter\n", encoding="utf-8")
    return directory


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the loader parses (rather than takes from the cache)."""
    import circlebot.readings.load as load

    seen: list[str] = []
    real = load.parse_reading

    def counting(path: pathlib.Path, text: str) -> object:
        seen.append(path.name)
        return real(path, text)

    monkeypatch.setattr(load, "parse_reading", counting)
    return seen


def test_a_cached_load_is_the_same_and_parses_only_what_changed(
    collection_dir: pathlib.Path, tmp_path: pathlib.Path, parses: list[str]
) -> None:
    cache = tmp_path / "cache" / "readings.cache"
    uncached = load_collection(collection_dir)
    parses.clear()
    first = load_collection(collection_dir, cache=cache)
    assert cache.exists() and sorted(parses) == ["alpha.md", "beta.md", "broken.md", "gamma.md"]
    parses.clear()
    second = load_collection(collection_dir, cache=cache)
    assert parses == ["broken.md"]  # a file with problems is never cached: its errors come afresh
    assert dict(first.readings) == dict(second.readings) == dict(uncached.readings)
    assert first.errors == second.errors == uncached.errors and len(second.errors) == 1

    (collection_dir / "beta.md").write_text(make(body="New intro.\n\n## Two\n\nOther text here.\n"))
    (collection_dir / "gamma.md").unlink()
    parses.clear()
    third = load_collection(collection_dir, cache=cache)
    assert sorted(parses) == ["beta.md", "broken.md"]
    assert list(third.readings) == ["alpha", "beta"]
    assert [s.title for s in third.readings["beta"].sections] == ["Two"]


def test_an_edit_keeping_size_and_mtime_is_still_seen(collection_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    cache = tmp_path / "readings.cache"
    path = collection_dir / "alpha.md"
    assert load_collection(collection_dir, cache=cache).readings["alpha"].intro == "Intro of alpha."
    before = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("alpha", "ALPHA"), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert load_collection(collection_dir, cache=cache).readings["alpha"].intro == "Intro of ALPHA."


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "empty", "directory"])
def test_a_corrupt_cache_is_harmless_and_replaced(
    collection_dir: pathlib.Path, tmp_path: pathlib.Path, parses: list[str], damage: str
) -> None:
    cache = tmp_path / "readings.cache"
    expected = load_collection(collection_dir, cache=cache)
    data = cache.read_bytes()
    if damage == "garbage":
        cache.write_bytes(b"\x00not a cache\xff" * 100)
    elif damage == "truncated":
        cache.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        cache.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    elif damage == "empty":
        cache.write_bytes(b"")
    else:
        cache.unlink()
        cache.mkdir()  # neither readable nor replaceable: the load goes on without it
    parses.clear()
    loaded = load_collection(collection_dir, cache=cache)
    assert dict(loaded.readings) == dict(expected.readings) and loaded.errors == expected.errors
    assert sorted(parses) == ["alpha.md", "beta.md", "broken.md", "gamma.md"]
    if damage != "directory":
        parses.clear()
        load_collection(collection_dir, cache=cache)
        assert parses == ["broken.md"]  # rewritten whole


def test_an_unwritable_cache_place_only_costs_the_parse(collection_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    loaded = load_collection(collection_dir, cache=blocker / "readings.cache")
    assert list(loaded.readings) == ["alpha", "beta", "gamma"]


def test_a_cached_reading_keeps_every_field(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "readings"
    directory.mkdir()
    front = make().split("+++\n")[1]
    text = (
        "+++\n" + front + 'source = "S"\norganisation = "O"\nlanguage = "es"\ntags = ["a", "b"]\n'
        '[sections."One"]\nquestions = ["Why one?"]\n+++\n\nIntro ünïcode.\n\n## One\n\nText.\n\n## Two\n\nMore.\n'
    )
    (directory / "full.md").write_text(text, encoding="utf-8")
    cache = tmp_path / "readings.cache"
    plain = load_collection(directory).readings["full"]
    load_collection(directory, cache=cache)
    cached = load_collection(directory, cache=cache).readings["full"]
    assert cached == plain and cached.sections[0].questions == ("Why one?",)
    assert cached.path == directory / "full.md"


def test_the_cache_lives_in_the_user_cache_directory_not_in_the_collection(
    collection_dir: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    path = default_cache_path(collection_dir)
    assert path is not None and path.parent == home / "circlebot" and path.name.startswith("readings-readings-")
    assert default_cache_path(tmp_path / "elsewhere" / "readings") != path  # one cache per collection

    assert main(["readings", "list", "--dir", str(collection_dir)]) == 0
    assert path.exists()
    assert sorted(p.name for p in collection_dir.iterdir()) == ["alpha.md", "beta.md", "broken.md", "gamma.md"]

    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fallback = default_cache_path(collection_dir)
    assert fallback is not None and fallback.parent == tmp_path / "home" / ".cache" / "circlebot"

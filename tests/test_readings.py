"""Tests for the article collection loader (circlebot.readings); pure and fast."""

from __future__ import annotations

import datetime
import math
import os
import pathlib
import re

import pytest

from circlebot.readings import (
    MAX_FILE_BYTES,
    WORDS_PER_MINUTE,
    Collection,
    Reading,
    ReadingError,
    ReadingFormatError,
    Section,
    load_collection,
    parse_reading,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
READINGS_DIR = REPO / "readings"
SEED_SLUG = "bolivia-2003-first-balance-sheet"
SEED_SOURCE = pathlib.Path(__file__).resolve().parent / "data" / "bolivia-2003-first-balance-sheet.txt"

VALID_FRONT = """\
+++
title = "A test article"
author = "Jane Doe"
publisher = "Test Press"
published = 2020-05-01
summary = "A short summary."
questions = ["What is it about?"]
+++
"""


def make(
    front: str = VALID_FRONT,
    body: str = "Intro text here.\n\n## One\n\nSection one text.\n",
) -> str:
    """Return the text of a reading file."""
    return front + "\n" + body


def front_with(**fields: str) -> str:
    """A valid front matter where each keyword replaces (or adds) one TOML line; "" removes it."""
    lines = VALID_FRONT.strip("\n").split("\n")[1:-1]
    values = {line.split(" = ", 1)[0]: line for line in lines}
    for key, value in fields.items():
        if value == "":
            values.pop(key, None)
        else:
            values[key] = f"{key} = {value}"
    return "+++\n" + "\n".join(values.values()) + "\n+++\n"


def errors_of(text: str, name: str = "x.md") -> tuple[ReadingError, ...]:
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("readings") / name, text)
    assert info.value.errors, "ReadingFormatError raised without errors"
    return info.value.errors


def only_error(text: str, name: str = "x.md") -> ReadingError:
    errors = errors_of(text, name)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def write(directory: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- seed


@pytest.fixture(scope="module")
def seed() -> Reading:
    collection = load_collection(READINGS_DIR)
    assert not collection.errors, [str(e) for e in collection.errors]
    reading = collection.get(SEED_SLUG)
    assert reading is not None
    return reading


def test_seed_metadata(seed: Reading) -> None:
    assert seed.slug == SEED_SLUG
    assert seed.title.startswith("Bolivia: first balance-sheet of the insurrection")
    assert seed.title.endswith("“A revolutionary party was missing”")
    assert seed.published == datetime.date(2003, 10, 20)
    assert seed.publisher == "In Defence of Marxism (marxist.com)"
    assert seed.organisation == "International Marxist Tendency"
    assert seed.author == "International Marxist Tendency"
    assert seed.source == "In Defence of Marxism, marxist.com"
    assert seed.language == "en"
    assert {"bolivia", "cob", "revolution", "workers-movement", "2003"} <= set(seed.tags)
    assert seed.summary
    assert len(seed.questions) >= 6
    assert all(q.strip() for q in seed.questions)
    assert seed.path == READINGS_DIR / f"{SEED_SLUG}.md"


def test_seed_sections(seed: Reading) -> None:
    assert [s.title for s in seed.sections] == [
        "Lack of a revolutionary leadership",
        "The COB meeting on Saturday 18",
        "What attitude towards the new government?",
        "“Tactical retreat”",
        "Mesa forms government",
        "“We will be soldiers of the people”",
    ]
    lines = seed.path.read_text(encoding="utf-8").split("\n")
    for section in seed.sections:
        assert lines[section.line - 1] == f"## {section.title}"
        assert section.words > 0
    assert seed.intro.startswith("After overthrowing the hated Goni")


def test_seed_words_and_minutes(seed: Reading) -> None:
    assert 3000 <= seed.words <= 4500
    assert seed.minutes == math.ceil(seed.words / WORDS_PER_MINUTE)
    assert sum(s.words for s in seed.sections) < seed.words


def test_seed_drops_captions_and_trailer(seed: Reading) -> None:
    text = seed.path.read_text(encoding="utf-8")
    for dropped in (
        "Miner with a dynamite stick",
        "The masses take oath in La Paz on Saturday 18",
        "October 20, 2003\n",
        "See the original in Spanish",
        "You can find more photos",
        "Join us",
        "joining the IMT",
    ):
        assert dropped not in text
    assert seed.sections[-1].body.endswith("Socialist Federation of Latin America.")


def test_seed_keeps_every_paragraph_verbatim(seed: Reading) -> None:
    source = SEED_SOURCE.read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in source.split("\n\n")[1:] if p.strip()]
    article = paragraphs[: paragraphs.index("October 20, 2003")]
    headings = {s.title for s in seed.sections}
    captions = {"Miner with a dynamite stick", "The masses take oath in La Paz on Saturday 18"}
    body_paragraphs = seed.path.read_text(encoding="utf-8").split("+++\n", 2)[2].strip().split("\n\n")
    expected = [f"## {p}" if p in headings else p for p in article if p not in captions]
    assert body_paragraphs == expected


def test_seed_search(seed: Reading) -> None:
    collection = load_collection(READINGS_DIR)
    assert seed in collection.search("bolivia")
    assert seed in collection.search("BOLIVIA cob")
    assert collection.search("nonexistent") == []
    assert collection.search("bolivia nonexistent") == []


def test_seed_excerpt(seed: Reading) -> None:
    excerpt = seed.excerpt()
    assert excerpt.startswith("After overthrowing the hated Goni")
    assert excerpt.endswith("…")
    assert len(excerpt) <= 400
    assert seed.intro.replace("\n\n", " ").startswith(excerpt[:-1].rstrip())


# ------------------------------------------------------------------ valid parsing


def test_minimal_reading_defaults() -> None:
    reading = parse_reading(pathlib.Path("readings/a-test.md"), make())
    assert reading.slug == "a-test"
    assert reading.title == "A test article"
    assert reading.published == datetime.date(2020, 5, 1)
    assert reading.language == "en"
    assert reading.tags == ()
    assert reading.source is None
    assert reading.organisation is None
    assert reading.questions == ("What is it about?",)
    assert reading.intro == "Intro text here."
    assert reading.sections == (Section("One", 12, "Section one text.", 3),)
    assert reading.words == 7  # intro 3 + heading 1 + section 3
    assert reading.minutes == 1


def test_optional_fields() -> None:
    front = front_with(
        source='"https://example.org/a"',
        organisation='"Org"',
        language='"es"',
        tags='["one", "two", "one"]',
        questions='["Q1?", "Q2?"]',
    )
    reading = parse_reading(pathlib.Path("r.md"), make(front))
    assert reading.source == "https://example.org/a"
    assert reading.organisation == "Org"
    assert reading.language == "es"
    assert reading.tags == ("one", "two")
    assert reading.questions == ("Q1?", "Q2?")


def test_sections_subheadings_duplicates_and_fences() -> None:
    body = (
        "Intro.\n\n"
        "## First ##\n\nText a.\n\n### Deeper\n\nText b.\n\n"
        "```\n## not a heading\n```\n\n"
        "## First\n\nAgain.\n\n"
        "##No space is not a heading\n"
    )
    text = make(body=body)
    reading = parse_reading(pathlib.Path("r.md"), text)
    assert [s.title for s in reading.sections] == ["First", "First"]
    assert "### Deeper" in reading.sections[0].body
    assert "## not a heading" in reading.sections[0].body
    lines = text.split("\n")
    assert [lines[s.line - 1] for s in reading.sections] == ["## First ##", "## First"]
    assert reading.sections[1].body == "Again.\n\n##No space is not a heading"


def test_no_sections_means_all_intro() -> None:
    reading = parse_reading(pathlib.Path("r.md"), make(body="Just one paragraph.\n"))
    assert reading.sections == ()
    assert reading.intro == "Just one paragraph."


def test_word_count_strips_markup() -> None:
    body = "# Big *bold* _it_ **x**\n\n> quoted [link text](http://example.org/a-b-c) ![alt](i.png) – —\n"
    reading = parse_reading(pathlib.Path("r.md"), make(body=body))
    # Big bold it x quoted link text alt
    assert reading.words == 8


def test_minutes_rounding() -> None:
    words = " ".join(["word"] * (WORDS_PER_MINUTE + 1))
    reading = parse_reading(pathlib.Path("r.md"), make(body=words))
    assert reading.words == WORDS_PER_MINUTE + 1
    assert reading.minutes == 2
    assert Section("s", 1, "", 0).minutes == 1
    assert Section("s", 1, "", 400).minutes == 2


def test_crlf_and_bom() -> None:
    text = "\ufeff" + make().replace("\n", "\r\n")
    reading = parse_reading(pathlib.Path("r.md"), text)
    assert reading.sections[0].line == 12
    assert reading.intro == "Intro text here."


def test_excerpt() -> None:
    body = "Alpha beta gamma delta.\n\nEpsilon [zeta](http://z) eta.\n"
    reading = parse_reading(pathlib.Path("r.md"), make(body=body))
    assert reading.excerpt() == "Alpha beta gamma delta. Epsilon zeta eta."
    assert reading.excerpt(20) == "Alpha beta gamma…"
    assert reading.excerpt(24) == "Alpha beta gamma delta.…"
    assert reading.excerpt(3) == "Al…"
    for chars in range(1, 50):
        assert len(reading.excerpt(chars)) <= chars
    with pytest.raises(ValueError):
        reading.excerpt(0)


def test_excerpt_without_intro_uses_first_section() -> None:
    reading = parse_reading(pathlib.Path("r.md"), make(body="## Only\n\nSection text.\n"))
    assert reading.intro == ""
    assert reading.excerpt() == "Section text."


def test_reading_error_str() -> None:
    assert str(ReadingError(pathlib.Path("readings/x.md"), 12, "bad")) == "readings/x.md:12: bad"
    assert str(ReadingError(pathlib.Path("readings/x.md"), 0, "bad")) == "readings/x.md: bad"


# ------------------------------------------------------------------- bad content


def test_published_not_a_date() -> None:
    error = only_error(make(front_with(published='"20 Oct"')))
    assert str(error) == "readings/x.md:5: 'published' must be a TOML date like 2003-10-20, got \"20 Oct\""


def test_published_quoted_iso_date_and_datetime() -> None:
    error = only_error(make(front_with(published='"2003-10-20"')))
    assert error.line == 5
    assert "remove the quotes" in error.message
    error = only_error(make(front_with(published="2003-10-20T10:00:00")))
    assert "date-time" in error.message


def test_no_front_matter() -> None:
    error = only_error("# Title\n\nText\n")
    assert str(error) == (
        "readings/x.md:1: no front matter: the file must start with a line '+++', "
        "then the TOML metadata (title, author, ...), then another '+++' line"
    )
    assert "YAML" in only_error("---\ntitle: x\n---\n").message
    assert "blank lines" in only_error("\n" + make()).message


def test_unclosed_front_matter() -> None:
    error = only_error('+++\ntitle = "x"\n\nBody text\n')
    assert error.line == 1
    assert "never closed" in error.message
    assert "'+++'" in error.message


def test_toml_syntax_error_line_is_offset() -> None:
    front = '+++\ntitle = "x"\nauthor = "y"\npublished = 20 Oct\n+++\n'
    error = only_error(make(front))
    assert error.line == 4  # line 3 of the TOML, plus the opening '+++'
    assert error.message.startswith("invalid TOML in the front matter:")
    assert str(error).startswith("readings/x.md:4: ")


def test_toml_error_at_end_of_front_matter() -> None:
    front = '+++\ntitle = "x\n+++\n'
    error = only_error(make(front))
    assert error.line == 3
    assert "unclosed quote" in error.message


def test_toml_duplicate_key_points_at_second_definition() -> None:
    front = VALID_FRONT.replace('author = "Jane Doe"\n', 'author = "Jane Doe"\nauthor = "Again"\n')
    error = only_error(make(front))
    assert error.line == 4
    assert "'author' is defined twice" in error.message


def test_toml_error_still_reports_body_problems() -> None:
    errors = errors_of('+++\ntitle = = "x"\n+++\n\n## \n\nText.\n')
    assert [e.line for e in errors] == [2, 5]


def test_empty_file() -> None:
    for text in ("", "  \n\n"):
        error = only_error(text)
        assert error.line == 1
        assert error.message.startswith("empty file")


def test_nul_bytes_in_text() -> None:
    error = only_error(make() + "more\x00binary")
    assert error.line == 15
    assert "binary" in error.message


def test_unknown_key_with_suggestion() -> None:
    front = VALID_FRONT.replace('summary = "A short summary."', 'summery = "A short summary."')
    errors = errors_of(make(front))
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (1, "missing required field 'summary'"),
        (6, "unknown key 'summery' in the front matter"),
    ]
    assert "did you mean 'summary'?" in errors[1].message


def test_unknown_table_key() -> None:
    front = VALID_FRONT.replace('questions = ["What is it about?"]\n', 'questions = ["Q?"]\n[extra]\nx = 1\n')
    error = only_error(make(front))
    assert error.line == 8
    assert "unknown key 'extra'" in error.message


def test_wrong_types_reported_at_once() -> None:
    front = front_with(
        title="42",
        author='""',
        tags='"bolivia"',
        questions='["Fine?", 3, "  "]',
        language="true",
        source="[1]",
    )
    errors = errors_of(make(front))
    messages = sorted(e.message for e in errors)
    assert messages == sorted(
        [
            "'title' must be a string in quotes, got 42 (a number)",
            "'author' must not be empty",
            "'source' must be a string in quotes, got a list",
            '\'language\' must be a language code like "en" or "es", got true (a boolean)',
            '\'tags\' must be a list of strings like ["a", "b"], got "bolivia"',
            "'questions' item 2 must be a string in quotes, got 3 (a number)",
            "'questions' item 3 is empty: remove it or fill it in",
        ]
    )
    text = make(front).split("\n")
    for error in errors:
        key = error.message.split("'")[1]
        assert text[error.line - 1].startswith(f"{key} = "), str(error)


def test_missing_required_fields_reported_at_once() -> None:
    front = '+++\nlanguage = "en"\n+++\n'
    errors = errors_of(make(front))
    missing = {re.sub(r"missing required field '(\w+)'.*", r"\1", e.message) for e in errors}
    assert missing == {"title", "author", "publisher", "published", "summary", "questions"}
    assert all(e.line == 1 and str(e).startswith("readings/x.md:1: missing") for e in errors)


def test_questions_must_not_be_empty() -> None:
    error = only_error(make(front_with(questions="[]")))
    assert error.line == 7
    assert "at least one discussion question" in error.message


def test_empty_body_and_empty_heading() -> None:
    error = only_error(VALID_FRONT + "\n\n")
    assert error.line == 8
    assert "no text" in error.message
    error = only_error(make(body="Intro.\n\n##\n\nText.\n"))
    assert error.line == 12
    assert "empty '##' heading" in error.message


def test_invalid_slug() -> None:
    error = only_error(make(), name="Bad Name.md")
    assert error.line == 0
    assert "'bad-name.md'" in error.message
    assert str(error).startswith("readings/Bad Name.md: file name 'Bad Name.md' is not a valid slug")
    only_error(make(), name=("a" * 81) + ".md")
    only_error(make(), name="-leading.md")


# ---------------------------------------------------------------- the collection


def test_one_bad_file_does_not_stop_the_others(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "good-one.md", make())
    write(tmp_path, "bad.md", "no front matter\n")
    write(tmp_path, "good-two.md", make())
    collection = load_collection(tmp_path)
    assert list(collection.readings) == ["good-one", "good-two"]
    assert [str(e) for e in collection.errors] == [
        f"{tmp_path / 'bad.md'}:1: no front matter: the file must start with a line '+++', "
        "then the TOML metadata (title, author, ...), then another '+++' line"
    ]


def test_ignored_files(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "README.md", "# About this folder\n")
    write(tmp_path, "readme.md", "not a reading")
    write(tmp_path, "notes.txt", "not a reading")
    write(tmp_path, ".#draft.md", "editor lock file")
    write(tmp_path, "real.md", make())
    (tmp_path / "subdir").mkdir()
    write(tmp_path / "subdir", "nested.md", "not loaded: not recursive")
    collection = load_collection(tmp_path)
    assert collection.errors == ()
    assert list(collection.readings) == ["real"]


def test_missing_directory_is_one_error(tmp_path: pathlib.Path) -> None:
    collection = load_collection(tmp_path / "nope")
    assert len(collection) == 0
    assert len(collection.errors) == 1
    assert str(collection.errors[0]).startswith(f"{tmp_path / 'nope'}: readings directory not found")


def test_directory_is_a_file(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "file", "x")
    collection = load_collection(path)
    assert len(collection.errors) == 1
    assert "not a directory" in collection.errors[0].message


def test_not_utf8(tmp_path: pathlib.Path) -> None:
    (tmp_path / "latin.md").write_bytes(make().encode("utf-8") + "caf\xe9\n".encode("latin-1"))
    (error,) = load_collection(tmp_path).errors
    assert error.path == tmp_path / "latin.md"
    assert error.line == 15
    assert "not valid UTF-8 (byte 0xe9 at column 4)" in error.message


def test_binary_and_utf16(tmp_path: pathlib.Path) -> None:
    (tmp_path / "bin.md").write_bytes(b"+++\n\x00\x01\x02")
    (tmp_path / "wide.md").write_bytes(make().encode("utf-16"))
    errors = {e.path.name: e for e in load_collection(tmp_path).errors}
    assert errors["bin.md"].line == 2
    assert "binary file (contains NUL bytes)" in errors["bin.md"].message
    assert errors["wide.md"].line == 1
    assert "UTF-16" in errors["wide.md"].message


def test_empty_file_in_collection(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "empty.md", "")
    (error,) = load_collection(tmp_path).errors
    assert str(error).startswith(f"{tmp_path / 'empty.md'}:1: empty file")


def test_too_large_file_is_not_read(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.md"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: cheap to create
    calls: list[str] = []
    monkeypatch.setattr("circlebot.readings.load.parse_reading", lambda *a: calls.append("parsed"))
    (error,) = load_collection(tmp_path).errors
    assert calls == []
    assert error.path == big
    assert "file too large" in error.message
    assert str(error).startswith(f"{big}: file too large ({MAX_FILE_BYTES + 1:,} bytes")


def test_symlinks(tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside, "secret.md", make())
    readings = tmp_path / "readings"
    readings.mkdir()
    write(readings, "real.md", make())
    (readings / "escape.md").symlink_to(outside / "secret.md")
    (readings / "alias.md").symlink_to("real.md")
    (readings / "broken.md").symlink_to("missing.md")
    collection = load_collection(readings)
    assert list(collection.readings) == ["alias", "real"]
    errors = {e.path.name: e for e in collection.errors}
    assert set(errors) == {"escape.md", "broken.md"}
    assert "symlink points outside the readings directory" in errors["escape.md"].message
    assert "broken symlink" in errors["broken.md"].message


def test_directory_named_like_a_reading(tmp_path: pathlib.Path) -> None:
    (tmp_path / "folder.md").mkdir()
    (error,) = load_collection(tmp_path).errors
    assert "not a regular file" in error.message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_does_not_block(tmp_path: pathlib.Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")
    (error,) = load_collection(tmp_path).errors
    assert "not a regular file" in error.message


def test_collection_order_get_iter_len(tmp_path: pathlib.Path) -> None:
    for slug in ("c-three", "a-one", "b-two"):
        write(tmp_path, f"{slug}.md", make())
    collection = load_collection(tmp_path)
    assert len(collection) == 3
    assert [r.slug for r in collection] == ["a-one", "b-two", "c-three"]
    assert list(collection.readings) == ["a-one", "b-two", "c-three"]
    assert collection.get("b-two") is collection.readings["b-two"]
    assert collection.get("zzz") is None
    with pytest.raises(TypeError):
        collection.readings["x"] = collection.readings["a-one"]  # type: ignore[index]


def test_search(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "old.md", make(front_with(title='"Cuba libre"', published="1990-01-01")))
    write(tmp_path, "new-b.md", make(front_with(title='"Cuba today"', published="2020-01-01")))
    write(tmp_path, "new-a.md", make(front_with(title='"Other"', published="2020-01-01", tags='["cuba"]')))
    write(tmp_path, "bolivia.md", make(front_with(author='"Ana Cuba"', published="2000-01-01")))
    collection = load_collection(tmp_path)
    assert collection.errors == ()
    assert [r.slug for r in collection.search("")] == ["new-a", "new-b", "bolivia", "old"]
    assert [r.slug for r in collection.search("  CUBA ")] == ["new-a", "new-b", "bolivia", "old"]
    assert [r.slug for r in collection.search("cuba libre")] == ["old"]
    assert [r.slug for r in collection.search("bolivia")] == ["bolivia"]  # by slug
    assert [r.slug for r in collection.search("ana")] == ["bolivia"]  # by author
    assert collection.search("summary") == []  # the summary is not searched


def test_collection_direct_construction_sorts() -> None:
    reading = parse_reading(pathlib.Path("b.md"), make())
    other = parse_reading(pathlib.Path("a.md"), make())
    collection = Collection({"b": reading, "a": other})
    assert list(collection.readings) == ["a", "b"]
    assert collection.errors == ()

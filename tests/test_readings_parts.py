"""Parts for meetings, per-section questions in the front matter, and `readings check` (pure)."""

from __future__ import annotations

import pathlib

import pytest

from circlebot.cli import main
from circlebot.readings import (
    WORDS_PER_MINUTE,
    ReadingFormatError,
    check_collection,
    load_collection,
    parse_reading,
)

REPO = pathlib.Path(__file__).resolve().parent.parent
SEED = "bolivia-2003-first-balance-sheet"

FRONT = """\
+++
title = "Parts test"
author = "Jane Doe"
publisher = "Test Press"
published = 2020-05-01
summary = "A short summary."
questions = ["Whole?"]
{extra}
+++
"""


def words(n: int) -> str:
    return " ".join(["word"] * n)


def article(sizes: list[int], extra: str = "", intro: int = 0) -> str:
    body = (words(intro) + "\n\n" if intro else "") + "".join(
        f"## S{i}\n\n{words(n)}\n\n" for i, n in enumerate(sizes, 1)
    )
    return FRONT.format(extra=extra) + "\n" + body


def parse(text: str, name: str = "x.md") -> object:
    return parse_reading(pathlib.Path(name), text)


def test_a_short_reading_is_one_part() -> None:
    reading = parse_reading(pathlib.Path("x.md"), article([300, 300], intro=100))
    (part,) = reading.parts(25)
    assert (part.index, part.count, part.intro) == (1, 1, True)
    assert part.words == reading.words and part.title == "Introduction … S2"


def test_parts_never_cut_a_section_and_fit_the_target() -> None:
    reading = parse_reading(pathlib.Path("x.md"), article([1000, 1000, 1000, 1000, 1000, 1000]))
    parts = reading.parts(10)  # 2000 words per meeting
    assert [len(p.sections) for p in parts] == [2, 2, 2]
    assert [p.index for p in parts] == [1, 2, 3] and all(p.count == 3 for p in parts)
    assert [s for p in parts for s in p.sections] == list(reading.sections)
    assert all(p.words <= 10 * WORDS_PER_MINUTE + 2 for p in parts)
    assert sum(p.words for p in parts) == reading.words


def test_a_section_longer_than_the_target_is_a_part_of_its_own() -> None:
    reading = parse_reading(pathlib.Path("x.md"), article([300, 3000, 300]))
    parts = reading.parts(5)
    assert [tuple(s.title for s in p.sections) for p in parts] == [("S1",), ("S2",), ("S3",)]
    assert parts[1].minutes == 16


def test_slack_keeps_a_slightly_long_reading_in_one_meeting() -> None:
    reading = parse_reading(pathlib.Path("x.md"), article([2600, 2600]))  # 5202 words: 26 min
    assert len(reading.parts(25)) == 1
    assert len(reading.parts(20)) == 2


def test_parts_are_balanced_and_deterministic() -> None:
    reading = parse_reading(pathlib.Path("x.md"), article([900, 100, 100, 900, 500, 500]))
    first = reading.parts(10)
    assert first == reading.parts(10)
    assert [p.words for p in first] == [1102, 1904] or max(p.words for p in first) <= 2000
    with pytest.raises(ValueError):
        reading.parts(0)


def test_a_reading_without_sections_is_one_part() -> None:
    reading = parse_reading(pathlib.Path("x.md"), FRONT.format(extra="") + "\n" + words(9000))
    (part,) = reading.parts(10)
    assert part.title == "Introduction" and part.sections == ()


def test_the_seed_splits_into_consecutive_parts() -> None:
    seed = load_collection(REPO / "readings").get(SEED)
    assert seed is not None
    assert len(seed.parts(25)) == 1
    parts = seed.parts(10)
    assert len(parts) == 2 and parts[0].intro and not parts[1].intro
    assert all(p.minutes <= 11 for p in parts)
    assert len(seed.parts(5)) == 4
    assert parts[0].sections[0].title == "Lack of a revolutionary leadership"


# --------------------------------------------------------------------------- section questions


def test_section_questions_attach_to_their_section() -> None:
    extra = '[sections."s2"]\nquestions = ["Why S2?", "And then?"]\n[sections."“S1”"]\nquestions = ["S1?"]'
    reading = parse_reading(pathlib.Path("x.md"), article([10, 10], extra))
    assert reading.sections[0].questions == ("S1?",)  # case and quote marks are ignored
    assert reading.sections[1].questions == ("Why S2?", "And then?")
    assert reading.questions == ("Whole?",)


def test_questions_for_a_missing_section_are_an_error_with_its_line() -> None:
    extra = '[sections."S1"]\nquestions = ["fine"]\n[sections."S3 typo"]\nquestions = ["lost?"]'
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("x.md"), article([10, 10], extra))
    (error,) = info.value.errors
    assert error.line == 10, error
    assert 'section "S3 typo"' in error.message and "no '## ' heading" in error.message


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('sections = "S1"', "'sections' must be tables"),
        ('[sections."S1"]\nquestion = ["x"]', "unknown key 'question'"),
        ('[sections."S1"]\nquestions = "x"', "must be a list of strings"),
        ("[sections]\nS1 = 3", "must be a table with a questions list"),
    ],
)
def test_bad_section_tables_are_reported(extra: str, message: str) -> None:
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("x.md"), article([10], extra))
    assert any(message in e.message for e in info.value.errors), info.value.errors


# --------------------------------------------------------------------------- check


def test_check_reports_empty_sections_duplicates_and_skipped_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "good.md").write_text(article([10]), encoding="utf-8")
    (tmp_path / "twin.md").write_text(article([10]), encoding="utf-8")  # same title: a warning
    (tmp_path / "empty-section.md").write_text(article([10, 0, 10]), encoding="utf-8")
    (tmp_path / "Good.md").write_text(article([10]), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("plain", encoding="utf-8")
    (tmp_path / "broken.md").write_text("+++\ntitle = \n+++\n", encoding="utf-8")
    report = check_collection(tmp_path)
    messages = [str(e) for e in report.errors]
    assert any("empty-section.md:" in m and "section 'S2' is empty" in m for m in messages), messages
    assert any("Good.md" in m and "duplicate slug 'good'" in m for m in messages), messages
    assert any("broken.md:3:" in m and "invalid TOML" in m for m in messages), messages
    warnings = [str(w) for w in report.warnings]
    assert any("notes.txt" in w and "skipped" in w for w in warnings)
    assert any("same title as" in w for w in warnings)


def test_cli_check_exit_codes(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["readings", "check", "--dir", str(REPO / "readings")]) == 0
    (tmp_path / "bad.md").write_text(article([10], '[sections."Nope"]\nquestions = ["?"]'), encoding="utf-8")
    assert main(["readings", "check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.md:8:" in err and "Nope" in err


def test_cli_show_prints_the_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["readings", "show", "--dir", str(REPO / "readings"), SEED, "--part-minutes", "5"]) == 0
    out = capsys.readouterr().out
    assert "Parts for meetings of about 5 min: 4" in out and "Part 4: Mesa forms government" in out

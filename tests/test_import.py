"""`circlebot readings import`: plain text and Markdown into collection files, and hostile input."""

from __future__ import annotations

import datetime
import os
import pathlib

import pytest

from circlebot.cli import main
from circlebot.readings import MAX_FILE_BYTES, load_collection, parse_reading
from circlebot.readings.importer import ImportFailure, ImportOptions, convert, import_files, slug_from_name

SEED_TXT = pathlib.Path(__file__).resolve().parent / "data" / "bolivia-2003-first-balance-sheet.txt"
SEED_MD = pathlib.Path(__file__).resolve().parent.parent / "readings" / "bolivia-2003-first-balance-sheet.md"
CAPTIONS = ("Miner with a dynamite stick", "The masses take oath in La Paz on Saturday 18")
OPTIONS = ImportOptions(
    author="International Marxist Tendency", publisher="In Defence of Marxism (marxist.com)"
)
SEED_OPTIONS = ImportOptions(
    author=OPTIONS.author, publisher=OPTIONS.publisher, drop_lines=CAPTIONS, cut_after_date=True
)



SIMPLE = """\
A short article

By Ada Writer

The opening paragraph says what this is about. It has two sentences.

A heading here

“This is a quotation that is long enough to count as one,” said Bea Speaker.

Is this a question heading?

The end comes here. Therefore we must act.

March 3, 2021

Join us
"""


def test_seed_imports_with_the_same_sections_as_the_hand_made_reading(tmp_path: pathlib.Path) -> None:
    report = import_files([SEED_TXT], tmp_path, SEED_OPTIONS)
    assert report.failed == [] and len(report.imported) == 1
    collection = load_collection(tmp_path)
    assert collection.errors == ()
    imported = collection.get("bolivia-2003-first-balance-sheet")
    hand_made = parse_reading(SEED_MD, SEED_MD.read_text(encoding="utf-8"))
    assert imported is not None
    assert imported.title == hand_made.title
    assert imported.published == datetime.date(2003, 10, 20)
    assert [s.title for s in imported.sections] == [s.title for s in hand_made.sections]
    assert abs(imported.words - hand_made.words) < 20
    assert "Join us" not in imported.path.read_text(encoding="utf-8")  # the trailer is cut
    assert any("Zuvieta" in q and "(from a quote from Zuvieta" in q for q in imported.questions)


def test_seed_without_flags_shows_why_the_flags_exist(tmp_path: pathlib.Path) -> None:
    converted = convert(SEED_TXT.name, SEED_TXT.read_text(encoding="utf-8"), OPTIONS)
    assert "Miner with a dynamite stick" in converted.headings  # a caption looks like a heading
    assert "Join us" in converted.headings  # the trailer is kept without --cut-after-date


def test_metadata_is_taken_from_the_text() -> None:
    converted = convert("simple.txt", SIMPLE, ImportOptions(publisher="P"))
    reading = parse_reading(pathlib.Path("simple.md"), converted.text)
    assert reading.author == "Ada Writer" and reading.published == datetime.date(2021, 3, 3)
    assert reading.title == "A short article"
    assert reading.summary.startswith("The opening paragraph says")
    assert [s.title for s in reading.sections] == ["A heading here", "Is this a question heading?"]
    assert reading.sections[-1].body.endswith("Join us")  # the last line has no paragraph after it
    assert "By Ada Writer" not in converted.text and "March 3, 2021" not in converted.text
    assert any("Bea Speaker" in q for q in reading.questions)
    assert any(q.startswith("Is this a question heading?") for q in reading.questions)


def test_options_win_and_missing_metadata_is_asked_for() -> None:
    text = "Title\n\nJust one paragraph here.\n"
    with pytest.raises(ImportFailure, match=r"does not give author, publisher, published: give --author"):
        convert("t.txt", text, ImportOptions())
    options = ImportOptions(
        author="A",
        publisher="P",
        published=datetime.date(2000, 1, 2),
        tags=("x", "y"),
        summary="Given.",
        language="es",
        source="http://e.org",
        organisation="O",
    )
    reading = parse_reading(pathlib.Path("t.md"), convert("t.txt", text, options).text)
    assert (reading.summary, reading.language, reading.tags, reading.organisation) == (
        "Given.",
        "es",
        ("x", "y"),
        "O",
    )
    assert reading.questions  # a generic question when the text gives nothing to ask about


def test_markdown_keeps_its_headings() -> None:
    text = "# Title\n\nBy Someone\n\nIntro.\n\n# Part one\n\nText one.\n\n### Detail\n\nMore.\n\nShort line\n\nEnd."
    reading = parse_reading(
        pathlib.Path("m.md"),
        convert("m.md", text, ImportOptions(publisher="P", published=datetime.date(2001, 1, 1))).text,
    )
    assert [s.title for s in reading.sections] == ["Part one"]
    assert "### Detail" in reading.sections[0].body and "Short line" in reading.sections[0].body


def test_plain_text_markup_is_escaped_and_metadata_quoted() -> None:
    text = 'Title with "quotes" and \\ backslash\x7f\n\n# not a heading in plain text.\n\nBody.\n'
    converted = convert(
        "t.txt", text, ImportOptions(author='A "B"', publisher="P", published=datetime.date(2000, 1, 1))
    )
    reading = parse_reading(pathlib.Path("t.md"), converted.text)
    assert reading.title == 'Title with "quotes" and \\ backslash'
    assert reading.sections == () and "\\# not a heading" in reading.intro


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"   \n\n", "empty file"),
        (b"Title\n\x00\x01binary", "binary file"),
        (b"\xff\xfeT\x00i\x00", "binary file"),
        (b"Title\n\nbad \xff byte\n", "not valid UTF-8 (line 3)"),
        (b"+++\ntitle = \n+++\nbody", "already has front matter"),
        (b"x" * 400 + b"\n\nbody", "the first line is not a title"),
    ],
)
def test_hostile_files_get_clear_errors(tmp_path: pathlib.Path, content: bytes, message: str) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    report = import_files([source], out, OPTIONS)
    assert report.imported == [] and len(report.failed) == 1
    assert message in report.failed[0][1], report.failed
    assert list(out.iterdir()) == []


def test_huge_and_special_files_are_refused(tmp_path: pathlib.Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    report = import_files([huge, tmp_path, tmp_path / "missing.txt"], tmp_path, OPTIONS)
    reasons = [r for _, r in report.failed]
    assert (
        "file too large" in reasons[0] and "not a regular file" in reasons[1] and "cannot open" in reasons[2]
    )


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("../../etc/passwd.txt", "passwd"),
        ("..\\..\\Evil Name!.TXT", "evil-name"),
        ("Ünïcode Tïtle.md", "n-code-t-tle"),
        (".hidden", "hidden"),
        ("a" * 200 + ".txt", "a" * 80),
    ],
)
def test_slugs_from_file_names_cannot_escape(name: str, slug: str) -> None:
    assert slug_from_name(name) == slug


@pytest.mark.parametrize("slug", ["../evil", "/abs", "Upper", "a/b", "", "-x", "x" * 81])
def test_bad_slugs_are_refused(tmp_path: pathlib.Path, slug: str) -> None:
    source = tmp_path / "in.txt"
    source.write_text(SIMPLE, encoding="utf-8")
    report = import_files([source], tmp_path, ImportOptions(publisher="P", slug=slug))
    assert report.imported == [] and "not a valid slug" in report.failed[0][1]


def test_a_title_gives_the_slug_when_the_name_has_none(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "!!!.txt"
    source.write_text(SIMPLE, encoding="utf-8")
    report = import_files([source], tmp_path, ImportOptions(publisher="P"))
    assert report.imported[0][1].name == "a-short-article.md"


def test_never_overwrites_without_force_and_replaces_a_symlink_not_its_target(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "art.txt"
    source.write_text(SIMPLE, encoding="utf-8")
    out = tmp_path / "readings"
    out.mkdir()
    (out / "art.md").write_text("keep me", encoding="utf-8")
    report = import_files([source], out, ImportOptions(publisher="P"))
    assert "exists already: give --force" in report.failed[0][1]
    assert (out / "art.md").read_text(encoding="utf-8") == "keep me"
    outside = tmp_path / "outside.md"
    outside.write_text("untouched", encoding="utf-8")
    (out / "art.md").unlink()
    os.symlink(outside, out / "art.md")
    report = import_files([source], out, ImportOptions(publisher="P", force=True))
    assert report.failed == []
    assert outside.read_text(encoding="utf-8") == "untouched"
    assert not (out / "art.md").is_symlink() and "A short article" in (out / "art.md").read_text(
        encoding="utf-8"
    )
    assert [p.name for p in out.iterdir()] == ["art.md"]  # no temporary file left behind


def test_many_files_progress_and_every_failure_reported(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for i in range(4):
        f = tmp_path / f"a{i}.txt"
        f.write_text(SIMPLE if i != 2 else "", encoding="utf-8")
        files.append(str(f))
    dup = tmp_path / "sub"
    dup.mkdir()
    (dup / "a0.txt").write_text(SIMPLE, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    code = main(["readings", "import", "--dir", str(out), "--publisher", "P", *files, str(dup / "a0.txt")])
    captured = capsys.readouterr()
    assert code == 1
    assert "[1/5]" in captured.err and "[5/5]" in captured.err
    assert "a2.txt: empty file" in captured.err
    assert "gives the slug 'a0' like" in captured.err
    assert "3 imported, 2 failed." in captured.out
    assert main(["readings", "check", "--dir", str(out)]) == 0


def test_cli_import_refuses_a_bad_date_and_slug_with_many_files(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["readings", "import", "--dir", str(tmp_path), "--published", "20/10/2003", "x.txt"]) == 2
    assert "--published must be a date" in capsys.readouterr().err
    assert main(["readings", "import", "--dir", str(tmp_path), "--slug", "s", "a.txt", "b.txt"]) == 1
    assert "--slug names one file only" in capsys.readouterr().err
    assert main(["readings", "import", "--dir", str(tmp_path / "nope"), "a.txt"]) == 1
    assert "a.txt: cannot open the file" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()  # nothing imported: no directory made either


def test_cli_import_of_the_seed_into_a_new_directory_passes_its_check(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "readings"
    code = main(
        ["readings", "import", "--dir", str(out), "--author", OPTIONS.author or "", "--publisher",
         OPTIONS.publisher or "", str(SEED_TXT)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 imported, 0 failed." in captured.out
    assert main(["readings", "check", "--dir", str(out)]) == 0, capsys.readouterr().err
    text = (out / "bolivia-2003-first-balance-sheet.md").read_text(encoding="utf-8")
    # a heading-like line with no text before the next heading is text, not an empty section
    assert "\n\nYou can find more photos on the events in Bolivia here\n\n## Join us\n\n" in text


def test_cli_import_says_why_the_directory_cannot_be_made(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "simple.txt"
    source.write_text(SIMPLE, encoding="utf-8")
    (tmp_path / "a-file").write_text("in the way")
    assert main(["readings", "import", "--dir", str(tmp_path / "a-file" / "readings"), "--publisher", "P",
                 str(source)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert f"could not import {source}: cannot create the readings directory {tmp_path / 'a-file' / 'readings'}" in err


@pytest.mark.parametrize(
    ("text", "sections"),
    [
        ("Title\n\nIntro text.\n\nOne\n\nTwo\n\nText of two.\n", ["Two"]),
        ("Title\n\nIntro text.\n\nOne\n\nText.\n\nTwo\n\n* * *\n", ["One"]),
        ("Title\n\nIntro text.\n\nOne\n\nTwo\n", ["One"]),
        ("Title\n\nOne\n\nTwo\n\nThree\n\nText.\n\nFour\n\nFive\n", ["Three", "Four"]),
        ("# Title\n\nIntro.\n\n## One\n\n## Two\n\nText.\n\n## Three\n", ["Two"]),
        ("# Title\n\nIntro.\n\n## One\n\n### Sub\n\n## Two\n\n---\n", ["One"]),
    ],
)
def test_a_heading_without_text_after_it_is_not_a_section(
    text: str, sections: list[str], tmp_path: pathlib.Path
) -> None:
    name = "a.md" if text.startswith("#") else "a.txt"
    converted = convert(name, text, ImportOptions(author="A", publisher="P", published=datetime.date(2020, 1, 1)))
    assert list(converted.headings) == sections
    (tmp_path / "a.md").write_text(converted.text, encoding="utf-8")
    assert main(["readings", "check", "--dir", str(tmp_path)]) == 0
    reading = load_collection(tmp_path).readings["a"]
    assert [s.title for s in reading.sections] == sections
    assert all(s.words > 0 for s in reading.sections)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Only a title\n", "there is no text after the title"),
        ("A title\n\nOctober 20, 2003\n\nBy Ada Writer\n", "there is no text after the title"),
        ("\x1b\n\nA title\n\nSome text.\n", "the first line is not a title"),
        ("A title\n\nBy \x1b\n\nSome text.\n", "the text does not give author"),
    ],
)
def test_an_article_that_cannot_be_a_reading_says_why(text: str, reason: str) -> None:
    with pytest.raises(ImportFailure) as info:
        convert("a.txt", text, ImportOptions(publisher="P", published=datetime.date(2020, 1, 1)))
    assert reason in str(info.value) and "does not pass the check" not in str(info.value)

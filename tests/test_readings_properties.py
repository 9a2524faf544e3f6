"""Properties of reading files: whatever a file holds, it loads or its problems are reported with file and line.

Hypothesis builds files from the pieces a reading is made of (front-matter lines, valid and broken; body lines,
headings and fences) mixed with arbitrary text and bytes; deterministic (derandomize) and bounded.
"""

from __future__ import annotations

import datetime
import pathlib
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circlebot.readings import ReadingError, ReadingFormatError, check_collection, load_collection, parse_reading
from circlebot.readings.check import reading_problems
from circlebot.readings.importer import ImportFailure, ImportOptions, convert

PROPERTY = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FRONT_LINES = [
    'title = "A title"',
    'author = "An Author"',
    'publisher = "A Press"',
    "published = 2003-10-20",
    'summary = "A summary."',
    'questions = ["Why?"]',
    'tags = ["a", "b"]',
    'language = "es"',
    'source = "somewhere"',
    'organisation = "an org"',
    'published = "20 Oct"',
    "published = 2003-02-30",
    "published = 2003-10-20T10:00:00",
    "published = 10:00:00",
    "title = 42",
    'title = ""',
    "questions = []",
    "questions = [",
    '  "a question?",',
    "]",
    'questions = [1, "a", "  "]',
    '[sections."One"]',
    '[sections."Nope"]',
    "[sections]",
    "One = 3",
    "sections = 1",
    'questions = ["Why one?"]',
    'question = ["x"]',
    "[extra]",
    "x = 1",
    'title = "again"',
    "# a comment",
    "",
    "a.b = 1",
    'title = """multi',
    'line"""',
    "title = 'literal'",
    "= broken",
    "[[array]]",
    "k = {a = 1}",
    'unicode = "é ’ «» 中文"',
    'esc = "\\u00e9 \\q"',
    "+++ not a delimiter",
]
BODY_LINES = [
    "Intro text with words.",
    "## One",
    "## Two",
    "##",
    "## ",
    "### Sub",
    "```",
    "~~~",
    "````",
    "code ## not a heading",
    "+++",
    "[ref]: http://example.com",
    "<b>bold</b> [a link](http://x)",
    "",
    "   ## Three spaces",
    "    ## Four spaces",
    "## Closing ##",
    "* * *",
    "\u2028",
]
OPENINGS = ["+++\n"] * 6 + ["+++ \n", "", "---\n", "\n+++\n", "\ufeff+++\n"]


def lines(pieces: list[str], most: int) -> st.SearchStrategy[list[str]]:
    """Up to *most* lines, nearly all from *pieces*, now and then arbitrary text."""
    return st.lists(st.one_of(st.sampled_from(pieces), st.sampled_from(pieces), st.text(max_size=20)), max_size=most)


VALID_EXTRAS = [*FRONT_LINES[6:10], "", "# a comment"]
VALID_BODY = ["Intro text with words.", "## One", "Text of one.", "## Two", "### Sub", "More text.", "```",
              "## in code", "```", "[a link](http://x) and <i>markup</i>", ""]  # fmt: skip


@st.composite
def reading_texts(draw: st.DrawFn) -> str:
    """A reading-like text: an opening, front-matter lines, maybe a closing '+++', body lines, some damage.

    A quarter are well-formed readings with a few optional lines and sections (so that loading succeeds
    often), the rest are built from valid and broken pieces alike.
    """
    if draw(st.sampled_from([True, False, False, False])):
        front = FRONT_LINES[:6] + draw(st.lists(st.sampled_from(VALID_EXTRAS), max_size=3))
        body = ["Intro text with words.", *draw(st.lists(st.sampled_from(VALID_BODY), max_size=8))]
        if "## One" in body and draw(st.booleans()):
            front += ['[sections."one"]', 'questions = ["Why one?"]']
        return "+++\n" + "\n".join(front) + "\n+++\n" + "\n".join(body)
    front = draw(lines(FRONT_LINES, 4))
    if draw(st.sampled_from([True, True, True, False])):  # most of the time, the fields a reading needs
        front = FRONT_LINES[:6] + front
    closing = draw(st.sampled_from(["+++\n"] * 5 + ["+++", "", "+++\n\n"]))
    body = draw(lines(BODY_LINES, 10))
    newline = draw(st.sampled_from(["\n"] * 4 + ["\r\n", "\r"]))
    text = draw(st.sampled_from(OPENINGS)) + newline.join(front) + "\n" + closing + newline.join(body)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # a character that should not be there, somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\x00", "\r", "\ufeff", '"', "[", "\n", "é"])) + text[at:]
    return text


@st.composite
def file_bytes(draw: st.DrawFn) -> bytes:
    """What a reading file may hold: a reading-like text (maybe broken as UTF-8), or any bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    data = draw(reading_texts()).encode("utf-8")
    damage = draw(st.sampled_from([b""] * 6 + [b"\xff", b"\xc3", b"\xff\xfe"]))
    at = draw(st.integers(0, len(data)))
    return data[:at] + damage + data[at:]


def assert_reported(errors: tuple[ReadingError, ...], path: pathlib.Path, data: bytes) -> None:
    """Every problem names the file and a line of it (0: the file as a whole) and says something."""
    assert errors
    last_line = data.count(b"\n") + data.count(b"\r") + 1
    for error in errors:
        assert error.path == path
        assert 0 <= error.line <= last_line, (error, last_line)
        assert error.message.strip()
        prefix = f"{path}:{error.line}: " if error.line else f"{path}: "
        assert str(error).startswith(prefix)


@PROPERTY
@given(data=file_bytes(), name=st.sampled_from(["reading.md", "reading.md", "Bad Name.md"]))
def test_any_file_loads_or_is_reported_with_file_and_line(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        directory = pathlib.Path(scratch) / "readings"
        directory.mkdir()
        path = directory / name
        path.write_bytes(data)
        collection = load_collection(directory)
        if collection.errors:
            assert len(collection) == 0
            assert_reported(collection.errors, path, data)
        else:
            (reading,) = collection
            assert reading.path == path and reading.words > 0
            assert all(section.title and section.line > 1 for section in reading.sections)
            assert isinstance(reading.published, datetime.date) and reading.questions
        # the cache changes nothing: the load that fills it and the one that reads it give the same
        cache = pathlib.Path(scratch) / "cache" / "readings.cache"
        for _ in range(2):
            cached = load_collection(directory, cache=cache)
            assert dict(cached.readings) == dict(collection.readings) and cached.errors == collection.errors
        checked = check_collection(directory)
        assert set(collection.errors) <= set(checked.errors)
        assert_reported(checked.errors, path, data) if checked.errors else None


@PROPERTY
@given(text=st.one_of(reading_texts(), st.text(max_size=300)))
def test_parse_reading_raises_only_its_own_error(text: str) -> None:
    path = pathlib.Path("readings/x.md")
    try:
        reading = parse_reading(path, text)
    except ReadingFormatError as exc:
        assert_reported(exc.errors, path, text.encode("utf-8", "surrogatepass"))
    else:
        assert reading.slug == "x" and reading.words > 0


ARTICLE_LINES = [
    "A title",
    "# A Markdown title",
    "By Ada Writer",
    "October 20, 2003",
    "A heading",
    "Is this a question?",
    "“A quotation long enough to count as one for the starter questions,” said Bea Speaker.",
    "A paragraph of text. It has two sentences.",
    "## A Markdown heading",
    "### Deeper",
    "* * *",
    "- a list item",
    "#hashtag",
    "Join us",
]


@PROPERTY
@given(
    blocks=st.lists(st.one_of(st.sampled_from(ARTICLE_LINES), st.text(max_size=40)), max_size=12),
    markdown=st.booleans(),
)
def test_import_writes_only_what_check_accepts(blocks: list[str], markdown: bool) -> None:
    """An article either fails to convert with a reason, or gives a reading that loads and passes the check."""
    options = ImportOptions(author="A", publisher="P", published=datetime.date(2020, 1, 1))
    try:
        converted = convert("article.md" if markdown else "article.txt", "\n\n".join(blocks), options)
    except ImportFailure as exc:
        # a reason to give the user (no title, no text...), never the converter's own output failing the check
        assert str(exc).strip() and "does not pass the check" not in str(exc), str(exc)
        return
    reading = parse_reading(pathlib.Path(f"{converted.slug}.md"), converted.text)
    assert reading_problems(reading) == []
    assert [section.title for section in reading.sections] == list(converted.headings)

"""The word counter and the body scanner give what their plain definitions give; front-matter lines; pure, fast.

The definitions are written here, simply (a regular expression over the plain text; a line-by-line walk),
as oracles for the one fast implementation in circlebot.readings.
"""

from __future__ import annotations

import datetime
import pathlib
import re
import time

import pytest

from circlebot.readings import ReadingFormatError, load_collection, parse_reading, text
from circlebot.readings.body import parse_body
from circlebot.readings.model import Problems
from test_readings import VALID_FRONT as FRONT

TEXTS = [
    "",
    "word",
    "  two words\n",
    "a-b c—d — – … -- ...",
    "snake_case _ __ *bold* `code` # ## > quote",
    "[a link](http://example.com) and ![an image](x.png) and [ref][r]",
    "[r]: http://example.com/ref\n  [s]: <http://x>\n\x0c[t]: http://y",
    "<http://auto.link> <mailto:a@b.c> <b>bold</b> </i> <3 a<b",
    "tab\tseparated\x0bvertical\x0cform\x1cfile\u2028line\u00a0nbsp\u3000ideographic",
    "é ’quoted’ «guillemets» ١٢٣ ½ ² 中文 😀 🙂x",
    "## Heading ##\n### Sub\n\n```\ncode ## here\n```\n",
]


WORD_TOKEN_RE = re.compile(r"[^\s\w]*\w\S*")  # a whitespace-separated token holding a letter or digit


@pytest.mark.parametrize("sample", TEXTS)
def test_word_count_is_the_regex_definition(sample: str) -> None:
    expected = len(WORD_TOKEN_RE.findall(text.plain_text(sample)))
    assert text.count_words(sample) == expected


BODIES = [
    "",
    "Intro only.",
    "## One",  # a heading as the last line, without a newline
    "Intro.\n\n## One\n\nText one.\n\n## Two ##\n\nText two.\n",
    "## \n\ntext\n##\n",  # empty headings
    "   ## Three spaces\n    ## Four spaces: text\n##No space\n\t## Tab\n## C# here\n## trailing #  \n",
    "a ## b\n###  Deep\n## Real\nbody ## text\n",
    "## One\n\x0c[ref]: http://x\nword\n## Two\n\x0cform feed first\n",  # other leading whitespace
    "## One\n\n  [ref]: http://x\n\n## Two\n\u2028\n",
    "Intro [a](b) <i>x</i>\n## Links [here](http://x)\n\n<http://y> z\n",
    "```\n## in code\n```\n## After\ntext\n",
    "~~~~\n## in code\n~~~\n## still code\n~~~~~\n## Out\n",  # a shorter fence does not close
    "``` python\n## code\n   ```\n## Out\n```\nunclosed\n## never\n",
    "    ```\n## four spaces: not a fence\n",
    "## ```\n## next\n",  # a heading whose title is a fence
]

HEADING_RE = re.compile(r" {0,3}##(?=[ \t]|$)(.*)")
FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")


def scan_line_by_line(body: str, first_line: int) -> tuple[str, list[tuple[str, int, str, int]], int, list[int]]:
    """The definition: (intro, [(title, line, text, words)], words, lines of empty headings)."""
    intro: list[str] = []
    sections: list[tuple[str, int, list[str]]] = []
    current, fence, empty = intro, None, []
    for number, line in enumerate(body.split("\n"), start=first_line):
        fence_match = FENCE_RE.match(line)
        heading = HEADING_RE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif heading:
            title = re.sub(r"(?:^|[ \t]+)#+[ \t]*$", "", heading.group(1).strip()).strip()
            if not title:
                empty.append(number)
            current = []
            sections.append((title, number, current))
            continue
        current.append(line)
    built = [(title, number, "\n".join(lines).strip()) for title, number, lines in sections]
    return (
        "\n".join(intro).strip(),
        [(title, number, body, text.count_words(body)) for title, number, body in built],
        text.count_words(body),
        empty,
    )


@pytest.mark.parametrize("body", BODIES)
def test_body_scanner_is_the_line_by_line_definition(body: str) -> None:
    problems = Problems(pathlib.Path("a.md"))
    intro, sections, words = parse_body(body, 10, problems)
    expected_intro, expected_sections, expected_words, empty = scan_line_by_line(body, 10)
    assert intro == expected_intro
    assert [(s.title, s.line, s.body, s.words) for s in sections] == expected_sections
    assert words == expected_words
    heading_problems = [e.line for e in problems.errors if "heading" in e.message]
    assert heading_problems == empty
    assert any("no text" in e.message for e in problems.errors) == (words == 0)


def test_fenced_bodies_still_ignore_headings_in_code() -> None:
    body = "Intro.\n\n```\n## Not a heading\n```\n\n## Real\n\n~~~~\n## Neither\n~~~\nstill code\n~~~~\nText.\n"
    reading = parse_reading(pathlib.Path("a.md"), FRONT + "\n" + body)
    assert [s.title for s in reading.sections] == ["Real"]
    assert "## Neither" in reading.sections[0].body


def test_large_reading_is_read_whole(tmp_path: pathlib.Path) -> None:
    paragraph = "word " * 20_000  # 100 kB, more than one read chunk
    (tmp_path / "big.md").write_text(FRONT + "\n" + paragraph + "\n\n## End\n\nLast.\n", encoding="utf-8")
    collection = load_collection(tmp_path)
    assert not collection.errors
    reading = collection.readings["big"]
    assert reading.words == 20_000 + 1 + 1 and reading.sections[0].body == "Last."
    assert reading.published == datetime.date(2020, 5, 1)


def test_invalid_date_is_reported_by_line() -> None:
    text = FRONT.replace("published = 2020-05-01", "published = 2020-02-30") + "\nText.\n"
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("a.md"), text)
    (error,) = info.value.errors
    assert error.line == 5 and "invalid TOML" in error.message and "(column 13)" in error.message


def test_a_wrong_value_is_reported_on_the_line_of_its_key() -> None:
    front = FRONT.replace(
        'questions = ["What is it about?"]',
        "# comment ''' \"\"\"\n\ntags = [\n  \"fine\",\n  3,\n]\nquestions = [\"Q?\"]\n"
        '[sections."One"]\nquestions = ["?"]\n\n[sections."Two"]\nquestion = ["?"]',
    )
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("a.md"), front + "\nIntro.\n\n## One\n\nText.\n\n## Two\n\nMore.\n")
    lines = front.split("\n")
    assert [(error.line, error.message.split(":")[0]) for error in info.value.errors] == [
        (9, "'tags' item 2 must be a string in quotes, got 3 (a number)"),
        (17, "unknown key 'question' in sections.\"Two\""),
        (17, "sections.\"Two\" has no 'questions' list"),
    ]
    assert lines[9 - 1] == "tags = [" and lines[17 - 1] == '[sections."Two"]'


def test_a_huge_front_matter_with_a_wrong_value_is_reported_quickly() -> None:
    keys = "".join(f'k{number} = "v"\n' for number in range(400))
    text = '+++\nsummary = "' + "x" * 4_000_000 + '"\n' + keys + "title = 42\n+++\nText.\n"
    start = time.perf_counter()
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("a.md"), text)
    assert time.perf_counter() - start < 10  # locating every key by prefixes would take about a minute
    messages = [error.message for error in info.value.errors]
    assert "'title' must be a string in quotes, got 42 (a number)" in messages
    assert "unknown key 'k399' in the front matter" in " ".join(messages)

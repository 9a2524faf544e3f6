"""The fast paths of the reading loader (issue 6) give exactly what the general code gives; pure and fast."""

from __future__ import annotations

import datetime
import pathlib
import tomllib

import pytest

from circlebot.readings import ReadingFormatError, frontmatter, load_collection, parse_reading, text
from circlebot.readings import body as body_mod
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


@pytest.mark.parametrize("sample", TEXTS)
def test_word_count_is_the_regex_definition(sample: str) -> None:
    expected = len(text._WORD_TOKEN_RE.findall(text.plain_text(sample)))
    assert text.count_words(sample) == expected


FRONT_LINES = [
    ['title = "A"', "published = 2003-10-20", 'tags = [ "x" , "y", ]', "", " \t", "empty = []"],
    ['title="tight"', "published=1999-12-31  ", 'questions = ["é ’ unicode", "tab\there"]'],
    ['title = "esc\\"aped"'],  # escapes: left to tomllib
    ["title = 'literal'"],
    ['title = "a" # comment'],
    ["# comment"],
    ['  title = "indented"'],
    ['a.b = "dotted"'],
    ["published = 2020-02-30"],  # invalid date: left to tomllib (which reports it)
    ["published = 2020-05-01 10:00:00"],
    ['questions = ["a",, "b"]'],
    ['questions = ["a" "b"]'],
    ['title = "x"', 'title = "y"'],  # defined twice: left to tomllib
    ['title = "ctl\x01"'],
    ['[sections."One"]', 'questions = ["Why?"]'],
]


@pytest.mark.parametrize("lines", FRONT_LINES)
def test_simple_front_matter_parser_agrees_with_tomllib(lines: list[str]) -> None:
    fast = frontmatter._parse_simple_toml(lines)
    if fast is None:
        return  # tomllib decides
    assert fast == tomllib.loads("\n".join(lines))
    assert [type(value) for value in fast.values()] == [
        type(value) for value in tomllib.loads("\n".join(lines)).values()
    ]


def test_simple_front_matter_parser_accepts_the_usual_form() -> None:
    lines = FRONT.strip("\n").split("\n")[1:-1]
    assert frontmatter._parse_simple_toml(lines) == tomllib.loads("\n".join(lines))
    assert frontmatter._parse_simple_toml(lines) is not None


def test_invalid_date_is_still_reported_by_line() -> None:
    text = FRONT.replace("published = 2020-05-01", "published = 2020-02-30") + "\nText.\n"
    with pytest.raises(ReadingFormatError) as info:
        parse_reading(pathlib.Path("a.md"), text)
    (error,) = info.value.errors
    assert error.line == 5 and "invalid TOML" in error.message


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
]


@pytest.mark.parametrize("body", BODIES)
def test_body_fast_path_agrees_with_the_line_by_line_parser(body: str) -> None:
    fast_problems = Problems(pathlib.Path("a.md"))
    slow_problems = Problems(pathlib.Path("a.md"))
    fast = body_mod._parse_body(body, 10, fast_problems)
    slow = body_mod._parse_body_lines(body.split("\n"), 10, slow_problems)
    assert fast == slow
    assert fast_problems.errors == slow_problems.errors
    assert fast[2] == text.count_words(body)


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

"""Full-text search: ranking, passages, and user input that looks like FTS5 syntax."""

from __future__ import annotations

import pathlib

import pytest

from circlebot.cli import main
from circlebot.readings import Collection, parse_reading
from circlebot.readings.search import fts_query
from drivers import CoreDriver

REPO = pathlib.Path(__file__).resolve().parent.parent


def reading(slug: str, title: str, tags: str, body: str) -> str:
    return (
        f'+++\ntitle = "{title}"\nauthor = "A"\npublisher = "P"\npublished = 2020-01-01\n'
        f'summary = "S."\ntags = {tags}\nquestions = ["Q?"]\n+++\n\n{body}\n'
    )


@pytest.fixture
def collection() -> Collection:
    texts = {
        "in-title": reading("in-title", "Dual power in Russia", "[]", "Some other words entirely."),
        "in-tags": reading("in-tags", "Something", '["dual", "power"]', "Nothing to see."),
        "in-body": reading("in-body", "Plain", "[]", "Intro.\n\n## Part\n\nA situation of dual power arose."),
        "unrelated": reading("unrelated", "Chess", "[]", "Openings and endgames."),
    }
    items = {slug: parse_reading(pathlib.Path(f"{slug}.md"), text) for slug, text in texts.items()}
    return Collection(items)


def test_title_beats_tags_beats_text_and_the_passage_is_shown(collection: Collection) -> None:
    hits = collection.index.search("dual power")
    assert [h.slug for h in hits] == ["in-title", "in-tags", "in-body"]
    assert hits[2].passage == "Intro. Part A situation of **dual** **power** arose."


def test_prefixes_match_and_all_words_must_match(collection: Collection) -> None:
    assert [h.slug for h in collection.index.search("endgame")] == ["unrelated"]
    assert collection.index.search("dual chess") == []


@pytest.mark.parametrize(
    "query",
    ['"', '"dual', "dual OR chess", "NEAR(dual power)", "title:dual", "dual*", "-dual", "^dual", "(", "a AND",
     "dual\x00power", "'; DROP TABLE docs; --", "* * *", "!!!", "\"\"\"\""],
)
def test_fts_syntax_in_user_input_is_harmless(collection: Collection, query: str) -> None:
    collection.index.search(query)  # never raises
    assert collection.index.search("dual OR chess") == []  # OR is a word to match, not an operator


def test_the_query_quotes_every_word() -> None:
    assert fts_query('say "hi" NEAR') == '"say"* """hi"""* "NEAR"*'
    assert fts_query("!!! ...") is None


async def test_readings_in_chat_answers_with_the_passage(core: CoreDriver) -> None:
    found = await core.say("alice", "readings dual power")
    assert "bolivia-2003-first-balance-sheet" in found
    assert "situation of dual power" in found.text.replace("**", "")
    assert "No reading matches" in await core.say("alice", 'readings "zzz qqq"')
    assert "No reading matches" in await core.say("alice", "readings zzzz NEAR(")


def test_cli_search(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["readings", "search", "--dir", str(REPO / "readings"), "cabildos"]) == 0
    assert "bolivia-2003-first-balance-sheet" in capsys.readouterr().out
    assert main(["readings", "search", "--dir", str(REPO / "readings"), "zzzqqq"]) == 1
    assert "no reading matches 'zzzqqq'" in capsys.readouterr().err


def test_cli_list_says_when_nothing_matches_like_search(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    assert main(["readings", "list", "--dir", str(REPO / "readings"), "bolivia"]) == 0
    assert "bolivia-2003-first-balance-sheet" in capsys.readouterr().out
    assert main(["readings", "list", "--dir", str(REPO / "readings"), "zzzz"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "no reading matches 'zzzz'" in captured.err
    empty = tmp_path / "readings"
    empty.mkdir()
    assert main(["readings", "list", "--dir", str(empty)]) == 1
    assert f"no readings in {empty}" in capsys.readouterr().err

"""Discussion questions: starter questions from the text, per-part questions, `questions add|remove` in chat,
and the seed article end to end (import, parts, starter questions, load, `reading` in chat)."""

from __future__ import annotations

import pathlib
from datetime import timedelta

from circlebot.app import App
from circlebot.core.domain import UserRef
from circlebot.features.questions import base_questions
from circlebot.readings import load_collection, parse_reading
from circlebot.readings.importer import ImportOptions, import_files
from circlebot.readings.starter_questions import starter_questions
from drivers import CoreDriver

REPO = pathlib.Path(__file__).resolve().parent.parent
SEED = "bolivia-2003-first-balance-sheet"
SEED_TXT = pathlib.Path(__file__).resolve().parent / "data" / "bolivia-2003-first-balance-sheet.txt"


def seed_pairs() -> list[tuple[str | None, str]]:
    seed = load_collection(REPO / "readings").get(SEED)
    assert seed is not None
    return [(None, seed.intro), *((s.title, s.body) for s in seed.sections)]


def test_starter_questions_come_from_headings_quotes_and_conclusions() -> None:
    questions = starter_questions(seed_pairs())
    assert questions == starter_questions(seed_pairs())  # deterministic
    texts = [str(q) for q in questions]
    assert texts[0].startswith("What attitude towards the new government?")  # a heading that is a question
    assert any(q.source == "a quote from Zuvieta in section “Lack of a revolutionary leadership”" for q in questions)
    assert any(q.question.startswith("The article concludes: “Once again") for q in questions)
    assert all("(from " in t for t in texts) and len(questions) <= 8
    assert not any(q.source.startswith(("a quote from So ", "a quote from Also")) for q in questions)


def test_quotes_need_a_speaker_and_the_article_quoting_itself_is_skipped() -> None:
    text = (
        "As we said before: “this quotation has more than eight words in it, surely”.\n\n"
        "“A quote without anybody saying it, it has many words”.\n\n"
        "In an interview, Maria Lopez declared: “the workers will decide for themselves what happens next”.\n\n"
        "“Short one,” said Bob."
    )
    questions = starter_questions([("Heading", text)])
    quoted = [q for q in questions if q.source.startswith("a quote")]
    assert [q.source for q in quoted] == ["a quote from Maria Lopez in section “Heading”"]


def test_empty_text_gives_no_questions() -> None:
    assert starter_questions([]) == ()
    assert starter_questions([(None, "")]) == ()


def test_parts_without_authored_questions_get_starter_questions() -> None:
    seed = load_collection(REPO / "readings").get(SEED)
    assert seed is not None
    whole = base_questions(seed, None)
    assert not whole.starter and whole.texts == seed.questions
    first, last = seed.parts(10)
    assert base_questions(seed, first).starter
    assert all("(from " in q for q in base_questions(seed, first).texts)
    assert base_questions(seed, last).texts == seed.questions  # the reading's own questions close the reading


def test_section_questions_go_with_their_part() -> None:
    text = (
        '+++\ntitle = "T"\nauthor = "A"\npublisher = "P"\npublished = 2020-01-01\nsummary = "S."\n'
        'questions = ["Overall?"]\n[sections."Two"]\nquestions = ["About two?"]\n+++\n\n'
        f"## One\n\n{'w ' * 2000}\n\n## Two\n\n{'w ' * 2000}\n"
    )
    reading = parse_reading(pathlib.Path("t.md"), text)
    one, two = reading.parts(10)
    assert base_questions(reading, one).starter
    assert base_questions(reading, two).texts == ("About two? (section “Two”)", "Overall?")
    assert base_questions(reading, None).texts == ("Overall?", "About two? (section “Two”)")


async def test_organisers_add_and_remove_questions_for_a_meeting(core: CoreDriver) -> None:
    assert "meeting #1" in await core.say("olga", f"schedule {SEED} 2026-12-03")
    added = await core.say("olga", 'questions add "Who held power on 18 October?"')
    assert "Question added." in added and "10. Who held power on 18 October?" in added, added
    assert "already has that question" in await core.say("olga", "questions add Who held power on 18 October?")
    refused = await core.say("alice", "questions add Mine?")
    assert "questions add is for the organisers" in refused.text.replace("`", "")
    removed = await core.say("olga", "questions remove 1 --meeting 1")
    assert "Question 1 removed" in removed and "dual power" not in removed.text
    assert "9. Who held power on 18 October?" in removed
    removed = await core.say("olga", "questions remove 9")
    assert "Who held power" not in removed.text
    assert "has 8 questions" in await core.say("olga", "questions remove 99")
    shown = await core.say("bob", "questions 1")  # kept in the database
    assert "dual power" not in shown.text and "1. The miners' leader Zuvieta" in shown
    assert "There is no meeting #7" in await core.say("olga", "questions add Why? --meeting 7")
    assert "the most is 500" in await core.say("olga", f"questions add {'x' * 600}")


async def test_a_part_meeting_offers_starter_questions(core: CoreDriver) -> None:
    circle = core.app.settings.circles[0]
    start = core.clock.now() + timedelta(days=2)
    member = await core.app.store.ensure_member(UserRef("console", "olga", "olga"))
    await core.app.store.add_meeting(circle.slug, start, start + timedelta(hours=1), SEED, member,
                                     core.clock.now(), part=1, parts=4)
    assert circle.part_minutes == 25  # 4 parts do not match the 25-minute split: the whole reading's questions
    shown = await core.say("bob", "questions")
    assert "dual power" in shown and "starter" not in shown.text
    app = App(core.app.settings.model_copy(update={"circles": (circle.model_copy(update={"part_minutes": 5}),)}),
              core.app.store, core.app.readings, core.clock)
    app.add_adapter(core.adapter)
    core.app = app
    shown = await core.say("bob", "questions")
    assert "starter questions drawn from the text" in shown and "(from a quote from Zuvieta" in shown, shown


async def test_seed_end_to_end(core: CoreDriver, tmp_path: pathlib.Path) -> None:
    """The seed .txt → import → parts → starter questions → loads → `reading` and `questions` in chat."""
    options = ImportOptions(
        author="International Marxist Tendency", publisher="In Defence of Marxism (marxist.com)",
        drop_lines=("Miner with a dynamite stick", "The masses take oath in La Paz on Saturday 18"),
        cut_after_date=True, tags=("bolivia",),
    )
    report = import_files([SEED_TXT], tmp_path, options)
    assert report.failed == []
    collection = load_collection(tmp_path)
    assert collection.errors == ()
    imported = collection.get(SEED)
    assert imported is not None
    assert len(imported.parts(25)) == 1 and len(imported.parts(5)) == 4
    assert any("(from a quote from Zuvieta" in q for q in imported.questions)

    app = App(core.app.settings, core.app.store, collection, core.clock)
    app.add_adapter(core.adapter)
    core.app = app
    shown = await core.say("alice", f"reading {SEED}")
    assert "20 October 2003" in shown and "Lack of a revolutionary leadership" in shown
    assert "Fits one meeting (target 25 min" in shown
    assert "Miner with a dynamite stick" not in shown.text
    assert "meeting #1" in await core.say("olga", f"schedule {SEED} 2026-12-03")
    asked = await core.say("bob", "questions")
    assert "What attitude towards the new government?" in asked and "Zuvieta" in asked
    assert "bolivia-2003" in await core.say("alice", "readings cabildos")


async def test_reading_in_chat_shows_the_parts(core: CoreDriver) -> None:
    circle = core.app.settings.circles[0]
    app = App(core.app.settings.model_copy(update={"circles": (circle.model_copy(update={"part_minutes": 10}),)}),
              core.app.store, core.app.readings, core.clock)
    app.add_adapter(core.adapter)
    core.app = app
    shown = await core.say("alice", f"reading {SEED}")
    assert "Parts (2 meetings of about 10 min of reading each)" in shown
    assert "Part 2: “Tactical retreat” … “We will be soldiers of the people”" in shown

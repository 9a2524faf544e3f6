"""Benchmark: loading and searching a large reading collection (run on demand, not a test).

    .venv/bin/python bench/readings_bench.py [--articles 10000]

Generates a collection of 10,000 articles (about 30 MB of Markdown, each with front matter and six sections)
in a temporary directory, then measures, each the best of three runs:

1. `load_collection` (full parsing and validation of every file): the listing is ready after it (goal ≤ 1 s);
2. building the in-memory FTS5 index (done once, on the first search);
3. searches (goal ≤ 50 ms each): a rare word, common words, a title word, and a miss.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from circlebot.readings import load_collection  # noqa: E402

WORDS = [
    "workers",
    "peasants",
    "power",
    "leadership",
    "movement",
    "government",
    "strike",
    "union",
    "assembly",
    "party",
    "revolution",
    "class",
    "meeting",
    "struggle",
    "history",
    "economy",
    "wages",
    "factory",
    "mine",
    "city",
    "village",
    "council",
    "democracy",
    "press",
    "organisation",
    "conference",
    "debate",
    "reform",
    "crisis",
    "market",
    "capital",
    "labour",
    "state",
    "law",
    "rights",
    "police",
    "army",
    "election",
]


def article(number: int, rng: random.Random) -> str:
    def paragraph(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."

    sections = "".join(
        f"## Section {s} about {rng.choice(WORDS)}\n\n"
        + "\n\n".join(paragraph(28) for _ in range(2))
        + "\n\n"
        for s in range(1, 7)
    )
    rare = f"zephyr{number}"
    return (
        f'+++\ntitle = "Article {number} on {rng.choice(WORDS)} and {rng.choice(WORDS)}"\n'
        f'author = "Author {number % 97}"\npublisher = "Press {number % 13}"\n'
        f"published = {2000 + number % 25}-{1 + number % 12:02d}-{1 + number % 28:02d}\n"
        f'tags = ["{rng.choice(WORDS)}", "{rng.choice(WORDS)}"]\n'
        f'summary = "Summary of article {number}."\nquestions = ["What does article {number} argue?"]\n'
        f"+++\n\n{paragraph(30)} {rare}\n\n{sections}"
    )


def best_of(runs: int, action: object) -> tuple[float, object]:
    assert callable(action)
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(6)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        size = 0
        for n in range(args.articles):
            text = article(n, rng)
            size += len(text.encode())
            (directory / f"article-{n:05d}.md").write_text(text, encoding="utf-8")
        print(f"collection: {args.articles:,} articles, {size / 1e6:.1f} MB")

        load_time, collection = best_of(3, lambda: load_collection(directory))
        assert collection is not None and not collection.errors and len(collection) == args.articles
        print(f"load_collection (full parse + validation): {load_time:.3f} s  (goal ≤ 1 s)")

        build_time, index = best_of(1, lambda: collection.index)
        print(f"FTS5 index build (once, at the first search): {build_time:.3f} s")

        for query in ("zephyr4321", "workers power strike", "article", "revol", "nothingmatches"):
            search_time, hits = best_of(5, lambda q=query: index.search(q, 5))
            print(f"search {query!r}: {search_time * 1000:.1f} ms, {len(hits)} hit(s) shown  (goal ≤ 50 ms)")


if __name__ == "__main__":
    main()

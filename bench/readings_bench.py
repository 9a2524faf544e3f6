"""Benchmark: loading and searching a large reading collection (run on demand, not a test).

    .venv/bin/python bench/readings_bench.py [--articles 10000] [--baseline REV]

Generates a collection of 10,000 articles (about 30 MB of Markdown, each with front matter and six sections)
in a temporary directory, then measures, each the best of three runs:

1. loading it (full parsing and validation of every file; the listing is ready after it, goal ≤ 1 s), in
   separate processes so that each starts cold: the loader of git revision REV (the baseline, by default
   7bc52ca, the single readings.py with its own TOML subset, before readings/ became a package), then this
   tree's loader without its cache, with a cache to fill, with a valid cache, and with a valid cache after one
   file changed;
2. building the in-memory FTS5 index (done once, on the first search);
3. searches (goal ≤ 50 ms each): a rare word, common words, a title word, and a miss.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from benchlib import export_src  # noqa: E402

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


# Run in a fresh process with PYTHONPATH at one version's src: argv = directory, articles, mode, cache file.
MEASURE = """
import json, sys, time
from pathlib import Path
from circlebot.readings import load_collection
directory, articles, mode, cache = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
options = {} if mode == "none" else {"cache": cache}
times = []
for run in range(3):
    if mode == "fill":
        cache.unlink(missing_ok=True)
    if mode == "one-changed":
        path = directory / "article-00007.md"
        path.write_text(path.read_text(encoding="utf-8") + f"\\nOne more line, run {run}.\\n", encoding="utf-8")
    start = time.perf_counter()
    collection = load_collection(directory, **options)
    listing = collection.search("")
    times.append(time.perf_counter() - start)
    assert not collection.errors and len(listing) == articles, collection.errors[:3]
print(json.dumps(min(times)))
"""


def load_time(src: Path, directory: Path, articles: int, mode: str, cache: Path) -> float:
    """Best of three loads (and listings) of *directory* by the circlebot in *src*, in a new process."""
    command = [sys.executable, "-c", MEASURE, str(directory), str(articles), mode, str(cache)]
    done = subprocess.run(command, env={"PYTHONPATH": str(src), "PATH": ""}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"measuring {mode} with {src} failed:\n{done.stderr}")
    return float(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--baseline", default="7bc52ca", help="git revision of the baseline loader")
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

        with tempfile.TemporaryDirectory() as scratch:
            baseline_src = export_src(args.baseline, Path(scratch))
            cache = Path(scratch) / "readings.cache"
            baseline = load_time(baseline_src, directory, args.articles, "none", cache)
            print(f"load + list, baseline {args.baseline} (no cache): {baseline:.3f} s  (goal ≤ 1 s)")
            for mode, label in [
                ("none", "this tree, no cache"),
                ("fill", "this tree, filling the cache (first run)"),
                ("warm", "this tree, valid cache"),
                ("one-changed", "this tree, valid cache, one file changed"),
            ]:
                seconds = load_time(REPO / "src", directory, args.articles, mode, cache)
                print(f"load + list, {label}: {seconds:.3f} s  ({seconds / baseline:.2f}x baseline; goal ≤ 1 s)")
            print(f"cache file: {cache.stat().st_size / 1e6:.1f} MB")

        collection = load_collection(directory)

        build_time, index = best_of(1, lambda: collection.index)
        print(f"FTS5 index build (once, at the first search): {build_time:.3f} s")

        for query in ("zephyr4321", "workers power strike", "article", "revol", "nothingmatches"):
            search_time, hits = best_of(5, lambda q=query: index.search(q, 5))
            print(f"search {query!r}: {search_time * 1000:.1f} ms, {len(hits)} hit(s) shown  (goal ≤ 50 ms)")


if __name__ == "__main__":
    main()

"""The `circlebot` command: run | check-config | readings list|show|check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from circlebot import config as config_mod
from circlebot.readings import Collection, load_collection

log = logging.getLogger("circlebot")
DEFAULT_CONFIG = "circlebot.toml"


class RedactSecrets(logging.Filter):
    """Replaces every configured secret's value in log records, wherever it turns up."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            msg = record.getMessage()
            if any(s in msg for s in self._secrets):
                for s in self._secrets:
                    msg = msg.replace(s, "[redacted]")
                record.msg, record.args = msg, None
        return True


def _secrets(settings: config_mod.Settings) -> list[str]:
    names = []
    if settings.matrix:
        names += [settings.matrix.access_token_env, settings.matrix.password_env]
    if settings.discord:
        names.append(settings.discord.token_env)
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def _config_path(arg: str | None) -> Path:
    return Path(arg or os.environ.get("CIRCLEBOT_CONFIG") or DEFAULT_CONFIG)


def _load_settings(path: Path) -> config_mod.Settings | None:
    if not path.exists():
        print(f"circlebot: no config file at {path}. Copy config.example.toml to {DEFAULT_CONFIG} and edit it, "
              "or pass --config PATH.", file=sys.stderr)
        return None
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as e:
        print(f"circlebot: the config has errors; nothing was started.\n{e}", file=sys.stderr)
        return None


def _syllabus_problems(settings: config_mod.Settings, collection: Collection) -> list[str]:
    return [
        f"circles[{i}].syllabus: no reading {slug!r} in {settings.readings}"
        for i, c in enumerate(settings.circles)
        for slug in c.syllabus
        if collection.get(slug) is None
    ]


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.path)
    settings = _load_settings(path)
    if settings is None:
        return 2
    collection = load_collection(settings.readings)
    problems = _syllabus_problems(settings, collection)
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    if problems:
        return 2
    print(f"{path}: OK: {len(settings.circles)} circle(s), {len(collection)} reading(s) in {settings.readings}.")
    return 0


def _readings_dir(args: argparse.Namespace) -> Path | None:
    if args.dir:
        return Path(args.dir)
    path = _config_path(args.config)
    if path.exists():
        settings = _load_settings(path)
        return settings.readings if settings else None
    return Path("readings")


def cmd_readings(args: argparse.Namespace) -> int:
    directory = _readings_dir(args)
    if directory is None:
        return 2
    collection = load_collection(directory)
    if args.action == "check":
        for err in collection.errors:
            print(err, file=sys.stderr)
        print(f"{len(collection)} reading(s) OK, {len(collection.errors)} error(s) in {directory}.")
        return 1 if collection.errors else 0
    for err in collection.errors:
        print(f"warning: {err}", file=sys.stderr)
    if args.action == "list":
        for r in collection.search(" ".join(args.words)):
            print(f"{r.slug}\t{r.published}\t{r.minutes} min\t{r.title}")
        return 0
    reading = collection.get(args.slug)
    if reading is None:
        print(f"circlebot: no reading {args.slug!r} in {directory}; `circlebot readings list` lists them.",
              file=sys.stderr)
        return 1
    print(f"{reading.title}\n{reading.author}, {reading.publisher}, {reading.published}")
    print(f"{reading.words} words, about {reading.minutes} min\n\n{reading.summary}\n")
    for i, s in enumerate(reading.sections, 1):
        print(f"  {i}. {s.title} ({s.minutes} min)")
    print("\nQuestions:")
    for i, q in enumerate(reading.questions, 1):
        print(f"  {i}. {q}")
    return 0


async def serve(settings: config_mod.Settings, *, console: bool) -> int:
    """Open the store, build the core and its adapters, and run until the adapters stop."""
    from circlebot.adapters.console import ConsoleAdapter
    from circlebot.app import App
    from circlebot.store import Database, Store, StoreError

    collection = load_collection(settings.readings)
    for err in collection.errors:
        log.warning("reading skipped: %s", err)
    for p in _syllabus_problems(settings, collection):
        log.warning("%s", p)
    try:
        db = await Database.open(settings.database)
    except StoreError as e:
        print(f"circlebot: {e}", file=sys.stderr)
        return 2
    try:
        app = App(settings, Store(db), collection)
        if console:
            circles = [(c.slug, c.name, settings.zone_of(c)) for c in settings.circles if c.where.console]
            if not circles:
                print("circlebot: no circle lives on the console (where.console = false everywhere).", file=sys.stderr)
                return 2
            app.add_adapter(ConsoleAdapter(circles, user=settings.console.user))
        for name in ("matrix", "discord"):
            if getattr(settings, name) is not None:
                log.error("the %s adapter is not part of this version yet; [%s] is ignored", name, name)
        if not app.adapters:
            print("circlebot: no adapter to run: enable the console or configure a platform.", file=sys.stderr)
            return 2
        await app.run()
    finally:
        await db.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_settings(_config_path(args.config))
    if settings is None:
        return 2
    console = settings.console_enabled if args.console is None else args.console
    level = getattr(logging, settings.log_level)
    logging.basicConfig(
        level=max(level, logging.WARNING) if console else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    redact = RedactSecrets(_secrets(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(settings, console=console))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circlebot", description="A study-circle bot for Discord, Matrix and the terminal."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot (the terminal console unless a platform is configured)")
    run.add_argument("--config", help=f"config file (default: $CIRCLEBOT_CONFIG or {DEFAULT_CONFIG})")
    run.add_argument("--console", dest="console", action="store_true", default=None, help="open the terminal chat")
    run.add_argument("--no-console", dest="console", action="store_false", help="no terminal chat")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and report every error")
    check.add_argument("path")
    check.set_defaults(func=cmd_check_config)

    readings = sub.add_parser("readings", help="the article collection: list, show, check")
    rsub = readings.add_subparsers(dest="action", required=True)
    for name, helptext in (("list", "list (or search) the readings"), ("show", "show one reading"),
                           ("check", "validate every reading; exit code 1 on errors")):
        p = rsub.add_parser(name, help=helptext)
        p.add_argument("--dir", help="the readings directory (default: the config's, or ./readings)")
        p.add_argument("--config", help="config file to take the readings directory from")
        if name == "list":
            p.add_argument("words", nargs="*", help="search words")
        if name == "show":
            p.add_argument("slug")
        p.set_defaults(func=cmd_readings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""The `circlebot` command: run | check-config | readings list|show|search|check|import | export ics|csv | links |
db copy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from circlebot import config as config_mod
from circlebot.core.text import count
from circlebot.readings import Collection, load_collection
from circlebot.readings.cache import default_cache_path

if TYPE_CHECKING:
    from circlebot.store import Database

log = logging.getLogger("circlebot")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULT_CONFIG = "circlebot.toml"


class RedactSecrets(logging.Filter):
    """Replaces every configured secret's value in log records, wherever it turns up."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            msg = record.getMessage()
            if any(s in msg for s in self._secrets):
                record.msg, record.args = self.redact(msg), None
        return True


def _secrets(settings: config_mod.Settings) -> list[str]:
    names = []
    if settings.matrix:
        names += [settings.matrix.access_token_env, settings.matrix.password_env, settings.matrix.recovery_key_env]
    if settings.discord:
        names.append(settings.discord.token_env)
    names.append(settings.database_password_env)
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def database_password(settings: config_mod.Settings) -> str | None:
    """The PostgreSQL password from the variable the config names (None: the config names none)."""
    name = settings.database_password_env
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        from circlebot.store import StoreError

        raise StoreError(f"the config says the database password is in the environment variable {name}, but it "
                         f"is not set: set it, or remove database_password_env")
    return value


async def open_database(settings: config_mod.Settings) -> Database:
    """The database the config names, with the password from the variable it names: how every command opens it
    (StoreError when it cannot be opened, or the password's variable is not set)."""
    from circlebot.store import Database

    return await Database.open(settings.database, password=database_password(settings))


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


def _load_readings(directory: Path) -> Collection:
    """The collection in *directory*, through the user's load cache (see circlebot.readings.cache)."""
    return load_collection(directory, cache=default_cache_path(directory))


def _syllabus_problems(settings: config_mod.Settings, collection: Collection) -> list[str]:
    return [
        f"circles[{i}].syllabus: no reading {slug!r} in {settings.readings}"
        for i, c in enumerate(settings.circles)
        for slug in c.syllabus
        if collection.get(slug) is None
    ]


def _raw_syllabus_problems(path: Path) -> list[str]:
    """The syllabus check on a config that does not validate: from the raw TOML, where it can be read, so
    check-config reports a bad slug beside the other problems."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    readings, circles = data.get("readings", "readings"), data.get("circles")
    if not isinstance(readings, str) or not isinstance(circles, list):
        return []
    directory = Path(readings) if Path(readings).is_absolute() else path.parent / readings
    if not directory.is_dir():
        return []
    collection = load_collection(directory)
    return [
        f"circles[{i}].syllabus: no reading {slug!r} in {directory}"
        for i, c in enumerate(circles) if isinstance(c, dict) and isinstance(c.get("syllabus"), list)
        for slug in c["syllabus"] if isinstance(slug, str) and collection.get(slug) is None
    ]


def _chosen_circles(settings: config_mod.Settings, slug: str | None) -> list[config_mod.CircleSettings]:
    """The circles a command's `--circle SLUG` names (every circle without it); none, and a message naming
    the circles there are, when the slug is not in the config."""
    if slug is None:
        return list(settings.circles)
    chosen = [c for c in settings.circles if c.slug == slug]
    if not chosen:
        print(f"circlebot: no circle {slug!r} in the config; circles: "
              f"{', '.join(c.slug for c in settings.circles)}", file=sys.stderr)
    return chosen


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        _load_settings(path)  # says there is no file
        return 2
    try:
        settings = config_mod.load(path)
    except config_mod.ConfigError as e:  # every problem at once, the syllabus's too
        error = config_mod.ConfigError(path, e.problems + _raw_syllabus_problems(path))
        print(f"circlebot: the config has errors.\n{error}", file=sys.stderr)
        return 2
    collection = _load_readings(settings.readings)
    problems = _syllabus_problems(settings, collection)
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    if problems:
        return 2
    print(f"{path}: OK: {count(len(settings.circles), 'circle')}, {count(len(collection), 'reading')} in "
          f"{settings.readings}.")
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
    if args.action == "import":
        from datetime import date

        from circlebot.readings.importer import ImportOptions, import_files

        try:
            published = date.fromisoformat(args.published) if args.published else None
        except ValueError:
            print(f"circlebot: --published must be a date like 2003-10-20, got {args.published!r}", file=sys.stderr)
            return 2
        options = ImportOptions(
            author=args.author, publisher=args.publisher, published=published, summary=args.summary,
            source=args.source, organisation=args.organisation, language=args.language, tags=tuple(args.tag),
            slug=args.slug, drop_lines=tuple(args.drop_line), cut_after_date=args.cut_after_date, force=args.force,
        )
        paths = [Path(f) for f in args.files]

        def progress(number: int, total: int, path: Path) -> None:
            if total > 1:
                print(f"[{number}/{total}] {path}", file=sys.stderr)

        report = import_files(paths, directory, options, progress)
        for source, target in report.imported:
            print(f"{source} -> {target}")
        for source, reason in report.failed:
            print(f"circlebot: could not import {source}: {reason}", file=sys.stderr)
        print(f"{len(report.imported)} imported, {len(report.failed)} failed.")
        return 1 if report.failed else 0
    if args.action == "check":
        from circlebot.readings import check_collection

        checked = check_collection(directory)
        for warning in checked.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for err in checked.errors:
            print(err, file=sys.stderr)
        print(f"{count(len(checked.collection), 'reading')} loaded, {count(len(checked.errors), 'error')}, "
              f"{count(len(checked.warnings), 'warning')} in {directory}.")
        return 1 if checked.errors else 0
    collection = _load_readings(directory)
    for err in collection.errors:
        print(f"warning: {err}", file=sys.stderr)
    if args.action == "list":
        listed = collection.search(" ".join(args.words))
        for r in listed:
            print(f"{r.slug}\t{r.published}\t{r.minutes} min\t{r.title}")
        if not listed and args.words:
            print(f"no reading matches {' '.join(args.words)!r}", file=sys.stderr)
        elif not listed:
            print(f"no readings in {directory}", file=sys.stderr)
        return 0 if listed else 1
    if args.action == "search":
        hits = collection.index.search(" ".join(args.words), args.limit)
        for hit in hits:
            print(f"{hit.slug}\t{hit.title}\n    {hit.passage}")
        if not hits:
            print(f"no reading matches {' '.join(args.words)!r}", file=sys.stderr)
        return 0 if hits else 1
    reading = collection.get(args.slug)
    if reading is None:
        print(f"circlebot: no reading {args.slug!r} in {directory}; `circlebot readings list` lists them.",
              file=sys.stderr)
        return 1
    print(f"{reading.title}\n{reading.author}, {reading.publisher}, {reading.published}")
    print(f"{reading.words} words, about {reading.minutes} min\n\n{reading.summary}\n")
    for i, s in enumerate(reading.sections, 1):
        print(f"  {i}. {s.title} ({s.minutes} min)")
    parts = reading.parts(args.part_minutes)
    print(f"\nParts for meetings of about {args.part_minutes} min: {len(parts)}")
    for part in parts:
        print(f"  Part {part.index}: {part.title} ({part.minutes} min)")
    print("\nQuestions:")
    for i, q in enumerate(reading.questions, 1):
        print(f"  {i}. {q}")
    for s in reading.sections:
        for q in s.questions:
            print(f"  - ({s.title}) {q}")
    return 0


async def serve(settings: config_mod.Settings, *, console: bool) -> int:
    """Open the store, build the core and its adapters, and run until the adapters stop."""
    from circlebot.adapters.build import console_adapter, discord_adapter, matrix_adapter
    from circlebot.app import App
    from circlebot.store import Store, StoreError

    collection = await asyncio.to_thread(_load_readings, settings.readings)
    for err in collection.errors:
        log.warning("reading skipped: %s", err)
    for p in _syllabus_problems(settings, collection):
        log.warning("%s", p)
    try:
        db = await open_database(settings)
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
            page = app.web.page_url if app.web is not None else None
            app.add_adapter(console_adapter(app, circles, settings.console.user, page))
        if settings.matrix is not None:
            try:
                app.add_adapter(matrix_adapter(app))
            except ValueError as e:
                print(f"circlebot: {e}", file=sys.stderr)
                return 2
        if settings.discord is not None:
            try:
                app.add_adapter(discord_adapter(app))
            except ValueError as e:
                print(f"circlebot: {e}", file=sys.stderr)
                return 2
        if not app.adapters:
            print("circlebot: no adapter to run: enable the console or configure a platform.", file=sys.stderr)
            return 2
        failed: list[Exception] = []
        loop = asyncio.get_running_loop()

        def on_signal(sig: signal.Signals) -> None:
            log.warning("received %s: stopping", sig.name)
            app.stop()

        for sig in STOP_SIGNALS:  # as `docker stop`, systemd and Ctrl-C ask: finish what is in hand, then exit 0
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await app.run()
        except* Exception as group:  # an adapter that cannot go on (a rejected token, say) stops the bot
            failed.extend(x for x in group.exceptions if isinstance(x, Exception))
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        redact = RedactSecrets(_secrets(settings)).redact
        for error in failed:
            log.debug("the bot stopped", exc_info=error)
            print(f"circlebot: stopped: {redact(str(error)) or type(error).__name__}", file=sys.stderr)
        return 2 if failed else 0
    finally:
        await db.close()


def cmd_export(args: argparse.Namespace) -> int:
    """`circlebot export ics`: the meetings of one circle (or each circle, one file apiece)."""
    from datetime import UTC, datetime

    from circlebot.export import to_ics
    from circlebot.store import Store, StoreError

    settings = _load_settings(_config_path(args.config))
    if settings is None:
        return 2
    circles = _chosen_circles(settings, args.circle)
    if not circles:
        return 2
    if len(circles) > 1 and args.output and args.output != "-":
        print("circlebot: several circles: give --circle SLUG, or --output - to print them all", file=sys.stderr)
        return 2

    async def export() -> list[bytes]:
        db = await open_database(settings)
        try:
            store = Store(db)
            collection = await asyncio.to_thread(_load_readings, settings.readings)
            now = datetime.now(UTC)
            return [await to_ics(store, collection, settings, c, now) for c in circles]
        finally:
            await db.close()

    try:
        files = asyncio.run(export())
    except StoreError as e:
        print(f"circlebot: {e}", file=sys.stderr)
        return 2
    if not args.output or args.output == "-":
        for data in files:
            sys.stdout.write(data.decode("utf-8"))
    else:
        Path(args.output).write_bytes(files[0])
        print(f"wrote {args.output}")
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    """`circlebot matrix setup`: the bot's cross-signing keys, uploaded once, and its device signed with them.
    The account password (asked, or from `password_env`) is needed only to replace keys uploaded before."""
    import getpass

    import aiohttp

    from circlebot.adapters.build import matrix_adapter
    from circlebot.adapters.matrix import MatrixError
    from circlebot.adapters.matrix.crosssign import CrossSigningError
    from circlebot.adapters.matrix.setup import setup_cross_signing
    from circlebot.app import App
    from circlebot.store import Store, StoreError

    settings = _load_settings(_config_path(args.config))
    if settings is None:
        return 2
    m = settings.matrix
    if m is None:
        print("circlebot: there is no [matrix] table in the config", file=sys.stderr)
        return 2

    async def password() -> str | None:
        if m.password_env and os.environ.get(m.password_env):
            return os.environ[m.password_env]
        if not sys.stdin.isatty():
            return None
        return await asyncio.to_thread(getpass.getpass, f"Password of {m.user_id} (to replace its keys): ")

    async def setup() -> None:
        db = await open_database(settings)
        try:
            collection = await asyncio.to_thread(_load_readings, settings.readings)
            app = App(settings, Store(db), collection)
            await setup_cross_signing(matrix_adapter(app), password, print)
        finally:
            await db.close()

    try:
        asyncio.run(setup())
    except (ValueError, OSError, StoreError, CrossSigningError, MatrixError, aiohttp.ClientError) as e:
        print(f"circlebot: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_links(args: argparse.Namespace) -> int:
    """`circlebot links [rotate] [--circle SLUG]`: each circle's page and calendar feed addresses."""
    from datetime import UTC, datetime

    from circlebot.store import Store, StoreError
    from circlebot.web.links import Links, base_url

    settings = _load_settings(_config_path(args.config))
    if settings is None:
        return 2
    circles = _chosen_circles(settings, args.circle)
    if not circles:
        return 2
    if settings.web is None or not settings.web.enabled:
        print("circlebot: the web server is off (no [web] section, or enabled = false): there are no links.",
              file=sys.stderr)
        return 2
    web = settings.web

    async def links() -> tuple[str | None, list[tuple[str, str]]]:
        db = await open_database(settings)
        try:
            store = Store(db)
            made, now = Links(store), datetime.now(UTC)
            tokens = [(c.name, await (made.rotate_circle(c.slug, now) if args.action == "rotate"
                                      else made.circle(c.slug, now))) for c in circles]
            return await base_url(store, web), tokens
        finally:
            await db.close()

    try:
        base, tokens = asyncio.run(links())
    except StoreError as e:
        print(f"circlebot: {e}", file=sys.stderr)
        return 2
    if base is None:
        base = f"http://{web.listen}:PORT"
        print("circlebot: [web] port = 0 takes a free port at each start, and the bot has not run yet: PORT is "
              "the one its banner and log show. Set [web] port (or base_url) for links that stay the same.",
              file=sys.stderr)
    for name, token in tokens:
        page = f"{base}/c/{token}"
        print(f"{name}\n  page:     {page}\n  calendar: {page}/calendar.ics")
    if args.action == "rotate":
        print("The old links (and every member's own calendar link) no longer work; a running bot takes the "
              "new ones within 30 s.")
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-12-03, got {text!r}") from None


def cmd_export_csv(args: argparse.Namespace) -> int:
    """`circlebot export csv`: the record of one circle (or every circle, one file) as CSV."""
    from datetime import UTC, datetime

    from circlebot.features.record_export import record_csv
    from circlebot.store import Store, StoreError

    settings = _load_settings(_config_path(args.config))
    if settings is None:
        return 2
    circles = _chosen_circles(settings, args.circle)
    if not circles:
        return 2
    if args.start and args.end and args.end < args.start:
        print(f"circlebot: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2

    async def export() -> tuple[bytes, int]:
        db = await open_database(settings)
        try:
            collection = await asyncio.to_thread(_load_readings, settings.readings)
            return await record_csv(Store(db), collection, [(c, settings.zone_of(c)) for c in circles],
                                    args.start, args.end, datetime.now(UTC))
        finally:
            await db.close()

    try:
        data, rows = asyncio.run(export())
    except StoreError as e:
        print(f"circlebot: {e}", file=sys.stderr)
        return 2
    if not args.output or args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output} ({count(rows, 'row')})")
    return 0


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _setup_logging(settings: config_mod.Settings, *, console: bool) -> None:
    """Log to stderr; with the console, to a file beside the database instead (the terminal is the chat: a
    traceback there would land in the conversation), and say where at start."""
    level = getattr(logging, settings.log_level)
    if console:
        beside = settings.database.parent if isinstance(settings.database, Path) else Path.cwd()
        path = beside / "circlebot.log"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as e:
            print(f"circlebot: cannot write the log to {path} ({e.strerror}); warnings and errors will show here.",
                  file=sys.stderr)
            logging.basicConfig(level=max(level, logging.WARNING), format=LOG_FORMAT, stream=sys.stderr)
            return
        print(f"circlebot: log: {path}", file=sys.stderr)
        logging.basicConfig(level=level, format=LOG_FORMAT, handlers=[handler])
        return
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_settings(_config_path(args.config))
    if settings is None:
        return 2
    console = settings.console_enabled if args.console is None else args.console
    _setup_logging(settings, console=console)
    redact = RedactSecrets(_secrets(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(settings, console=console))
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    """`circlebot db copy --from sqlite:PATH --to postgresql://...`: the whole store into an empty database."""
    from circlebot.store import Database, StoreError
    from circlebot.store.copy import copy_database, parse_target

    def password(name: str | None) -> str | None:
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            raise StoreError(f"--password-env names {name}, but that environment variable is not set")
        return value

    async def run() -> int:
        source_target, target_target = parse_target(args.source), parse_target(args.target)
        if isinstance(source_target, Path) and not source_target.exists():
            raise StoreError(f"there is no database file {source_target}")
        source = await Database.open(source_target, password=password(args.source_password_env))
        try:
            target = await Database.open(target_target, password=password(args.password_env))
            try:
                copied = await copy_database(source, target)
            finally:
                await target.close()
        finally:
            await source.close()
        for c in copied:
            print(f"{c.table}: {c.rows} rows")
        print(f"copied {sum(c.rows for c in copied)} rows in {len(copied)} tables from {source.name} to "
              f"{target.name}; every table's row count matches. Point 'database' in the config at the new one.")
        return 0

    try:
        return asyncio.run(run())
    except StoreError as e:
        print(f"circlebot: db copy: {e}", file=sys.stderr)
        return 2


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

    export = sub.add_parser("export", help="export meetings: `export ics` writes an iCalendar file")
    esub = export.add_subparsers(dest="format", required=True)
    ics = esub.add_parser("ics", help="the meetings as iCalendar (stable UIDs: calendars update, not duplicate)")
    ics.add_argument("--config", help=f"config file (default: $CIRCLEBOT_CONFIG or {DEFAULT_CONFIG})")
    ics.add_argument("--circle", help="the circle's slug (default: every circle)")
    ics.add_argument("--output", "-o", help="file to write (default: standard output)")
    ics.set_defaults(func=cmd_export)
    csv_ = esub.add_parser("csv", help="the circle's record as CSV: one row per meeting and member (UTF-8 with BOM, "
                           "ISO dates, the zone named, formula cells neutralised)")
    csv_.add_argument("--config", help=f"config file (default: $CIRCLEBOT_CONFIG or {DEFAULT_CONFIG})")
    csv_.add_argument("--circle", help="the circle's slug (default: every circle, in one file)")
    csv_.add_argument("--from", dest="start", type=_iso_date, help="the first day, YYYY-MM-DD (circle's zone)")
    csv_.add_argument("--to", dest="end", type=_iso_date, help="the last day, YYYY-MM-DD (circle's zone)")
    csv_.add_argument("--output", "-o", help="file to write (default: standard output)")
    csv_.set_defaults(func=cmd_export_csv)

    links = sub.add_parser("links", help="each circle's web page and calendar feed addresses; `links rotate` "
                                          "replaces them")
    links.add_argument("action", nargs="?", choices=["rotate"], help="retire the links and make new ones")
    links.add_argument("--config", help=f"config file (default: $CIRCLEBOT_CONFIG or {DEFAULT_CONFIG})")
    links.add_argument("--circle", help="the circle's slug (default: every circle)")
    links.set_defaults(func=cmd_links)

    db = sub.add_parser("db", help="the database: `db copy` moves the whole store into another (empty) database")
    dsub = db.add_subparsers(dest="action", required=True)
    dcopy = dsub.add_parser("copy", help="copy everything into an empty database, checking each table's row count "
                            "(stop the bot first)")
    dcopy.add_argument("--from", dest="source", required=True, metavar="SOURCE",
                       help="sqlite:PATH (or a postgresql:// URL)")
    dcopy.add_argument("--to", dest="target", required=True, metavar="TARGET",
                       help="postgresql://user@host[:port]/db (or sqlite:PATH); must be empty")
    dcopy.add_argument("--password-env", metavar="NAME", help="environment variable holding the target's password")
    dcopy.add_argument("--source-password-env", metavar="NAME",
                       help="environment variable holding the source's password (a PostgreSQL source)")
    dcopy.set_defaults(func=cmd_db_copy)

    matrix = sub.add_parser("matrix", help="Matrix: `matrix setup` cross-signs the bot's device")
    matrix.add_argument("action", choices=["setup"], help="upload the cross-signing keys (once), sign the device")
    matrix.add_argument("--config", help=f"config file (default: $CIRCLEBOT_CONFIG or {DEFAULT_CONFIG})")
    matrix.set_defaults(func=cmd_matrix)

    check = sub.add_parser("check-config", help="validate a config file and report every error")
    check.add_argument("path")
    check.set_defaults(func=cmd_check_config)

    readings = sub.add_parser("readings", help="the article collection: list, show, search, check, import")
    rsub = readings.add_subparsers(dest="action", required=True)
    for name, helptext in (("list", "list (or filter) the readings"), ("show", "show one reading"),
                           ("search", "full-text search, best matches first, with the matching passage"),
                           ("check", "validate every reading; exit code 1 on errors"),
                           ("import", "turn plain-text or Markdown articles into readings")):
        p = rsub.add_parser(name, help=helptext)
        p.add_argument("--dir", help="the readings directory (default: the config's, or ./readings)")
        p.add_argument("--config", help="config file to take the readings directory from")
        if name == "list":
            p.add_argument("words", nargs="*", help="search words")
        if name == "search":
            p.add_argument("words", nargs="+", help="search words (all must match)")
            p.add_argument("--limit", type=int, default=10, help="most results (default 10)")
        if name == "show":
            p.add_argument("slug")
            p.add_argument("--part-minutes", type=int, default=25, help="reading time per meeting (default 25)")
        if name == "import":
            p.add_argument("files", nargs="+", metavar="FILE", help="articles: plain text or Markdown")
            p.add_argument("--author", help="author, if the text has no 'By ...' line")
            p.add_argument("--publisher", help="publisher (required)")
            p.add_argument("--published", help="publication date YYYY-MM-DD, if the text has no date line")
            p.add_argument("--summary", help="summary (default: the opening sentences)")
            p.add_argument("--source", help="where the article comes from (URL or name)")
            p.add_argument("--organisation", help="organisation behind the article")
            p.add_argument("--language", default="en", help="language code (default: en)")
            p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
            p.add_argument("--slug", help="the reading's slug (one file only; default: from the file name)")
            p.add_argument("--drop-line", action="append", default=[], metavar="TEXT",
                           help="remove lines equal to TEXT, e.g. photo captions (repeatable)")
            p.add_argument("--cut-after-date", action="store_true",
                           help="cut the trailer: everything from the date line on")
            p.add_argument("--force", action="store_true", help="replace an existing reading")
        p.set_defaults(func=cmd_readings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""The one TOML file admins write: read with `tomllib`, validated into frozen settings.

Every error is reported at once, each with its key path (``circles[0].meets.time``) and what was expected.
Unknown keys are errors. Secrets never live in the file: a key such as ``token_env`` names the environment
variable that holds them.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from circlebot.core.text import count

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_DURATION_RE = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*$")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SECRET_KEYS = {"token", "access_token", "password", "secret"}


class ConfigError(Exception):
    """The config file is wrong; `problems` lists every error as ``key.path: what is wrong``."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {count(len(problems), 'problem')}\n" + "\n".join(f"  {p}" for p in problems))


def parse_duration(value: Any) -> timedelta:
    """``"7d"``, ``"24h"``, ``"90m"``, ``"1h30m"`` or a number of minutes."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like \"90m\", \"24h\" or \"7d\"")
    if isinstance(value, int):
        return timedelta(minutes=value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m and any(m.groups()):
            d, h, mins = (int(g) if g else 0 for g in m.groups())
            return timedelta(days=d, hours=h, minutes=mins)
    raise ValueError(f"expected a duration like \"90m\", \"24h\" or \"7d\", got {value!r}")


class Lead(NamedTuple):
    """How long before a meeting a post goes out: whole days on the circle's calendar (the same local time
    that many days earlier, whatever daylight saving does in between), then an exact duration (hours and
    minutes). ``"7d"`` is a week earlier at the same wall-clock time; ``"168h"`` is exactly 168 hours."""

    days: int
    exact: timedelta

    @property
    def approx(self) -> timedelta:
        """The lead as one duration (within the hour a daylight-saving change moves it)."""
        return timedelta(days=self.days) + self.exact


def parse_lead(value: Any) -> Lead:
    """A lead time: the days of ``"7d"``, ``"1d12h"`` counted in calendar days, the rest exact; never zero."""
    if isinstance(value, Lead):
        return value
    if isinstance(value, str) and (m := _DURATION_RE.match(value)) and any(m.groups()):
        d, h, mins = (int(g) if g else 0 for g in m.groups())
        lead = Lead(d, timedelta(hours=h, minutes=mins))
    else:
        lead = Lead(0, parse_duration(value))
    if lead.approx <= timedelta(0):
        raise ValueError(f"a post 0 minutes before the meeting would go out as it starts, with the discussion "
                         f"questions; give a lead of at least a minute, like \"24h\" or \"30m\" (got {value!r})")
    return lead


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}; use a name like \"Europe/London\"") from None
    return value


def _local_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if m and int(m[1]) < 24 and int(m[2]) < 60:
            return time(int(m[1]), int(m[2]))
    raise ValueError(f"expected a local time like \"19:00\", got {value!r}")


def _weekday(value: Any) -> str:
    if isinstance(value, str):
        v = value.strip().lower()
        for day in _WEEKDAYS:
            if len(v) >= 3 and day.startswith(v):
                return day
    raise ValueError(f"expected a weekday like \"thursday\" or \"thu\", got {value!r}")


def _cron(value: str) -> str:
    from circlebot.core import cron

    cron.parse(value)  # ValueError says which field is wrong
    return value.strip()


def _slug(value: str) -> str:
    if not SLUG_RE.match(value):
        raise ValueError(
            f"{value!r} is not a slug: use 1-40 lowercase letters, digits and dashes, starting with a letter or digit"
        )
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"expected the NAME of an environment variable, like \"CIRCLEBOT_TOKEN\", got {value!r}")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
LeadTime = Annotated[Lead, BeforeValidator(parse_lead)]
Zone = Annotated[str, AfterValidator(_zone)]
LocalTime = Annotated[time, BeforeValidator(_local_time)]
Weekday = Annotated[str, BeforeValidator(_weekday)]
Slug = Annotated[str, AfterValidator(_slug)]
Cron = Annotated[str, AfterValidator(_cron)]
EnvName = Annotated[str, AfterValidator(_env_name)]
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _database(value: Any) -> Any:
    """A SQLite file path (kept as a Path), or a PostgreSQL URL (kept as text) with no password in it."""
    if not isinstance(value, str):
        return value
    if value.startswith(POSTGRES_SCHEMES):
        parts = urlsplit(value)
        if parts.password:
            raise ValueError("the database password never goes in the config file: put it in an environment "
                             "variable and name that variable with 'database_password_env'")
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError(f"expected a PostgreSQL URL like \"postgresql://circlebot@db.example.org/circlebot\" "
                             f"(user, host and database name), got {value!r}")
        return value
    if "://" in value:
        raise ValueError(f"expected a SQLite file path or a postgresql:// URL, got {value!r}")
    return Path(value)


Database = Annotated[Path | str, BeforeValidator(_database)]
Id = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Meets(_Frozen):
    """When a circle meets: weekdays + local time, or a cron expression; and for how long."""

    weekdays: tuple[Weekday, ...] = ()
    time: LocalTime | None = None
    cron: Cron | None = None  # crontab(5): 0 and 7 are Sunday (see cron.py)
    duration: Duration = timedelta(minutes=90)
    every_weeks: int = Field(default=1, ge=1, le=8)
    starting: date | None = None  # the first meeting; fortnights (every_weeks) count from its week

    @field_validator("starting")
    @classmethod
    def _starting_is_a_meeting_day(cls, value: date | None, info: ValidationInfo) -> date | None:
        days = info.data.get("weekdays")
        if value is not None and days and _WEEKDAYS[value.weekday()] not in days:
            names = " and ".join(d.capitalize() for d in days)
            raise ValueError(f"{value.isoformat()} is a {value:%A}, and the circle meets on {names}; give the date "
                             "of the first meeting")
        return value

    @model_validator(mode="after")
    def _rule(self) -> Meets:
        if self.cron is not None:
            if self.weekdays or self.time is not None:
                raise ValueError("give either 'cron' or 'weekdays' + 'time', not both")
            if self.every_weeks != 1:
                raise ValueError("'every_weeks' works with 'weekdays' + 'time', not with 'cron'")
            if self.starting is not None:
                raise ValueError("'starting' works with 'weekdays' + 'time', not with 'cron' (a cron rule names "
                                 "its own dates)")
        elif not self.weekdays or self.time is None:
            raise ValueError(
                "give 'weekdays' (e.g. [\"thursday\"]) and 'time' (e.g. \"19:00\"), or a 'cron' expression"
            )
        if self.duration <= timedelta(0) or self.duration > timedelta(hours=12):
            raise ValueError("'duration' must be between 1 minute and 12 hours")
        return self


class Where(_Frozen):
    """Where a circle lives; one circle may live on several platforms at once."""

    console: bool = True
    discord_channels: tuple[Id, ...] = ()
    matrix_rooms: tuple[str, ...] = ()


class Organisers(_Frozen):
    """Who may run organiser commands, per platform."""

    console: tuple[str, ...] = ("organiser",)
    discord_users: tuple[Id, ...] = ()
    discord_roles: tuple[Id, ...] = ()
    discord_manage_server: bool = True
    matrix_users: tuple[str, ...] = ()
    matrix_power_level: int | None = 50


class Timeline(_Frozen):
    """How long before a meeting each post goes out (see `Lead`)."""

    assignment: LeadTime = Lead(7, timedelta(0))
    reminder: LeadTime = Lead(0, timedelta(hours=24))


class Turnout(_Frozen):
    """Who is coming: a cap on the yes answers, beyond which members wait for a place (a waitlist shared by
    every platform of the circle); an RSVP deadline, at which the bot posts the outcome, and a quorum of yes
    answers with what to do when a meeting falls short of it."""

    capacity: int | None = Field(default=None, ge=1, le=10_000)  # places at a meeting; None: no limit
    deadline: LeadTime | None = None  # the RSVP deadline before a meeting: the bot posts the outcome then
    quorum: int | None = Field(default=None, ge=1, le=10_000)  # yes answers a meeting needs by the deadline
    on_low_turnout: Literal["notify", "postpone", "cancel"] = "notify"
    nudge: LeadTime | None = None  # one post before the meeting to the regulars who have not answered, and maybes
    dm_reminders: bool = True  # members may ask for reminders by direct message (`remind me dm on`)

    @model_validator(mode="after")
    def _quorum(self) -> Turnout:
        if self.quorum is not None and self.deadline is None:
            raise ValueError("'quorum' is counted at the RSVP deadline: give 'deadline' too, like deadline = \"24h\"")
        if "on_low_turnout" in self.model_fields_set and self.quorum is None:
            raise ValueError("'on_low_turnout' says what to do when fewer than 'quorum' said yes: give 'quorum' too, "
                             "like quorum = 3")
        if self.quorum is not None and self.capacity is not None and self.quorum > self.capacity:
            raise ValueError(f"'quorum' ({self.quorum}) is more than 'capacity' ({self.capacity}): no meeting could "
                             "reach it")
        return self


class Facilitators(_Frozen):
    """Who leads each meeting's discussion: with `rota`, the bot proposes a facilitator for every meeting (the
    regular who facilitated least recently) and sends them the discussion questions `questions_ahead` before."""

    rota: bool = False
    questions_ahead: LeadTime = Lead(1, timedelta(0))  # when the facilitator gets the questions, privately


class CircleSettings(_Frozen):
    """One study circle."""

    slug: Slug
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    timezone: Zone | None = None
    meets: Meets
    where: Where = Where()
    organisers: Organisers = Organisers()
    syllabus: tuple[str, ...] = ()
    timeline: Timeline = Timeline()
    turnout: Turnout = Turnout()
    facilitators: Facilitators = Facilitators()
    part_minutes: int = Field(default=25, ge=5, le=600)  # target reading time per meeting
    split_long_readings: bool = False  # schedule a too-long reading's parts as consecutive meetings

    @property
    def zone(self) -> ZoneInfo:
        """The circle's zone (`validate` fills in the file's default zone for circles that name none)."""
        return ZoneInfo(self.timezone or "UTC")


class ConsoleSettings(_Frozen):
    """The terminal adapter."""

    enabled: Literal["auto", "on", "off"] | bool = "auto"
    user: str = "organiser"


class MatrixSettings(_Frozen):
    """The Matrix adapter (secrets by environment variable name)."""

    homeserver: str
    user_id: str
    access_token_env: EnvName | None = None
    password_env: EnvName | None = None
    device_id: str = "CIRCLEBOT"
    prefix: str = Field(default="!", min_length=1, max_length=5)
    accept_invites: bool = False
    #: End-to-end encryption: read and answer in encrypted rooms (the device's keys live in `store_path`).
    encryption: bool = True
    #: The crypto store's directory (the bot's private keys: back it up); default beside the database.
    store_path: Path | None = None
    #: Cross-signing: the environment variable holding the recovery key `circlebot matrix setup` printed
    #: (restores the cross-signing keys on a new host).
    recovery_key_env: EnvName | None = None

    @model_validator(mode="after")
    def _credentials(self) -> MatrixSettings:
        if not (self.access_token_env or self.password_env):
            raise ValueError("name the environment variable holding the bot's credentials: 'access_token_env' "
                             "(or 'password_env')")
        return self


class DiscordSettings(_Frozen):
    """The Discord adapter (secrets by environment variable name)."""

    token_env: EnvName = "CIRCLEBOT_DISCORD_TOKEN"
    guilds: tuple[Id, ...] = ()
    api_base: str | None = None
    gateway_url: str | None = None
    # sharding, for a bot in many servers run by several processes: this process holds the gateway shards
    # `shard_ids` (default: all) of `shard_count`; each server's events come on shard (server id >> 22) % count
    shard_count: int | None = Field(default=None, ge=1, le=4096)
    shard_ids: tuple[int, ...] | None = None
    scheduled_events: bool = False  # mirror each circle's next meeting as a Guild Scheduled Event
    # ask for the privileged GUILD_MEMBERS intent ("Server Members Intent" in the Developer Portal) and list the
    # server's members, so every holder of an organiser role is told what organisers are told, not only those
    # the bot has seen act; refused by Discord (close code 4014), the bot runs on without it and says so
    members_intent: bool = False

    @model_validator(mode="after")
    def _shards(self) -> DiscordSettings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("shard_ids needs shard_count: how many shards the bot runs in all")
        if not self.shard_ids:
            raise ValueError("shard_ids is empty: name the shards this process holds, or leave it out for all")
        wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
        if wrong:
            raise ValueError(f"shard_ids {wrong} are not shards of {self.shard_count} (0 to {self.shard_count - 1})")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("shard_ids names a shard twice")
        return self


class WebSettings(_Frozen):
    """The web server in the bot (`[web]`): calendar feeds, circle pages, health and metrics."""

    enabled: bool = True  # the off-switch: `[web] enabled = false`
    listen: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0: a free port, chosen at start
    base_url: str | None = None  # the public address, e.g. "https://circles.example.org"; default: the listen address
    show_member_names: bool = False  # circle pages name no member unless this is true
    publish_reading_text: bool = False  # a reading's text belongs to its publisher: not on the page unless allowed
    calendar_weeks: int = Field(default=12, ge=1, le=104)  # how far ahead feeds show the meetings the syllabus plans

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"expected an http(s) address like \"https://circles.example.org\", got {value!r}")
        return value.rstrip("/")


class Settings(_Frozen):
    """The whole validated config. Paths are absolute (relative ones are resolved against the file)."""

    database: Database = Path("circlebot.sqlite3")  # a SQLite file, or a postgresql://user@host/db URL
    database_password_env: EnvName | None = None  # the variable holding the PostgreSQL password, if it needs one
    # several processes on one PostgreSQL database: how long a process holds the posts it is sending without
    # renewing its claim; a process that stops (killed, cut off) has them taken over by another after this
    delivery_lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    readings: Path = Path("readings")
    timezone: Zone = "UTC"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    console: ConsoleSettings = ConsoleSettings()
    matrix: MatrixSettings | None = None
    discord: DiscordSettings | None = None
    web: WebSettings | None = None  # no `[web]` section: no web server
    circles: tuple[CircleSettings, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        if not self.circles:
            raise ValueError("no circles: add at least one [[circles]] table (see config.example.toml)")
        seen: set[str] = set()
        for c in self.circles:
            if c.slug in seen:
                raise ValueError(f"two circles share the slug {c.slug!r}; each circle needs its own")
            seen.add(c.slug)
        return self

    @property
    def on_postgresql(self) -> bool:
        return isinstance(self.database, str)

    def circle(self, slug: str) -> CircleSettings | None:
        return next((c for c in self.circles if c.slug == slug), None)

    def zone_of(self, circle: CircleSettings) -> ZoneInfo:
        return ZoneInfo(circle.timezone or self.timezone)

    @property
    def console_enabled(self) -> bool:
        if self.console.enabled in ("auto",):
            return self.matrix is None and self.discord is None
        return self.console.enabled in (True, "on")


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "json-or-python")) or part in ("str", "bool"):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _explain(err: Any) -> str:
    kind = err["type"]
    key = err["loc"][-1] if err["loc"] else ""
    if kind == "extra_forbidden" and key in _SECRET_KEYS:
        return (f"secrets never go in the config file: put it in an environment variable and name that "
                f"variable with '{key}_env'")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see config.example.toml for the keys)"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind not in ("value_error", "assertion_error") and "input" in err and not isinstance(err["input"], dict):
        msg += f" (got {err['input']!r})"
    return msg


_PLACES = (("discord_channels", "Discord channel", "a channel"), ("matrix_rooms", "Matrix room", "a room"))


def _shared_places(data: dict[str, Any]) -> list[str]:
    """A Discord channel or Matrix room named by two circles (read from the raw TOML, so it is reported beside
    every other problem): the second is an error naming the first."""
    circles = data.get("circles")
    if not isinstance(circles, list):
        return []
    problems: list[str] = []
    owners: dict[tuple[str, str], tuple[int, str]] = {}
    for i, circle in enumerate(circles):
        where = circle.get("where") if isinstance(circle, dict) else None
        if not isinstance(where, dict):
            continue
        slug = str(circle.get("slug", f"circles[{i}]"))
        for key, label, one in _PLACES:
            ids = where.get(key)
            if not isinstance(ids, list):
                continue
            for place in dict.fromkeys(str(x) for x in ids):
                first = owners.setdefault((key, place), (i, slug))
                if first[0] != i:
                    problems.append(f"circles[{i}].where.{key}: {label} {place!r} is also in circle {first[1]!r} "
                                    f"(circles[{first[0]}]); {one} belongs to one circle")
    return problems


def validate(data: dict[str, Any], path: Path) -> Settings:
    """Validate parsed TOML; raise `ConfigError` with every problem."""
    shared = _shared_places(data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems = [f"{_loc(err['loc'])}: {_explain(err)}" for err in e.errors()]
        raise ConfigError(path, problems + shared) from None
    if shared:
        raise ConfigError(path, shared)
    base = path.parent
    database = settings.database
    if isinstance(database, Path) and not database.is_absolute():
        database = base / database
    # what lives beside the database by default (the Matrix crypto store); on PostgreSQL, beside the config file
    beside = database if isinstance(database, Path) else base / "circlebot.sqlite3"
    return settings.model_copy(
        update={
            "matrix": _matrix_paths(settings.matrix, base, beside),
            "database": database,
            "readings": settings.readings if settings.readings.is_absolute() else base / settings.readings,
            "circles": tuple(c if c.timezone else c.model_copy(update={"timezone": settings.timezone})
                             for c in settings.circles),
        }
    )


def _matrix_paths(m: MatrixSettings | None, base: Path, database: Path) -> MatrixSettings | None:
    """The crypto store's directory made absolute: relative to the config file, or by default beside the
    database (``circlebot.sqlite3`` -> ``circlebot-matrix-store/``)."""
    if m is None:
        return None
    store = m.store_path if m.store_path is not None else database.parent / f"{database.stem}-matrix-store"
    return m.model_copy(update={"store_path": store if store.is_absolute() else base / store})


def load(path: Path) -> Settings:
    """Read and validate the config file at `path`."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, [f"cannot read the file: {e.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, ["the file is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, [f"TOML syntax: {e}"]) from None
    return validate(data, path)

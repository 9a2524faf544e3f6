"""Each adapter built for the running bot: from its settings, with its view of the bot (`AppLookups`). The one
place besides `lookups.py` where adapters meet the router; each platform's library is imported only when used."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from circlebot.adapters.lookups import AppLookups

if TYPE_CHECKING:
    from circlebot.adapters.console import ConsoleAdapter
    from circlebot.adapters.discord import DiscordAdapter
    from circlebot.adapters.matrix import MatrixAdapter
    from circlebot.core.router import Router


def console_adapter(app: Router, circles: list[tuple[str, str, ZoneInfo]], user: str,
                    page_url: Callable[[str], str | None] | None = None) -> ConsoleAdapter:
    """The terminal chat for `circles` (slug, name, zone), typing as `user`; `page_url` gives a circle's web
    page for the banner."""
    from circlebot.adapters.console import PLATFORM, ConsoleAdapter

    return ConsoleAdapter(circles, user=user, lookups=AppLookups(app, PLATFORM), page_url=page_url,
                          files_dir=_files_dir(app.settings.database))


def _files_dir(database: Path | str) -> Path:
    """Where the console writes the files it hands over: beside a SQLite database, else ./exports."""
    return database.parent / "exports" if isinstance(database, Path) else Path("exports")


def matrix_adapter(app: Router, env: Mapping[str, str] | None = None) -> MatrixAdapter:
    """The Matrix adapter for a configured app (ValueError when `[matrix]` is missing or its secret is not set)."""
    from circlebot.adapters.matrix import PLATFORM, adapter_from_settings

    return adapter_from_settings(app.settings, AppLookups(app, PLATFORM), env)


def discord_adapter(app: Router) -> DiscordAdapter:
    """The Discord adapter for a configured app (ValueError when `[discord]` is missing or has no token)."""
    from circlebot.adapters.discord import PLATFORM, DiscordAdapter

    settings = app.settings.discord
    if settings is None:
        raise ValueError("there is no [discord] section in the config")
    return DiscordAdapter(settings, app.settings.circles, app.commands.commands, AppLookups(app, PLATFORM),
                          clock=app.clock.now)

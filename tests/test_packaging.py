"""What can be checked of the packaging without a Docker engine or a network."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_dockerfile_runs_as_non_root_with_the_database_on_a_volume() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^VOLUME \["/data"\]', text, re.M)
    assert 'database = "/data/circlebot.sqlite3"' in text
    assert re.search(r'^CMD \["circlebot", "run"\]', text, re.M)
    for src in re.findall(r"^COPY (?:--\S+ )*(.+?) \S+$", text, re.M):
        for part in src.split():
            assert (REPO / part).exists(), f"the Dockerfile copies {part}, which is not in the repo"


def test_dockerfile_delivers_docker_stop_to_the_bot() -> None:
    # `docker stop` sends the STOPSIGNAL to PID 1: an init (tini) that passes it on to the bot, which is run in
    # exec form (a shell form CMD would make /bin/sh PID 1, and sh does not pass SIGTERM on)
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert re.search(r"^RUN apt-get update && apt-get install -y --no-install-recommends tini\b", text, re.M)
    assert re.search(r'^ENTRYPOINT \["/usr/bin/tini", "--"\]$', text, re.M)
    assert re.search(r'^CMD \[', text, re.M) and not re.search(r"^CMD [^\[]", text, re.M)


def test_readme_commands_are_the_makefile_targets() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    make = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "make run" in readme and "make test" in readme
    assert re.search(r"^run:", make, re.M) and re.search(r"^test:", make, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_pyproject_pins_the_fixed_choices() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = " ".join(project["dependencies"])
    for pin in ("discord.py>=2.7,<2.8", "matrix-nio>=0.26,<0.27", "apscheduler>=3.11,<4", "aiosqlite"):
        assert pin in deps
    assert "matrix-synapse" in " ".join(project["optional-dependencies"]["test"])
    assert project["scripts"]["circlebot"] == "circlebot.cli:main"


def test_no_secret_is_committed() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False).stdout.split()
    pattern = re.compile(r"(syt_[A-Za-z0-9_]{10,}|[MN][A-Za-z\d]{23}\.[\w-]{6}\.[\w-]{27})")
    for name in files:
        path = REPO / name
        if path.is_file() and path.suffix in {".py", ".toml", ".md", ".yaml", ".yml", ".txt", ""}:
            assert not pattern.search(path.read_text(encoding="utf-8", errors="ignore")), name

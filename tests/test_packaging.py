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
    for pin in ("discord.py>=2.7,<2.8", "matrix-nio[e2e]>=0.26,<0.27", "apscheduler>=3.11,<4", "aiosqlite"):
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


def test_dockerfile_exposes_the_web_port_its_config_listens_on_and_checks_health_there(tmp_path: Path) -> None:
    """The image's config is the example config edited by the Dockerfile's `sed` expressions: applied here the
    same way, it must validate and listen on every interface on the port the image exposes and health-checks."""
    from circlebot.config import validate

    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    config = (REPO / "config.example.toml").read_text(encoding="utf-8")
    for pattern, replacement in re.findall(r"-e 's#(.+?)#(.+?)#'", text):
        config, n = re.subn(pattern.replace("^", "(?m)^", 1), replacement, config)
        assert n == 1, f"the Dockerfile's sed expression {pattern!r} matches {n} lines of config.example.toml"
    settings = validate(tomllib.loads(config), tmp_path / "circlebot.toml")
    assert settings.web is not None and settings.web.enabled
    assert settings.web.listen == "0.0.0.0"
    exposed = re.findall(r"^EXPOSE (\d+)$", text, re.M)
    assert exposed == [str(settings.web.port)]
    health = re.search(r"^HEALTHCHECK .*\n?.*CMD \[.*http://127\.0\.0\.1:(\d+)/healthz", text, re.M)
    assert health and health[1] == exposed[0], "the HEALTHCHECK asks /healthz on the exposed port"

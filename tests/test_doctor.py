"""`bzzz doctor` on real parts (the local forge, the lab model server, the sandbox, the
queue): all is well, then each thing broken in turn is named with its fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.config import load_settings
from bzzz.doctor import Check, Verdict, diagnose, exit_code
from bzzz.home import init_home
from bzzz.lab.forge import LocalForge
from bzzz.lab.model import LabModelServer
from bzzz.lab.processes import free_port
from tests.conftest import seeded_forge
from workers.sandbox import SandboxUnavailable, choose_backend

TOKEN = "tok-node-a-0123456789"  # noqa: S105
WORLD = {
    "users": [{"login": "lab"}, {"login": "node-a", "token": TOKEN}],
    "repos": [{"owner": "lab", "name": "app", "files": {"README.md": "# app\n"}}],
}


@pytest.fixture(scope="module")
def forge() -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-doctor-") as running:
        yield running


@pytest.fixture(scope="module")
def model() -> Iterator[LabModelServer]:
    with LabModelServer() as running:
        yield running


@pytest.fixture
def home(tmp_path: Path, forge: LocalForge, model: LabModelServer) -> Path:
    home = tmp_path / "home"
    init_home(
        home,
        "node-a",
        extra={
            "forge": {"api_url": forge.api_url, "timeout": 5.0},
            "tasks": {"repositories": ["lab/app"]},
            "capabilities": {"ollama_host": model.url},
            "agent": {"model": "lab"},
            "git": {"author_name": "Node A", "author_email": "node-a@lab.invalid"},
            "workers": {"executor": "workers.agent:run"},
        },
    )
    return home


def env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {"BZZZ_FORGE_TOKEN": TOKEN, "HOME": str(tmp_path), "PATH": "/usr/bin:/bin", **overrides}


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def failed(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks if c.verdict is Verdict.FAIL}


def test_a_healthy_node_passes(home: Path, tmp_path: Path) -> None:
    try:
        choose_backend(load_settings(home).sandbox)
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    checks = diagnose(home, env(tmp_path))
    named = by_name(checks)
    assert exit_code(checks) == 0, checks
    assert named["sandbox"].verdict is Verdict.OK
    for name in ("config", "identity", "forge token", "forge", "repository lab/app", "queue"):
        assert named[name].verdict is Verdict.OK, named[name]
    assert named["forge"].detail.endswith("as node-a")
    assert "lab" in named["model server"].detail
    assert named["git identity"].detail == "Node A <node-a@lab.invalid>"
    assert named["node"].verdict is Verdict.WARN  # not running here
    assert TOKEN not in repr(checks)


@pytest.mark.parametrize(
    ("overrides", "check", "fix"),
    [
        ({"BZZZ_CLAIMS_MARGIN": "-1"}, "config", "BZZZ_CLAIMS_MARGIN"),
        ({"BZZZ_FORGE_TOKEN": ""}, "forge token", "BZZZ_FORGE_TOKEN"),
        ({"BZZZ_FORGE_TOKEN": "tok-wrong-0123456789"}, "forge", "new token"),
        ({"BZZZ_FORGE_API_URL": "http://127.0.0.1:9/api/v3"}, "forge", "forge.api_url"),
        ({"BZZZ_TASKS_REPOSITORIES": "lab/missing"}, "repository lab/missing", "read access"),
        ({"BZZZ_CAPABILITIES_OLLAMA_HOST": "http://127.0.0.1:9"}, "model server", "ollama"),
        ({"BZZZ_AGENT_MODEL": "qwen2.5-coder:7b"}, "model server", "ollama pull"),
        (
            {"BZZZ_SANDBOX_BACKEND": "docker", "BZZZ_SANDBOX_DOCKER_HOST": "unix:///nonexistent"},
            "sandbox",
            "docs/sandbox.md",
        ),
        ({"BZZZ_WORKERS_BROKER_URL": "redis://127.0.0.1:9/0"}, "queue", "workers.broker_url"),
        ({"BZZZ_GIT_AUTHOR_NAME": "", "BZZZ_GIT_AUTHOR_EMAIL": ""}, "git identity", "git.author"),
        ({"BZZZ_WORKERS_EXECUTOR": "workers.nothing:here"}, "executor", "workers.executor"),
    ],
)
def test_each_broken_part_is_named_with_its_fix(
    home: Path, tmp_path: Path, overrides: dict[str, str], check: str, fix: str
) -> None:
    checks = diagnose(home, env(tmp_path, **overrides))
    broken = failed(checks)
    assert check in broken, checks
    assert fix in broken[check].fix, broken[check]
    assert exit_code(checks) == 1


def test_an_identity_key_others_can_read_is_named(home: Path, tmp_path: Path) -> None:
    (home / "identity.key").chmod(0o644)
    broken = failed(diagnose(home, env(tmp_path)))
    assert "chmod 600" in broken["identity"].fix


def test_a_config_that_does_not_load_stops_the_other_checks(tmp_path: Path) -> None:
    checks = diagnose(tmp_path / "nowhere", env(tmp_path))
    assert [c.name for c in checks] == ["config"]
    assert checks[0].verdict is Verdict.FAIL
    assert checks[0].fix


def test_the_cli_prints_checks_and_fails_when_one_fails(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bzzz.cli import main  # noqa: PLC0415

    for key, value in env(
        tmp_path, BZZZ_CAPABILITIES_OLLAMA_HOST=f"http://127.0.0.1:{free_port()}"
    ).items():
        monkeypatch.setenv(key, value)
    assert main(["doctor", "--home", str(home)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  model server" in out
    assert "fix: start ollama there, or set capabilities.ollama_host" in out

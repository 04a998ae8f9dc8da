"""The [sandbox] settings and the `bzzz sandbox` commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from bzzz.cli import main
from bzzz.config import ConfigError, SandboxSettings, load_settings
from bzzz.home import init_home
from tests.sandbox.support import DockerEngine
from workers.sandbox.image import split_image


def settings_from(home: Path, toml: str, env: dict[str, str] | None = None) -> SandboxSettings:
    init_home(home, "n1")
    (home / "config.toml").write_text(f'[node]\nname = "n1"\n\n[sandbox]\n{toml}\n')
    return load_settings(home, env or {}).sandbox


def test_defaults_and_overrides(tmp_path: Path) -> None:
    assert settings_from(tmp_path / "a", "") == SandboxSettings()
    settings = settings_from(
        tmp_path / "b",
        'backend = "bubblewrap"\nmemory_mb = 512\ncpus = 2',
        {"BZZZ_SANDBOX_DOCKER_HOST": "unix:///run/d.sock", "BZZZ_SANDBOX_PIDS": "100"},
    )
    assert (settings.backend, settings.memory_mb, settings.cpus) == ("bubblewrap", 512, 2.0)
    assert (settings.docker_host, settings.pids) == ("unix:///run/d.sock", 100)


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ('backend = "none"', ["sandbox.backend", "auto, docker, bubblewrap"]),
        ('image = "Bad Image"', ["sandbox.image", "bzzz-sandbox:bookworm"]),
        ('docker_host = "/run/docker.sock"', ["sandbox.docker_host", "unix:///"]),
        ("memory_mb = 8", ["sandbox.memory_mb", "64 or more"]),
        ("pids = 2", ["sandbox.pids", "16 or more"]),
        ("cpus = 0", ["sandbox.cpus", "greater than 0"]),
        ("command_timeout = -1", ["sandbox.command_timeout", "greater than 0"]),
        ("output_limit = 10", ["sandbox.output_limit", "200 or more"]),
        ('memory_mb = "lots"', ["sandbox.memory_mb", "an integer"]),
    ],
)
def test_bad_values_name_the_key_and_the_fix(tmp_path: Path, toml: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from(tmp_path, toml)
    for name in names:
        assert name in str(error.value)


def test_image_names_split_into_repository_and_tag() -> None:
    assert split_image("bzzz-sandbox:bookworm") == ("bzzz-sandbox", "bookworm")
    assert split_image("bzzz-sandbox") == ("bzzz-sandbox", "latest")
    assert split_image("registry:5000/team/box") == ("registry:5000/team/box", "latest")
    assert split_image("registry:5000/box:1.2") == ("registry:5000/box", "1.2")


@pytest.mark.usefixtures("bubblewrap_works")
def test_check_passes_on_bubblewrap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BZZZ_HOME", str(tmp_path / "no-node-here"))
    assert main(["sandbox", "check", "--backend", "bubblewrap"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("backend: bubblewrap\n  ok   limits held by ")
    assert "FAIL" not in out
    assert "  ok   at most sandbox.pids (256) processes\n" in out
    assert out.count("  ok ") >= 10


def test_check_passes_on_docker(
    docker_engine: DockerEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["--home", str(tmp_path), "--docker-host", docker_engine.host]
    assert main(["sandbox", "check", "--backend", "docker", *argv]) == 0
    out = capsys.readouterr().out
    assert out.startswith("backend: docker\n  ok   limits held by the container's cgroup")
    assert "FAIL" not in out
    assert "  ok   at most sandbox.pids (256) processes\n" in out


def test_check_says_what_to_fix_when_nothing_can_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--home", str(tmp_path), "--docker-host", "unix:///nonexistent.sock"]
    assert main(["sandbox", "check", "--backend", "docker", *argv]) == 2
    assert "start dockerd" in capsys.readouterr().err


def test_build_image_imports_a_given_root_file_system(
    docker_engine: DockerEngine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--home", str(tmp_path), "--docker-host", docker_engine.host, "--image", "t:1"]
    assert main(["sandbox", "build-image", *argv, "--rootfs", str(docker_engine.rootfs)]) == 0
    assert "built t:1" in capsys.readouterr().out

"""Choosing a backend: `auto` takes Docker, then bubblewrap, and otherwise refuses: a
command is never run unsandboxed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bzzz.config import SandboxSettings
from tests.sandbox.support import TEST_SETTINGS, DockerEngine
from workers.sandbox import BACKENDS, SandboxUnavailable, choose_backend, open_sandbox
from workers.sandbox.bubblewrap_backend import BubblewrapSandbox
from workers.sandbox.docker_backend import DockerSandbox

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def without_bwrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no bwrap on PATH


def test_auto_picks_docker_when_the_engine_has_the_image(docker_engine: DockerEngine) -> None:
    settings = replace(TEST_SETTINGS, docker_host=docker_engine.host, image=docker_engine.image)
    assert choose_backend(settings) == "docker"


def test_auto_falls_back_to_bubblewrap(bubblewrap_works: None, workspace: Path) -> None:
    settings = replace(TEST_SETTINGS, docker_host=NO_ENGINE)
    assert choose_backend(settings) == "bubblewrap"
    with open_sandbox(settings, workspace) as box:
        assert isinstance(box, BubblewrapSandbox)


def test_auto_falls_back_when_the_image_is_missing(
    docker_engine: DockerEngine, bubblewrap_works: None
) -> None:
    settings = replace(TEST_SETTINGS, docker_host=docker_engine.host, image="bzzz-missing:x")
    assert choose_backend(settings) == "bubblewrap"
    with pytest.raises(SandboxUnavailable, match="bzzz sandbox build-image"):
        choose_backend(replace(settings, backend="docker"))


@pytest.mark.usefixtures("without_bwrap")
def test_auto_refuses_when_no_backend_can_run(workspace: Path) -> None:
    settings = replace(TEST_SETTINGS, docker_host=NO_ENGINE)
    with pytest.raises(SandboxUnavailable) as refused:
        choose_backend(settings)
    message = str(refused.value)
    assert "never run unsandboxed" in message
    assert "apt-get install bubblewrap" in message
    assert "start dockerd" in message
    with pytest.raises(SandboxUnavailable):
        open_sandbox(settings, workspace)
    assert list(workspace.iterdir()) == []


@pytest.mark.usefixtures("without_bwrap")
def test_a_named_backend_is_never_swapped_for_another(docker_engine: DockerEngine) -> None:
    settings = replace(TEST_SETTINGS, docker_host=docker_engine.host, image=docker_engine.image)
    assert choose_backend(replace(settings, backend="docker")) == "docker"
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        choose_backend(replace(settings, backend="bubblewrap"))


def test_every_sandbox_is_a_known_backend(settings: SandboxSettings, workspace: Path) -> None:
    with open_sandbox(replace(settings, backend="auto"), workspace) as box:
        assert box.backend in BACKENDS
        assert isinstance(box, DockerSandbox | BubblewrapSandbox)

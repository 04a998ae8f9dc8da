"""Sandboxes on both backends. Docker tests run a private dockerd and build the image
once per run (the root file system tarball is cached in pytest's cache directory);
they skip only where dockerd is not installed (scripts/setup installs it) or not root,
and never in CI."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import pytest

from bzzz.config import SandboxSettings
from tests.sandbox.support import TEST_SETTINGS, DockerEngine, cached_rootfs
from workers.sandbox import Sandbox, open_sandbox
from workers.sandbox.bubblewrap_backend import bubblewrap_problem
from workers.sandbox.dockerd import PrivateDockerd, dockerd_path
from workers.sandbox.image import build_image


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where scripts/setup installs it all."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the sandbox tests on both backends)")
    pytest.skip(reason)


@pytest.fixture(scope="package")  # dockerd stops once the sandbox tests are done
def docker_engine(request: pytest.FixtureRequest) -> Iterator[DockerEngine]:
    if dockerd_path() is None:
        unavailable("dockerd is not installed (apt-get install docker.io, or scripts/setup)")
    if os.geteuid() != 0:
        unavailable("a private dockerd needs root")
    root = Path(tempfile.mkdtemp(prefix="bzzz-d-"))  # short: the socket path is limited
    engine = PrivateDockerd(root)
    try:
        engine.start()
        settings = replace(TEST_SETTINGS, backend="docker", docker_host=engine.host)
        rootfs = cached_rootfs(request, root)
        build_image(settings, rootfs=rootfs)
        yield DockerEngine(engine.host, settings.image, rootfs)
    finally:
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def bubblewrap_works() -> None:
    problem = bubblewrap_problem(TEST_SETTINGS)
    if problem is not None:
        unavailable(problem)


@pytest.fixture(params=["bubblewrap", "docker"])
def settings(request: pytest.FixtureRequest) -> SandboxSettings:
    """Test settings for one backend (its tests skip where it cannot run)."""
    if request.param == "docker":
        engine: DockerEngine = request.getfixturevalue("docker_engine")
        return replace(TEST_SETTINGS, backend="docker", docker_host=engine.host, image=engine.image)
    request.getfixturevalue("bubblewrap_works")
    return replace(TEST_SETTINGS, backend="bubblewrap")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def box(settings: SandboxSettings, workspace: Path) -> Iterator[Sandbox]:
    with open_sandbox(settings, workspace) as sandbox:
        assert sandbox.backend == settings.backend
        yield sandbox

"""What only the Docker backend does: the container's settings, the workspace lent to the
sandbox user and handed back, and the client-side backstop for a container that hangs."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from bzzz.config import SandboxSettings
from tests.sandbox.support import TEST_SETTINGS, DockerEngine
from workers.sandbox import SandboxError
from workers.sandbox import docker_backend as backend
from workers.sandbox.docker_backend import DockerSandbox


@pytest.fixture
def docker_settings(docker_engine: DockerEngine) -> SandboxSettings:
    return replace(
        TEST_SETTINGS, backend="docker", docker_host=docker_engine.host, image=docker_engine.image
    )


@pytest.fixture
def client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    api = docker.DockerClient(base_url=docker_engine.host)
    yield api
    api.close()


def test_the_container_is_locked_down(
    docker_settings: SandboxSettings, workspace: Path, client: docker.DockerClient
) -> None:
    with DockerSandbox(docker_settings, workspace) as box:
        config = client.api.inspect_container(box.container.id)
        host = config["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Memory"] == host["MemorySwap"] == 128 * 1024 * 1024
        assert host["PidsLimit"] == 64
        assert host["NanoCpus"] == 1_000_000_000
        assert "/tmp" in host["Tmpfs"]
        assert host["Privileged"] is False
        assert config["Config"]["User"] == "65534:65534"
        container_id = box.container.id
    assert not client.containers.list(all=True, filters={"id": container_id})


def test_a_root_owned_workspace_is_lent_and_handed_back(
    docker_settings: SandboxSettings, workspace: Path
) -> None:
    (workspace / "existing").write_text("x")
    with DockerSandbox(docker_settings, workspace) as box:
        assert box.exec("id -u; echo new > new; mkdir dir; touch dir/f existing").stdout == (
            "1000\n"
        )
    owners = {(path.stat().st_uid, path.stat().st_gid) for path in workspace.rglob("*")}
    assert owners == {(0, 0)}
    assert workspace.stat().st_uid == 0


def test_a_workspace_of_another_user_is_used_as_that_user(
    docker_settings: SandboxSettings, workspace: Path
) -> None:
    import os  # noqa: PLC0415

    os.chown(workspace, 4321, 4321)
    with DockerSandbox(docker_settings, workspace) as box:
        assert box.exec("id -u; touch made").stdout == "4321\n"
    assert (workspace / "made").stat().st_uid == 4321


def test_the_backstop_gives_up_on_a_frozen_container(
    docker_settings: SandboxSettings,
    workspace: Path,
    client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backend, "BACKSTOP", 1.0)
    box = DockerSandbox(docker_settings, workspace)
    try:
        # Frozen, `timeout` inside cannot act: only the client's deadline ends the wait.
        freezer = threading.Timer(0.5, lambda: client.api.pause(box.container.id))
        freezer.start()
        started = time.monotonic()
        with pytest.raises(SandboxError, match="destroyed"):
            box.exec("sleep 30", timeout=1)
        assert time.monotonic() - started < 1 + backend.KILL_AFTER + 1 + 3
        freezer.join()
        assert not client.containers.list(all=True, filters={"id": box.container.id})
        with pytest.raises(SandboxError):
            box.exec("true")
    finally:
        box.close()


def test_a_missing_image_is_a_sandbox_error(
    docker_settings: SandboxSettings, workspace: Path
) -> None:
    with pytest.raises(SandboxError, match="bzzz-missing"):
        DockerSandbox(replace(docker_settings, image="bzzz-missing:x"), workspace)
    assert workspace.stat().st_uid == 0  # handed back although the sandbox never started


def test_containers_of_dead_workers_are_removed(
    docker_settings: SandboxSettings, workspace: Path, client: docker.DockerClient
) -> None:
    dead_pid = _dead_pid()
    orphan = client.containers.run(
        docker_settings.image,
        ["sleep", "infinity"],
        detach=True,
        network_mode="none",
        labels={backend.LABEL: "1", backend.OWNER_LABEL: f"{socket.gethostname()}:{dead_pid}"},
    )
    try:
        with DockerSandbox(docker_settings, workspace) as box:
            assert box.exec("true").exit_code == 0
            assert not client.containers.list(all=True, filters={"id": orphan.id})
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            orphan.remove(force=True)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid

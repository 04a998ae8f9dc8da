"""The Docker sandbox image, built locally from Debian packages (no image registry is
needed): mmdebstrap makes a minimal root file system, the engine imports it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bzzz.config import SandboxSettings
from workers.sandbox.core import SANDBOX_ENV, SANDBOX_GID, SANDBOX_UID, SandboxError
from workers.sandbox.docker_backend import DOCKER_ERRORS, docker_client

SUITE = "bookworm"
# Besides minbase (coreutils, dash, grep, sed, findutils, diffutils, tar, gzip, ...).
PACKAGES = ("git", "python3", "procps", "patch", "make")
LEFT_OUT = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
BUILD_TIMEOUT = 900.0


def rootfs_command(target: Path, suite: str = SUITE, mirror: str | None = None) -> list[str]:
    """The mmdebstrap command line that writes the root file system as a tarball."""
    user = f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:Bzzz sandbox:/tmp:/bin/sh"
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        "--format=tar",
        f"--include={','.join(PACKAGES)}",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in LEFT_OUT),
        f"--customize-hook=echo '{user}' >> \"$1/etc/passwd\"",
        f"--customize-hook=echo 'sandbox:x:{SANDBOX_GID}:' >> \"$1/etc/group\"",
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
        suite,
        str(target),
        *([mirror] if mirror else []),
    ]


def build_rootfs(target: Path, suite: str = SUITE, mirror: str | None = None) -> None:
    if shutil.which("mmdebstrap") is None:
        raise SandboxError(
            "mmdebstrap is not installed. Fix: apt-get install mmdebstrap (or run scripts/setup)."
        )
    command = rootfs_command(target, suite, mirror)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(f"mmdebstrap took more than {BUILD_TIMEOUT:g} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SandboxError(
            f"mmdebstrap failed (exit {result.returncode}):\n{tail}\n"
            "Fix: check that Debian's package archive is reachable (apt-get update works)."
        )


def split_image(image: str) -> tuple[str, str]:
    """NAME[:TAG] -> (NAME, TAG), the tag "latest" when none is given."""
    name, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return name, tag


def import_rootfs(rootfs: Path, settings: SandboxSettings) -> str:
    """Import the tarball as settings.image into the engine; the image's id."""
    repository, tag = split_image(settings.image)
    client = docker_client(settings, timeout=600)
    try:
        client.api.import_image_from_file(
            str(rootfs),
            repository=repository,
            tag=tag,
            changes=[f"ENV {name}={value}" for name, value in SANDBOX_ENV.items()],
        )
        return str(client.images.get(settings.image).id)
    except DOCKER_ERRORS as exc:
        raise SandboxError(f"docker import of {rootfs} failed: {exc}") from exc
    finally:
        client.close()


def build_image(
    settings: SandboxSettings,
    *,
    rootfs: Path | None = None,
    suite: str = SUITE,
    mirror: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> str:
    """Build settings.image; the image's id. A given `rootfs` tarball is imported when
    it exists, else built there and kept (a cache); without one a temporary one is used."""
    with tempfile.TemporaryDirectory(prefix="bzzz-rootfs-") as scratch:
        target = rootfs or Path(scratch) / "rootfs.tar"
        with _only_one_builder(target):
            if not target.exists():
                say(f"building a {suite} root file system with mmdebstrap (about half a minute)")
                partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
                build_rootfs(partial, suite, mirror)
                partial.replace(target)
        say(f"importing {target} as {settings.image}")
        return import_rootfs(target, settings)


@contextlib.contextmanager
def _only_one_builder(target: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `target`: processes sharing one cached tarball (the
    test workers) build it once, the others wait and import it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(target.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

"""What the sandbox tests share besides fixtures."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from bzzz.config import SandboxSettings
from workers.sandbox.image import rootfs_command

# Small limits keep the limit tests quick.
TEST_SETTINGS = SandboxSettings(
    memory_mb=128, pids=64, cpus=1.0, command_timeout=30.0, output_limit=2000
)


@dataclass(frozen=True)
class DockerEngine:
    host: str
    image: str
    rootfs: Path  # the root file system tarball the image was imported from


def cached_rootfs(request: pytest.FixtureRequest, scratch: Path) -> Path:
    """Where the root file system tarball is kept between sessions (pytest's cache, else
    `scratch`), named after the mmdebstrap command that makes it."""
    key = hashlib.sha256(" ".join(rootfs_command(Path("rootfs.tar"))).encode()).hexdigest()
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    directory = cache.mkdir("bzzz-sandbox") if cache is not None else scratch
    return Path(directory) / f"rootfs-{key[:16]}.tar"

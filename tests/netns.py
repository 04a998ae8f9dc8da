"""Network namespaces for tests: several "hosts" on one machine, joined by veth links."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def require_netns() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (.ci/run provides both)")


@contextmanager
def lan(hosts: int) -> Iterator[list[tuple[str, str]]]:
    """`hosts` namespaces on one Ethernet segment (a bridge in a hub namespace).

    Yields (namespace, IPv4 address) per host; everything is deleted afterwards.
    """
    require_netns()
    tag = uuid.uuid4().hex[:6]
    hub = f"bzhub-{tag}"
    names = [f"bz{i}-{tag}" for i in range(hosts)]
    created: list[str] = []
    try:
        for ns in (hub, *names):
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        result = []
        for i, ns in enumerate(names):
            _ip("link", "add", f"bzh{i}{tag}", "type", "veth", "peer", "name", f"bzp{i}{tag}")
            _ip("link", "set", f"bzh{i}{tag}", "netns", hub)
            _ip("link", "set", f"bzp{i}{tag}", "netns", ns)
            _ip("-n", hub, "link", "set", f"bzh{i}{tag}", "master", "br0")
            _ip("-n", hub, "link", "set", f"bzh{i}{tag}", "up")
            _ip("-n", ns, "link", "set", f"bzp{i}{tag}", "name", "eth0")
            address = f"10.78.0.{i + 1}"
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            result.append((ns, address))
        yield result
    finally:
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "delete", ns], check=False, capture_output=True)

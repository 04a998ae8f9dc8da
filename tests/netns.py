"""Network namespaces for tests: several "hosts" on one machine, joined by veth links."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

T = TypeVar("T")
HUB_ADDRESS = "10.78.0.254"
CLONE_NEWNET = 0x40000000


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def require_netns() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (.ci/run provides both)")


@contextmanager
def lan(hosts: int) -> Iterator[list[tuple[str, str]]]:
    """`hosts` namespaces on one Ethernet segment (a bridge in a hub namespace).

    Yields (namespace, IPv4 address) per host; everything is deleted afterwards. The
    hub namespace (`hub_of` a host's) is on the segment too, at HUB_ADDRESS: a server
    every host reaches can listen there (see `entered`).
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
        _ip("-n", hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
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


def hub_of(ns: str) -> str:
    return f"bzhub-{ns.rpartition('-')[2]}"


def set_link(ns: str, up: bool) -> None:
    """Cut (or restore) a host's link to the segment: it loses every peer and server."""
    _ip("-n", ns, "link", "set", "eth0", "up" if up else "down")


@contextmanager
def entered(ns: str) -> Iterator[None]:
    """Run the calling thread in namespace `ns` for a while. Sockets made meanwhile stay
    in `ns` for good (a server started here listens there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{ns}", "rb") as there:
        if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back failed")


def call_in(ns: str, fn: Callable[[], T]) -> T:
    """`fn()` on a thread inside `ns` (its connections are made there)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with entered(ns):
                result.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"in-{ns}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]

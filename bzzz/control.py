"""The node's local control endpoint: a unix socket in its home directory (no network port).

One request per connection: the client writes a JSON object and a newline, the
node answers with one JSON object and a newline. The socket is created 0600,
so only the node's own user can ask.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from trio_typing import TaskStatus

from bzzz.errors import BzzzError, ExitCode

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
MAX_REPLY = 64 * 1024 * 1024
ANSWER_WITHIN = 300.0  # seconds a command may take (status: at once; help: its asks)
SUN_PATH_MAX = 107

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(BzzzError):
    exit_code = ExitCode.CONFIG


def _check_path(path: Path) -> None:
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ControlError(
            f"control socket path {path} is too long for a unix socket; use a shorter --home"
        )


async def serve(
    path: Path, handler: Handler, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    _check_path(path)
    if path.exists():
        if _is_live(path):
            raise ControlError(
                f"another node is running with home {path.parent} (its socket {path} answers)"
            )
        path.unlink()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    try:
        async with listener, trio.open_nursery() as nursery:
            task_status.started()
            while True:
                stream = await listener.accept()
                nursery.start_soon(_answer, stream, handler)
    finally:
        path.unlink(missing_ok=True)


async def _answer(stream: trio.SocketStream, handler: Handler) -> None:
    async with stream:
        try:
            with trio.fail_after(10):
                line = await _read_line(stream, MAX_REQUEST)
            with trio.fail_after(ANSWER_WITHIN):  # a worker's `help` waits on its peers
                reply = await _dispatch(line, handler)
            with trio.fail_after(10):
                await stream.send_all(json.dumps(reply, default=str).encode() + b"\n")
        except (
            trio.TooSlowError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            ControlError,
        ) as exc:
            log.debug("control connection ended: %s", exc)


async def _dispatch(line: bytes, handler: Handler) -> dict[str, Any]:
    try:
        command = json.loads(line)
    except ValueError as exc:
        return {"error": f"bad request: not JSON ({exc})"}
    if not isinstance(command, dict):
        return {"error": "bad request: send a JSON object"}
    try:
        return await handler(command)
    except Exception:
        log.exception("control command %r failed", command.get("cmd"))
        return {"error": "the node failed to answer; see its log"}


async def _read_line(stream: trio.SocketStream, limit: int) -> bytes:
    buffer = bytearray()
    while b"\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buffer += chunk
        if len(buffer) > limit:
            raise ControlError("request too large")
    return bytes(buffer.split(b"\n", 1)[0])


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def request(path: Path, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Ask the node at `path` (blocking). Raises ControlError if it does not answer."""
    _check_path(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(command).encode() + b"\n")
            buffer = bytearray()
            while not buffer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > MAX_REPLY:
                    raise ControlError("reply too large")
        except FileNotFoundError:
            raise ControlError(
                f"no node is running with home {path.parent} (no {path.name})"
            ) from None
        except ConnectionRefusedError:
            raise ControlError(
                f"no node is running with home {path.parent} ({path.name} is stale)"
            ) from None
        except OSError as exc:
            raise ControlError(f"node at {path.parent} did not answer: {exc}") from None
    try:
        reply = json.loads(buffer)
    except ValueError:
        raise ControlError(f"node at {path.parent} sent an unreadable reply") from None
    if not isinstance(reply, dict):
        raise ControlError(f"node at {path.parent} sent an unreadable reply")
    if "error" in reply:
        raise ControlError(str(reply["error"]))
    return reply

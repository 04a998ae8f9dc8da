"""The control endpoint: a unix socket, one JSON request and one JSON reply."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from bzzz.control import ControlError, request, serve


async def handler(command: dict[str, Any]) -> dict[str, Any]:
    if command.get("cmd") == "boom":
        raise RuntimeError("handler bug")
    return {"echo": command}


def run_with_server(path: Path, client: Any) -> Any:
    results: list[Any] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, path, handler)
            results.append(await trio.to_thread.run_sync(client))
            nursery.cancel_scope.cancel()

    trio.run(main)
    return results[0]


def test_request_and_reply(short_tmp: Path) -> None:
    path = short_tmp / "control.sock"
    reply = run_with_server(path, lambda: request(path, {"cmd": "status"}))
    assert reply == {"echo": {"cmd": "status"}}
    assert not path.exists()  # removed when the node stops


def test_socket_is_private(short_tmp: Path) -> None:
    path = short_tmp / "control.sock"
    mode = run_with_server(path, lambda: path.stat().st_mode & 0o777)
    assert mode == 0o600


def test_bad_requests_get_an_error_and_the_server_keeps_serving(short_tmp: Path) -> None:
    path = short_tmp / "control.sock"

    def client() -> list[bytes]:
        answers = []
        for raw in (b"not json\n", b"[1]\n", b'{"cmd": "boom"}\n'):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
                sock.sendall(raw)
                answers.append(sock.makefile("rb").readline())
        answers.append(str(request(path, {"cmd": "after"})).encode())
        return answers

    answers = run_with_server(path, client)
    assert b"not JSON" in answers[0]
    assert b"JSON object" in answers[1]
    assert b"failed to answer" in answers[2]
    assert b"after" in answers[3]


def test_no_node_running(short_tmp: Path) -> None:
    with pytest.raises(ControlError, match="no node is running"):
        request(short_tmp / "control.sock", {"cmd": "status"})
    stale = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))  # bound, never listening: what a crashed node leaves
    with pytest.raises(ControlError, match="stale"):
        request(stale, {"cmd": "status"})


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(short_tmp: Path) -> None:
    path = short_tmp / "control.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    assert run_with_server(path, lambda: request(path, {"cmd": "x"})) == {"echo": {"cmd": "x"}}

    async def two_servers() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, path, handler)
            with pytest.raises(ControlError, match="another node is running"):
                await serve(path, handler)
            nursery.cancel_scope.cancel()

    trio.run(two_servers)


def test_too_long_a_path_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="too long"):
        request(tmp_path / ("x" * 120) / "control.sock", {"cmd": "status"})

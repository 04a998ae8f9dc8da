"""Run inside the sandbox, by the sandbox's python3: listen on the sandbox's loopback at
PORT, pass each connection to the unix socket SOCKET (the node's model relay, bound
in), then run the agent CLI given after `--` and exit with its status.

    python3 inside.py PORT SOCKET -- claude -p ...

The CLI reaches its model at http://127.0.0.1:PORT and nothing else: the sandbox has
no network of its own. Standard library only: it runs where Bzzz is not installed.
"""

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Callable


def pump(
    source: socket.socket,
    sink: socket.socket,
    heard: Callable[[bytes], None] = lambda data: None,
) -> None:
    """Copy until `source` ends, then end `sink`'s writing side; `heard` sees the data."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            heard(data)
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: inside.py PORT SOCKET -- COMMAND...", file=sys.stderr)
        return 2
    port, path, command = int(argv[0]), argv[1], argv[3:]
    listener = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=serve, args=(listener, path), daemon=True).start()
    return subprocess.call(command, stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

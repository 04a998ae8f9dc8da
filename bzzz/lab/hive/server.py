"""`LabHive`: a Hive-compatible HTTP server in this process, for tests and the lab."""

from __future__ import annotations

import ipaddress
import threading

from bzzz.lab.hive.app import HiveApp
from bzzz.lab.hive.httpd import HiveHTTPServer
from bzzz.lab.hive.state import HiveState, LoggedRequest
from bzzz.lab.httpserver import BackgroundServer


class LabHive(BackgroundServer):
    """Hive's Bzzz endpoints on `host:port` (loopback only; port 0: a free one).

    `key`: the API key every /api request must bring as `Authorization: Bearer <key>`;
    None: no key needed. The projects and what was received live in memory and outlive
    a stop and start. `url` is what to give a HiveClient.

    `down(True)` is an outage a client can rely on seeing as one: every request from
    then on, on a new connection or a kept-alive one, is read and the connection closed
    without a reply (a transport error, no HTTP status); the connections open at that
    moment are closed too. Nothing is recorded but the request log's entry (status
    None). The port stays bound, so `down(False)` brings it back at the same URL.
    """

    kind = "lab hive"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, key: str | None = None) -> None:
        if not _loopback(host):
            raise ValueError(f"the lab hive serves loopback only, not {host!r}")
        super().__init__(host, port)
        self._key = key or None
        self._state = HiveState()
        self._down = threading.Event()

    def _listen(self) -> HiveHTTPServer:
        app = HiveApp(self._state, self._key, self._down)
        return HiveHTTPServer((self.host, self._port), app.handle)

    def add_repo(
        self,
        owner: str,
        name: str,
        *,
        enabled: bool = True,
        git_url: str | None = None,
        branch: str = "main",
        ready_to_claim: bool = True,
    ) -> int:
        """Register repository `owner/name` as a project; its new project_id.

        Names are not checked, as the real Hive does not check them: a test can list a
        hostile one. `enabled` False: a project Hive has but does not list for Bzzz.
        """
        return self._state.add(
            owner,
            name,
            enabled=enabled,
            git_url=git_url or f"https://github.com/{owner}/{name}.git",
            branch=branch,
            ready_to_claim=ready_to_claim,
        )

    def remove_repo(self, project_id: int) -> bool:
        """Forget a project; whether there was one. Its id is not given again."""
        return self._state.remove(project_id)

    def claims(self) -> list[dict[str, object]]:
        """The claim bodies accepted, oldest first, each with the path's "project_id"."""
        return self._state.claims()

    def statuses(self) -> list[dict[str, object]]:
        """The status bodies accepted, oldest first, each with the path's "project_id"."""
        return self._state.statuses()

    def requests(self) -> list[LoggedRequest]:
        """Every request received, answered or dropped, oldest first."""
        return self._state.requests()

    def down(self, flag: bool) -> None:
        """Start (True) or end (False) an outage; see the class's docstring."""
        if not flag:
            self._down.clear()
            return
        self._down.set()
        if self._server is not None:
            self._server.close_connections()

    @property
    def is_down(self) -> bool:
        return self._down.is_set()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

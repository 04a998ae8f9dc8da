"""`LocalForge`: the whole forge in this process, for tests, `bzzz lab` and `bzzz forge serve`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from bzzz.forge.server.admin import AdminApi, Control
from bzzz.forge.server.app import ForgeApp
from bzzz.forge.server.faults import Fault, Faults
from bzzz.forge.server.githttp import GitHttp
from bzzz.forge.server.gitrepos import GitRepos
from bzzz.forge.server.httpd import ForgeHTTPServer
from bzzz.forge.server.ratelimit import RateLimiter
from bzzz.forge.server.reqlog import LoggedRequest, RequestLog
from bzzz.forge.server.rest import API_PREFIX, Services
from bzzz.forge.server.routes import api_router
from bzzz.forge.server.seed import seed
from bzzz.forge.server.store import Store

log = logging.getLogger(__name__)


class LocalForge:
    """A GitHub-compatible forge over HTTP on `host:port` (0: a free port), state in `root`.

    `root/forge.db` holds users, tokens (as digests), repositories, issues, comments,
    labels and pull requests; `root/git/OWNER/REPO.git` the repositories;
    `root/requests.jsonl` the request log. A new forge on the same root finds it all.
    """

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        admin_token: str | None = None,
        rate_limit: int = 5000,
        anonymous_rate_limit: int = 60,
        rate_window: float = 3600.0,
        fault_seed: int | None = None,
        git: str = "git",
    ) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self._port = port
        self.admin_token = admin_token
        self.store = Store(self.root / "forge.db")
        self.repos = GitRepos(self.root / "git", git)
        self.limiter = RateLimiter(rate_limit, anonymous_rate_limit, rate_window)
        self._faults = Faults(fault_seed)
        self._git = git
        self._requests: RequestLog | None = None
        self._control = Control(self._faults, self.limiter, None)
        self._server: ForgeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalForge:
        """Listen and serve in background threads; returns once the socket accepts."""
        if self._server is not None:
            raise RuntimeError("this forge is running already")
        self._requests = RequestLog(self.root / "requests.jsonl")
        self._control.requests = self._requests
        services = Services(self.store, self.repos, self.limiter)
        app = ForgeApp(
            services,
            api_router(),
            faults=self._faults,
            requests=self._requests,
            git=GitHttp(self.store, self.repos.root, self._git),
            admin=AdminApi(self._control, self.admin_token),
        )
        try:
            self._server = ForgeHTTPServer((self.host, self._port), app)
        except OSError:
            self._requests.close()
            raise
        self._thread = self._server.serve_in_background(f"forge-{self.port}")
        return self

    def stop(self) -> None:
        """Stop serving and close every connection. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        if not server.stop_serving(thread):
            log.warning("forge on port %s: connections still busy after stop", self.port)
        if self._requests is not None:
            self._requests.close()
        self.store.close_thread()
        self._server = self._thread = None

    def __enter__(self) -> LocalForge:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the forge is not running; start() it first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base URL for PyGithub: `Github(base_url=forge.api_url, ...)`."""
        return self.url + API_PREFIX

    def git_url(self, owner: str, repo: str) -> str:
        return f"{self.url}/git/{owner}/{repo}.git"

    def seed(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create users, repositories, labels and issues (see `bzzz.forge.server.seed`)."""
        return seed(self.store, self.repos, spec)

    def add_fault(self, fault: Fault) -> Fault:
        """Switch a fault on (see `bzzz.forge.server.faults`); the stored fault, with its id."""
        return self._control.add(fault)

    def remove_fault(self, fault_id: int) -> bool:
        return self._faults.remove(fault_id)

    def clear_faults(self) -> None:
        """All faults off, and budgets exhausted by a `rate_limit` fault come back."""
        self._control.clear()

    def faults(self) -> list[Fault]:
        return self._faults.active()

    def exhaust_rate_limit(self, user: str | None = None, reset_in: float = 60.0) -> None:
        """Spend `user`'s budget (everyone's if None) until `reset_in` seconds from now."""
        self._control.add(Fault("rate_limit", user=user, reset_in=reset_in))

    def requests(self, after: int = 0) -> list[LoggedRequest]:
        """The requests answered since start, oldest first (`after`: a `seq` seen already)."""
        return self._control.logged(after)

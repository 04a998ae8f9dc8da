"""`LocalForge`: the whole forge in this process, for tests, `bzzz lab run` and
`bzzz lab forge serve`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bzzz.lab.forge.admin import AdminApi, Control
from bzzz.lab.forge.app import ForgeApp
from bzzz.lab.forge.faults import Fault, Faults
from bzzz.lab.forge.githttp import GitHttp
from bzzz.lab.forge.gitrepos import GitRepos
from bzzz.lab.forge.httpd import ForgeHTTPServer
from bzzz.lab.forge.ratelimit import RateLimiter
from bzzz.lab.forge.reqlog import LoggedRequest, RequestLog
from bzzz.lab.forge.rest import API_PREFIX, Services
from bzzz.lab.forge.routes import api_router
from bzzz.lab.forge.seed import seed
from bzzz.lab.forge.store import Store
from bzzz.lab.httpserver import BackgroundServer


class LocalForge(BackgroundServer):
    """A GitHub-compatible forge over HTTP on `host:port` (0: a free port), state in `root`.

    `root/forge.db` holds users, tokens (as digests), repositories, issues, comments,
    labels and pull requests; `root/git/OWNER/REPO.git` the repositories;
    `root/requests.jsonl` the request log. A new forge on the same root finds it all.
    """

    kind = "forge"

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
        super().__init__(host, port)
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.admin_token = admin_token
        self.store = Store(self.root / "forge.db")
        self.repos = GitRepos(self.root / "git", git)
        self.limiter = RateLimiter(rate_limit, anonymous_rate_limit, rate_window)
        self._faults = Faults(fault_seed)
        self._git = git
        self._requests: RequestLog | None = None
        self._control = Control(self._faults, self.limiter, None)

    def _listen(self) -> ForgeHTTPServer:
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
            return ForgeHTTPServer((self.host, self._port), app)
        except OSError:
            self._requests.close()
            raise

    def _stopped(self) -> None:
        if self._requests is not None:
            self._requests.close()
        self.store.close_thread()

    @property
    def api_url(self) -> str:
        """The base URL for PyGithub: `Github(base_url=forge.api_url, ...)`."""
        return self.url + API_PREFIX

    def git_url(self, owner: str, repo: str) -> str:
        return f"{self.url}/git/{owner}/{repo}.git"

    def seed(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Create users, repositories, labels and issues (see `bzzz.lab.forge.seed`)."""
        return seed(self.store, self.repos, spec)

    def add_fault(self, fault: Fault) -> Fault:
        """Switch a fault on (see `bzzz.lab.forge.faults`); the stored fault, with its id."""
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

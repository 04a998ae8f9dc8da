"""git smart HTTP: `/git/OWNER/REPO.git/...` served by `git http-backend` as a CGI program.

Clones and fetches are open to anyone (every forge repository is public). A push needs
HTTP Basic credentials, login and token, of a user with push access: without credentials
the answer is 401 with a Basic challenge, so git and libgit2 ask their credential helpers;
with a user who may not push it is 403. `REMOTE_USER` tells http-backend to accept the
push. Bodies stream both ways: in to the CGI's stdin, out as chunked HTTP.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from bzzz.lab.forge.access import access
from bzzz.lab.forge.gitrepos import git_env
from bzzz.lab.forge.httpd import CHUNK, Exchange
from bzzz.lab.forge.store import Store, repos, users
from bzzz.lab.forge.store.records import Repo, User

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/git/(?P<owner>[^/]+)/(?P<repo>[^/]+)\.git/(?P<rest>.+)$")
SERVICES = ("git-upload-pack", "git-receive-pack")
CHALLENGE = {"WWW-Authenticate": 'Basic realm="bzzz-forge"'}


@dataclass(frozen=True)
class GitOutcome:
    status: int
    user: str | None


@dataclass(frozen=True)
class _Admitted:
    repo: Repo
    rest: str  # info/refs, git-upload-pack or git-receive-pack
    service: str
    user: User | None


class _Refused(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        login: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.login = login


class GitHttp:
    def __init__(self, store: Store, root: Path, git: str = "git") -> None:
        self.store = store
        self.root = root
        self.git = git

    def serve(self, exchange: Exchange, path: str, query: str) -> GitOutcome:
        try:
            admitted = self._admit(exchange, path, query)
        except _Refused as refused:
            body = (str(refused) + "\n").encode()
            headers = {"Content-Type": "text/plain; charset=utf-8", **refused.headers}
            exchange.reply(refused.status, headers, body)
            return GitOutcome(refused.status, refused.login)
        repo, user = admitted.repo, admitted.user
        status = self._cgi(exchange, repo, admitted.rest, query, user)
        pushed = admitted.service == "git-receive-pack" and exchange.command == "POST"
        if pushed and status == 200:
            with self.store.write() as db:
                repos.touch_pushed(db, repo.id)
        return GitOutcome(status, None if user is None else user.login)

    def _admit(self, exchange: Exchange, path: str, query: str) -> _Admitted:
        """What is asked of which repository by whom; `_Refused` if it is not allowed."""
        found = _PATH.match(path)
        if found is None:
            raise _Refused(404, "Not Found")
        service = self._service(exchange.command, found["rest"], query)
        user = self._authenticate(exchange)
        login = None if user is None else user.login
        with self.store.read() as db:
            repo = repos.by_name(db, found["owner"], found["repo"])
            if repo is None:
                raise _Refused(404, "Repository not found", login=login)
            if service == "git-receive-pack":
                if user is None:
                    raise _Refused(401, "Authentication required", CHALLENGE)
                if not access(db, repo, user).push:
                    message = f"Permission to {repo.full_name} denied to {user.login}."
                    raise _Refused(403, message, login=login)
        return _Admitted(repo, found["rest"], service, user)

    def _service(self, method: str, rest: str, query: str) -> str:
        if rest == "info/refs" and method == "GET":
            service = dict(p.partition("=")[::2] for p in query.split("&")).get("service", "")
            if service in SERVICES:
                return service
            raise _Refused(403, "Only the smart HTTP protocol is served")
        if rest in SERVICES and method == "POST":
            return rest
        raise _Refused(404, "Not Found")

    def _authenticate(self, exchange: Exchange) -> User | None:
        """The user of Basic credentials (login and token); 401 if they are wrong."""
        header = exchange.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        login: str | None = None
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise _Refused(401, "Bad credentials", CHALLENGE) from None
            login, _, token = decoded.partition(":")
        elif scheme.lower() in ("token", "bearer"):
            token = value.strip()
        else:
            raise _Refused(401, "Bad credentials", CHALLENGE)
        with self.store.read() as conn:
            user = users.by_token(conn, token)
        if user is None or (login and login.lower() not in (user.login.lower(), "x-access-token")):
            raise _Refused(401, "Bad credentials", CHALLENGE)
        return user

    def _cgi(self, exchange: Exchange, repo: Repo, rest: str, query: str, user: User | None) -> int:
        headers = exchange.headers
        env = {
            **git_env(),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": exchange.command,
            "PATH_INFO": f"/{repo.owner.login}/{repo.name}.git/{rest}",
            "QUERY_STRING": query,
            "CONTENT_TYPE": headers.get("Content-Type", ""),
            "REMOTE_ADDR": exchange.client_ip,
        }
        if user is not None:
            env["REMOTE_USER"] = user.login
        if headers.get("Content-Length") and not exchange.chunked_body:
            env["CONTENT_LENGTH"] = headers["Content-Length"]
        for name in ("Git-Protocol", "Content-Encoding"):
            if headers.get(name):
                env["HTTP_" + name.upper().replace("-", "_")] = headers[name]
        process = subprocess.Popen(
            [self.git, "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        stdin = cast(IO[bytes], process.stdin)
        stdout = cast(io.BufferedReader, process.stdout)
        errors: list[bytes] = []
        feeder = threading.Thread(target=_feed, args=(exchange, stdin), daemon=True)
        drain = threading.Thread(target=_drain, args=(process.stderr, errors), daemon=True)
        feeder.start()
        drain.start()
        try:
            status = _relay(exchange, stdout)
        finally:
            feeder.join()
            stdout.close()
            process.wait()
            drain.join()
        if errors and b"".join(errors).strip():
            log.debug("git http-backend: %s", b"".join(errors).decode(errors="replace").strip())
        return status


def _feed(exchange: Exchange, stdin: IO[bytes]) -> None:
    """Stream the request body into the CGI; it may stop reading early (a refused push)."""
    try:
        for data in exchange.body_chunks():
            stdin.write(data)
    except (BrokenPipeError, ConnectionError, OSError) as exc:
        log.debug("request body not fully delivered to git: %s", exc)
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


def _drain(stderr: IO[bytes], errors: list[bytes]) -> None:
    errors.append(stderr.read())
    stderr.close()


def _relay(exchange: Exchange, stdout: io.BufferedReader) -> int:
    """Translate the CGI's headers (`Status:` among them) and stream its body, chunked."""
    status, cgi_headers = 200, list[tuple[str, str]]()
    while True:
        line = stdout.readline()
        if line in (b"", b"\r\n", b"\n"):
            if not line and not cgi_headers:
                exchange.reply(500, {"Content-Type": "text/plain"}, b"git http-backend failed\n")
                return 500
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "status":
            status = int(value.strip().split()[0])
        elif name.strip().lower() not in ("content-length", "transfer-encoding", "connection"):
            cgi_headers.append((name.strip(), value.strip()))
    exchange.start_chunked(status, cgi_headers)
    while True:
        data = stdout.read1(CHUNK)
        if not data:
            break
        exchange.write_chunk(data)
    exchange.end_chunked()
    return status

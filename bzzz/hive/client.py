"""`HiveClient`: Hive's REST API over HTTP, blocking, for a node's job threads.

httpx rather than the standard library: it is already installed (ollama and py-libp2p
depend on it, and the gateway uses it), pools connections, has separate connect and read
timeouts, and lets the tests swap the network for a mock transport. Blocking, not trio:
Hive is advisory and called from the job threads that poll the forge, never from the
event loop.

Every failure is a HiveError whose `retry` says whether trying later can help. The API
key goes in the Authorization header and nowhere else: messages are scrubbed of it, and
httpx's errors are turned into text rather than chained, since they hold the request and
so its headers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import httpx

from bzzz.hive.api import HiveError, HiveRepo, parse_active_repos

log = logging.getLogger(__name__)

MAX_REPLY = 4 * 1024 * 1024  # bytes of a reply read; Hive's listings are a few KB
MAX_DETAIL = 300  # characters of an error reply quoted in a message

ACTIVE_REPOS = "/api/bzzz/active-repos"
# The real Hive turns its own 4xx into 500 {"detail": "400: ..."}: a request it refused,
# which no retry will change.
_WRAPPED_4XX = re.compile(r"4\d\d: ")
_KEY_CHARS = re.compile(r"[!-~]+")  # printable ASCII without spaces: safe in a header


class HiveClient:
    """Hive at `base_url` (e.g. "http://hive:8000"), with API key `key` if Hive wants one.

    Thread-safe: the connection pool is shared. `transport` replaces the network (tests).
    """

    def __init__(
        self,
        base_url: str,
        key: str | None,
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._key = key or None
        self.base_url = _checked_base(base_url)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key is not None:
            if not _KEY_CHARS.fullmatch(self._key):
                raise HiveError("the Hive API key must be one word of printable ASCII", retry=False)
            headers["Authorization"] = f"Bearer {self._key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HiveClient({self.base_url!r}, key={'set' if self._key else 'none'})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def health(self) -> bool:
        """Whether Hive answers `GET /health` with success; never raises."""
        try:
            self._request("GET", "/health")
        except HiveError as exc:
            log.debug("Hive is not healthy: %s", exc)
            return False
        return True

    def active_repos(self) -> list[HiveRepo]:
        """Hive's active repositories; malformed entries are skipped (and logged)."""
        data = self._request("GET", ACTIVE_REPOS)
        repos = parse_active_repos(data)
        listed = data["repositories"] if isinstance(data, dict) else []
        if (skipped := len(listed) - len(repos)) > 0:
            log.warning("Hive listed %d malformed repositories; skipped them", skipped)
        return repos

    def claim(self, project_id: int, body: Mapping[str, object]) -> dict[str, object]:
        """Tell Hive a task is claimed (`body`: `api.claim_body`); Hive's reply."""
        return _object(self._request("POST", f"/api/bzzz/projects/{_id(project_id)}/claim", body))

    def status(self, project_id: int, body: Mapping[str, object]) -> dict[str, object]:
        """Report a task's status (`body`: `api.status_body`); Hive's reply."""
        return _object(self._request("PUT", f"/api/bzzz/projects/{_id(project_id)}/status", body))

    def _request(self, method: str, path: str, body: Mapping[str, object] | None = None) -> object:
        """The reply's JSON (None for an empty body) for a 2xx; HiveError otherwise."""
        where = f"Hive {method} {path}"
        content = None if body is None else _encode(body)
        try:
            with self._http.stream(method, path, content=content) as response:
                status, raw = response.status_code, _read(response, where)
        except httpx.UnsupportedProtocol as exc:
            raise self._error(f"{where}: {exc}", retry=False) from None
        except httpx.TimeoutException as exc:
            raise self._error(f"{where}: timed out ({type(exc).__name__})", retry=True) from None
        except httpx.TransportError as exc:
            raise self._error(f"{where}: {_describe(exc)}", retry=True) from None
        except httpx.RequestError as exc:
            raise self._error(f"{where}: {_describe(exc)}", retry=False) from None
        log.debug("%s: %d", where, status)
        if 200 <= status < 300:
            return _decode(raw, where)
        detail = _detail(raw)
        wrapped = status == 500 and _WRAPPED_4XX.match(detail) is not None
        retry = status == 429 or (status >= 500 and not wrapped)
        hint = " (Hive's way of refusing the request)" if wrapped else ""
        raise self._error(f"{where}: HTTP {status}{hint}: {detail}", retry=retry, status=status)

    def _error(self, message: str, *, retry: bool, status: int | None = None) -> HiveError:
        if self._key is not None:
            message = message.replace(self._key, "***")
        return HiveError(message, retry=retry, status=status)


def _checked_base(base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        raise HiveError(f"the Hive URL {base_url!r} is not a URL", retry=False) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise HiveError(f"the Hive URL {base_url!r} is not http(s)://host[:port]", retry=False)
    if url.userinfo:
        raise HiveError("give the Hive API key as the key, not in the URL", retry=False)
    return str(url).rstrip("/")


def _id(project_id: int) -> int:
    if type(project_id) is not int or project_id < 0:
        raise ValueError(f"project_id must be a non-negative integer, not {project_id!r}")
    return project_id


def _encode(body: Mapping[str, object]) -> bytes:
    try:
        return json.dumps(dict(body), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None


def _read(response: httpx.Response, where: str) -> bytes:
    """The reply's body, up to MAX_REPLY bytes: a runaway server does not fill memory."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_REPLY:
            raise HiveError(f"{where}: reply larger than {MAX_REPLY} bytes", retry=False)
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes, where: str) -> object:
    if not raw.strip():
        return None
    try:
        data: object = json.loads(raw)
    except (ValueError, RecursionError):
        raise HiveError(f"{where}: the reply is not JSON", retry=False) from None
    return data


def _detail(raw: bytes) -> str:
    """What an error reply says: FastAPI's {"detail"}, the Go mock's {"error"}, or text."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        said = data.get("detail", data.get("error"))
        if said is not None:
            text = said if isinstance(said, str) else json.dumps(said)
    text = " ".join(text.split())
    return text[:MAX_DETAIL] or "(no detail)"


def _describe(exc: httpx.RequestError) -> str:
    said = str(exc) or "connection closed"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({said})"
    return f"{type(exc).__name__}: {said}"


def _object(data: object) -> dict[str, object]:
    return data if isinstance(data, dict) else {}

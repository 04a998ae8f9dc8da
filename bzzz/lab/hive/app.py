"""What the stand-in answers, request by request, as the real Hive (FastAPI) answers.

    GET  /health                               200, no key needed
    GET  /api/bzzz/active-repos                200 {"repositories": [...]}: enabled projects
    GET  /api/bzzz/projects/{id}/tasks         200 []: tasks come from the forge, not Hive
    POST /api/bzzz/projects/{id}/claim         200 {"success": true, "claim_id": "..."}
    PUT  /api/bzzz/projects/{id}/status        200 {"success": true}

The real Hive's manners, kept on purpose so that clients meet them here first: a missing
(or falsy) required field answers 500 {"detail": "400: ..."}, since Hive's handlers wrap
their own HTTPException in a 500; claims have no conflict check; errors are FastAPI's
{"detail": ...}. Where the brief and the real one part: a key, when given, is required
(401), and claims and statuses for an unknown project answer 404 "Project not found".
Checks run in this order: key, JSON body (422), project (404), fields (500 "400: ...").
"""

from __future__ import annotations

import hmac
import json
import re
import threading

from bzzz.lab.hive.httpd import BadBody, Exchange
from bzzz.lab.hive.state import HiveState

_PROJECT_PATH = re.compile(r"/api/bzzz/projects/([^/]+)/(tasks|claim|status)")
_ID = re.compile(r"[0-9]{1,18}")
_METHODS = {"tasks": "GET", "claim": "POST", "status": "PUT"}
_REQUIRED = {"claim": ("task_number", "agent_id"), "status": ("task_number", "status")}

Reply = tuple[int, object]


class HiveApp:
    def __init__(self, state: HiveState, key: str | None, down: threading.Event) -> None:
        self._state = state
        self._key = key
        self._down = down

    def handle(self, exchange: Exchange) -> None:
        method, path = exchange.command, exchange.path_only
        if self._down.is_set():
            self._state.record_request(method, path, None)
            exchange.drop()
            return
        try:
            status, reply = self._answer(exchange, method, path, exchange.read_body())
        except BadBody as exc:
            status, reply = exc.status, {"detail": exc.detail}
        self._state.record_request(method, path, status)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        exchange.send_json(status, reply, headers)

    def _answer(self, exchange: Exchange, method: str, path: str, body: bytes) -> Reply:
        if path == "/health":
            return _only(method, "GET") or (200, {"status": "healthy", "service": "lab-hive"})
        if path == "/api/bzzz/active-repos":
            return (
                _only(method, "GET")
                or self._refused(exchange)
                or (200, {"repositories": self._state.active_repos()})
            )
        if (match := _PROJECT_PATH.fullmatch(path)) is None:
            return 404, {"detail": "Not Found"}
        project, action = match.groups()
        refused = _only(method, _METHODS[action]) or self._refused(exchange)
        if refused is not None:
            return refused
        if action == "tasks":
            return 200, []  # the real Hive answers [] for a project it cannot read, too
        return self._report(action, project, body)

    def _refused(self, exchange: Exchange) -> Reply | None:
        if self._key is None:
            return None
        scheme, _, given = exchange.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return 401, {"detail": "Not authenticated"}
        if not hmac.compare_digest(given.strip().encode(), self._key.encode()):
            return 401, {"detail": "Invalid API key"}
        return None

    def _report(self, action: str, project: str, body: bytes) -> Reply:
        data = _json_object(body)
        if not _ID.fullmatch(project) or not self._state.known(project_id := int(project)):
            return 404, {"detail": "Project not found"}
        required = _REQUIRED[action]
        if not all(data.get(name) for name in required):
            return 500, {"detail": f"400: {' and '.join(required)} are required"}
        if action == "claim":
            self._state.record_claim(project_id, data)
            claim_id = f"{project_id}-{data['task_number']}-{data['agent_id']}"
            return 200, {"success": True, "claim_id": claim_id}
        self._state.record_status(project_id, data)
        return 200, {"success": True}


def _only(method: str, allowed: str) -> Reply | None:
    return None if method == allowed else (405, {"detail": "Method Not Allowed"})


def _json_object(body: bytes) -> dict[str, object]:
    """The body as a JSON object, or FastAPI's 422 for a `Dict[str, Any]` parameter."""
    try:
        data = json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        raise _invalid("json_invalid", "JSON decode error") from None
    if data is None:
        raise _invalid("missing", "Field required")
    if not isinstance(data, dict):
        raise _invalid("dict_type", "Input should be a valid dictionary")
    return data


def _invalid(kind: str, message: str) -> BadBody:
    """FastAPI's 422 detail: a list of what is wrong with the request, here its body."""
    return BadBody(422, [{"type": kind, "loc": ["body"], "msg": message}])

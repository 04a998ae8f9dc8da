"""The window's web app (Starlette): the dashboard page, its live updates (server-sent
events carrying the page's sections, rendered), the status JSON and `/metrics`.

Handlers run on the node's trio thread (bzzz.window.server), so `status()` reads the
node's state directly. With `token` set, every request must carry it: `?token=` (which
also sets a cookie for the page's own requests) or `Authorization: Bearer`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import trio
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bzzz.audit.store import AuditStore
from bzzz.node.status import NodeStatus
from bzzz.window import views
from bzzz.window.metrics import CONTENT_TYPE, StatusCollector, render
from bzzz.window.timeline import Row, timeline

SECTIONS = ("mesh", "nodes", "tasks", "audit")
TASK_ASK_EVERY = 10  # a task page asks every node why only every 10th update
UPDATE_EVERY = 0.5  # seconds between looks for a change to send
COOKIE = "bzzz_window"


@dataclass(frozen=True)
class Sources:
    """What the window reads besides the status report: every node's reason about a
    task (over the mesh), and the audit logs this node holds (its own, its replicas)."""

    explain: Callable[[str], Awaitable[list[dict[str, Any]]]]
    logs: Callable[[], list[tuple[str, AuditStore]]]


class Window:
    def __init__(
        self,
        status: Callable[[], NodeStatus],
        token: str = "",
        sources: Sources | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.status = status
        self.token = token
        self.sources = sources
        self.registry = registry or CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(status))
        self.templates = Environment(
            loader=PackageLoader("bzzz.window", "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.app = Starlette(
            routes=[
                Route("/", self.page),
                Route("/task", self.task_page),
                Route("/events", self.events),
                Route("/metrics", self.metrics),
                Route("/api/status", self.status_json),
                Mount("/static", StaticFiles(directory=str(files("bzzz.window") / "static"))),
            ],
            middleware=[],
        )
        self.app.add_middleware(_TokenCheck, window=self)

    def allowed(self, request: Request) -> bool:
        if not self.token:
            return True
        given = (
            request.query_params.get("token")
            or request.cookies.get(COOKIE)
            or request.headers.get("authorization", "").removeprefix("Bearer ")
        )
        return hmac.compare_digest(given.encode(), self.token.encode())

    def context(self) -> dict[str, object]:
        report = self.status()
        rows, left_out = views.tasks(report)
        return {
            "report": report,
            "nodes": views.nodes(report),
            "tasks": rows,
            "left_out": left_out,
            "counts": views.counts(report),
        }

    def sections(self) -> dict[str, str]:
        context = self.context()
        return {
            name: self.templates.get_template(f"{name}.html").render(context) for name in SECTIONS
        }

    async def page(self, request: Request) -> Response:
        html = self.templates.get_template("page.html").render(self.context())
        response = HTMLResponse(html)
        if self.token and request.query_params.get("token"):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response

    async def task_context(self, task_id: str, ask: bool = True) -> dict[str, object]:
        report = self.status()
        record = next((t for t in report.tasks if t.task_id == task_id), None)
        rows: list[Row] = []
        reasons: list[dict[str, Any]] = []
        if self.sources is not None:
            rows = await trio.to_thread.run_sync(timeline, self.sources.logs(), task_id)
            reasons = await self.sources.explain(task_id) if ask else []
        return {
            "report": report,
            "task_id": task_id,
            "record": record,
            "rows": rows,
            "reasons": reasons,
        }

    async def task_sections(self, task_id: str, ask: bool) -> dict[str, str]:
        context = await self.task_context(task_id, ask)
        names = ("record", "timeline", "why") if ask else ("record", "timeline")
        return {name: self.templates.get_template(f"{name}.html").render(context) for name in names}

    async def task_page(self, request: Request) -> Response:
        task_id = request.query_params.get("id", "")[:300]
        context = await self.task_context(task_id)
        return HTMLResponse(self.templates.get_template("task.html").render(context))

    async def events(self, request: Request) -> Response:
        task_id = request.query_params.get("task", "")[:300]

        async def stream() -> AsyncIterator[str]:
            sent: dict[str, str] = {}
            ticks = 0
            while True:
                if task_id:
                    sections = await self.task_sections(task_id, ask=ticks % TASK_ASK_EVERY == 0)
                else:
                    sections = self.sections()
                ticks += 1
                changed = {k: v for k, v in sections.items() if sent.get(k) != v}
                if changed:
                    sent.update(changed)
                    yield f"data: {json.dumps(changed)}\n\n"
                await trio.sleep(UPDATE_EVERY)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    async def metrics(self, request: Request) -> Response:
        return Response(render(self.registry), media_type=CONTENT_TYPE)

    async def status_json(self, request: Request) -> Response:
        return JSONResponse(self.status().to_json())


class _TokenCheck:
    """Refuse requests without the window's token (when it has one)."""

    def __init__(self, app: object, window: Window) -> None:
        self.app = app
        self.window = window

    async def __call__(self, scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http" and not self.window.allowed(Request(scope)):
            response = Response("a token is needed: ?token=... or Authorization: Bearer\n", 401)
            await response(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.app(scope, receive, send)  # type: ignore[operator]

"""Serving the window: Hypercorn's trio server inside the node's nursery, so that every
request handler runs on the node's trio thread and reads its state directly (nothing to
lock, nothing copied across threads)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from trio_typing import TaskStatus

from bzzz.config import ConfigError
from bzzz.config.sections_net import DashboardSettings
from bzzz.node.status import NodeStatus
from bzzz.window.app import Sources, Window

log = logging.getLogger(__name__)


async def serve(
    app: Starlette,
    host: str,
    port: int,
    *,
    task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on host:port until cancelled; started with the bound port."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("bzzz.window.http")
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 30.0
    config.include_server_header = False
    async with trio.open_nursery() as nursery:
        server = partial(hypercorn_serve, app, config, mode="asgi")  # type: ignore[arg-type]
        bound: list[str] = await nursery.start(server)
        task_status.started(int(bound[0].rsplit(":", 1)[1]))


async def start_window(
    nursery: trio.Nursery,
    status: Callable[[], NodeStatus],
    settings: DashboardSettings,
    *,
    token: str,
    config_path: Path,
    sources: Sources | None = None,
    registry: CollectorRegistry | None = None,
) -> str:
    """Start the node's window if it has one; its address ("" if none)."""
    if not settings.listen:
        return ""
    host, port = settings.host_port
    window = Window(status, token, sources, registry)
    try:
        bound = await nursery.start(serve, window.app, host, port)
    except OSError as exc:
        raise ConfigError(
            f"dashboard.listen: cannot listen on {host}:{port} ({exc}). Fix: stop what holds"
            f" it or choose another port (in {config_path} or BZZZ_DASHBOARD_LISTEN)."
        ) from None
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}/"
    log.info("dashboard on %s", url)
    return url

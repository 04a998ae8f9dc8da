"""The node's operator's window (bzzz.window), started with what it reads: the status
report, every node's reason about a task, the audit logs this node holds, and the task
timings its claim book feeds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from bzzz.audit.store import AuditStore
from bzzz.window.app import Sources
from bzzz.window.server import start_window

if TYPE_CHECKING:
    from bzzz.node.runtime import Node


async def open_window(node: Node, nursery: trio.Nursery) -> str:
    """Start the node's dashboard if it has one; its address ("" if none)."""
    p = node.parts

    def audit_logs() -> list[tuple[str, AuditStore]]:
        replicas = p.replication.replicas.values()
        return [(node.name, p.audit.store), *((r.node_id, r.store) for r in replicas)]

    return await start_window(
        nursery,
        node.status,
        node.settings.dashboard,
        token=p.window_token.reveal() if p.window_token else "",
        config_path=node.settings.config_path,
        sources=Sources(p.explainer.ask_all, audit_logs),
        registry=p.timings.registry,
    )

"""The dashboard's costs: the server's time to answer the page with 1,000 tasks (and
/metrics), and the live-update delay, from a change in the node's state to the browser's
stream carrying it.

The window runs as in a node (Starlette under Hypercorn's trio server) over a status
report of `--peers` peers and `--tasks` tasks; requests go over loopback with httpx.
The delay: a task's state changes, and the clock runs until the server-sent event that
shows it arrives (the window looks for changes every 0.5 s, so about half of that is
expected, plus rendering).

    .venv/bin/python -m bench.window [--tasks 1000] [--rounds 20] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from functools import partial
from pathlib import Path

import httpx
import trio

from bench.gossip import write_section
from bzzz.node.status import (
    DiscoveryStatus,
    MessageCounts,
    NodeStatus,
    PeerStatus,
    Readiness,
)
from bzzz.tasks.table import TaskRecord
from bzzz.window.app import Window
from bzzz.window.server import serve


def report(peers: int, tasks: int) -> NodeStatus:
    caps = {"cpu": 12.5, "gpu": 0.0, "models": ["qwen2.5-coder:7b"], "status": "idle", "slots": 2}
    return NodeStatus(
        peer_id="12D3KooWBench",
        node_id="node-0",
        addrs=(),
        status="idle",
        uptime_s=100.0,
        capabilities=caps,
        peers=tuple(
            PeerStatus(f"12D3KooWPeer{n}", f"node-{n}", True, "2026-12-06T12:00:00", True, caps)
            for n in range(1, peers + 1)
        ),
        connections=peers,
        mesh={},
        messages=MessageCounts({"capabilities": 1000}, {"capabilities": 100}, {}),
        tasks=tuple(
            TaskRecord(
                task_id=f"lab/app#{n}",
                repo="lab/app",
                issue_url=f"http://forge/lab/app/issues/{n}",
                model="qwen2.5-coder:7b",
                title=f"Task number {n}: make the module do what its docstring says",
                branch_prefix=f"bzzz/task-{n}-",
                announced_by="node-1",
                announced_at="2026-12-06T12:00:00Z",
                seen_at="2026-12-06T12:00:00",
                state="done" if n % 3 else "held",
                holder=f"node-{n % peers + 1}",
                result_url=f"http://forge/lab/app/pull/{n}" if n % 3 else "",
            )
            for n in range(1, tasks + 1)
        ),
        polling={},
        discovery=DiscoveryStatus(peers, peers, 0, None, None, 0),
        readiness=Readiness(True, (), 2, 2),
    )


async def measure(peers: int, tasks: int, rounds: int) -> dict[str, float]:
    state = {"report": report(peers, tasks)}
    window = Window(lambda: state["report"])
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve, window.app, "127.0.0.1", 0))
        base = f"http://127.0.0.1:{port}/"
        async with httpx.AsyncClient(timeout=30) as client:
            pages, metrics = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                page = await client.get(base)
                pages.append(time.perf_counter() - started)
                started = time.perf_counter()
                await client.get(f"{base}metrics")
                metrics.append(time.perf_counter() - started)
            size = len(page.content)
            delays = []
            async with client.stream("GET", f"{base}events") as stream:
                lines = stream.aiter_lines()
                await _next_event(lines)  # the first: everything
                for number in range(rounds):
                    changed = dataclasses.replace(
                        state["report"].tasks[1], state=f"running-{number}"
                    )
                    tasks_now = list(state["report"].tasks)
                    tasks_now[1] = changed
                    state["report"] = dataclasses.replace(state["report"], tasks=tuple(tasks_now))
                    started = time.perf_counter()
                    while f"running-{number}" not in await _next_event(lines):
                        pass
                    delays.append(time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return {
        "page_ms": statistics.median(pages) * 1000,
        "page_p90_ms": sorted(pages)[int(len(pages) * 0.9) - 1] * 1000,
        "metrics_ms": statistics.median(metrics) * 1000,
        "bytes": size,
        "delay_ms": statistics.median(delays) * 1000,
        "delay_max_ms": max(delays) * 1000,
    }


async def _next_event(lines: object) -> str:
    async for line in lines:  # type: ignore[attr-defined]
        if line.startswith("data: "):
            return str(json.loads(line[6:]))
    raise RuntimeError("the stream ended")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    got = trio.run(measure, args.peers, args.tasks, args.rounds)
    section = "\n".join(
        [
            "## Dashboard (`bench/window.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on 2 cores: the window as a node serves it"
            f" (Starlette under Hypercorn's trio server), over a status of {args.peers} peers"
            f" and {args.tasks:,} tasks, asked over loopback; medians of {args.rounds}.",
            "",
            "| what | time | target |",
            "|---|---|---|",
            f"| the page with {args.tasks:,} tasks ({got['bytes'] / 1024:.0f} KiB) |"
            f" {got['page_ms']:.0f} ms (90th percentile {got['page_p90_ms']:.0f} ms) | < 200 ms |",
            f"| /metrics | {got['metrics_ms']:.1f} ms | |",
            f"| live update: a task's change to the event that shows it |"
            f" {got['delay_ms']:.0f} ms (at most {got['delay_max_ms']:.0f} ms) | < 1 s |",
        ]
    )
    print(section)
    write_section(args.out, section + "\n")


if __name__ == "__main__":
    main()

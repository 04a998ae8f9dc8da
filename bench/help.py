"""Help between peers: from a task's worker asking its node for help to a helper holding
the case, at 3, 5 and 10 nodes, in one run.

Real nodes (separate processes) on loopback, every one dialling the asker. The asker's
model server has only `lab`; each of the other nodes has a lab model server whose
`lab-helper` model advises at once, and one consult slot. The asker is asked `--asks`
times in a row through its control socket (the `help` command a worker sends) for
`lab-helper`, so every helper may offer and the best offer is taken. Each ask's times
come from the asker's status: the first offer (from publishing the ask to its first
offer arriving) and accepted (from the ask to the case sent to the helper, less the bid
window, which the asker waits out whatever comes). p50 and p99 over the asks.

    .venv/bin/python -m bench.help [--nodes 3 5 10] [--asks 100] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gossip import percentile, write_section
from bzzz.config import CONTROL_SOCKET
from bzzz.control import request
from bzzz.help.giving import PROMISE
from bzzz.lab.model import LabModelServer, Scripted, Text
from bzzz.lab.processes import NodeProcess, free_port, wait_for

SETTLE = 3.0  # seconds
WARMUPS = 3  # warm-up asks tried before the mesh is given up
CONTEXT = {
    "repo": "lab/hello",
    "number": 3,
    "title": "Say goodbye",
    "body": "Add a farewell function.",
    "steps": [{"command": "python3 hello.py", "exit_code": 1, "output": "ImportError"}],
    "diff": "",
}


@dataclass(frozen=True)
class Ask:
    helped: bool
    asks: int  # times the mesh was asked (more than 1: no offer within a bid window)
    offers: int
    first_offer_ms: float | None
    accepted_ms: float | None
    seconds: float  # the whole control call, declines to the other helpers included


@dataclass(frozen=True)
class Row:
    nodes: int
    asks: list[Ask]
    warmups_failed: int  # warm-up asks that got no help (each followed by PROMISE s)
    seconds: float  # the mesh's whole run: start, warm-up, asks, stop

    def times(self, field: str) -> list[float]:
        values = [getattr(a, field) for a in self.asks]
        return [float(v) for v in values if v is not None]


def node(root: Path, name: str, bootstrap: list[str], ollama_host: str, bid: float) -> NodeProcess:
    process = NodeProcess(root / name, name, free_port())
    process.init(
        bootstrap,
        capabilities={"ollama_host": ollama_host, "check_interval": 1.0, "presence_interval": 1.0},
        help={"bid_window": bid},
        log={"level": "warning"},
    )
    return process


def models_of(process: NodeProcess) -> list[str]:
    report = process.status()
    caps = report.capabilities if report else None
    return list((caps or {}).get("models") or [])


def alive(process: NodeProcess) -> set[str]:
    report = process.status()
    return set() if report is None else {p.node_id for p in report.alive_peers()}


def connections(process: NodeProcess) -> int:
    report = process.status()
    return 0 if report is None else report.connections


def ask(asker: NodeProcess, number: int) -> Ask:
    """One help command through the asker's control socket, and its record in the status."""
    question = f"Why does the import fail? ({number})"
    command = {
        "cmd": "help",
        "task_id": "lab/hello#3",
        "question": question,
        "capability": "lab-helper",
        "context": CONTEXT,
    }
    started = time.perf_counter()
    answer: dict[str, Any] = request(asker.home / CONTROL_SOCKET, command, timeout=120)
    seconds = time.perf_counter() - started
    report = asker.status_json() or {}
    records = [r for r in report["help"]["asked"] if r["question"] == question]
    if not records:
        raise RuntimeError(f"ask {number} is not in the asker's status: {answer}")
    record = records[-1]
    return Ask(
        answer.get("helped") is True,
        int(record["asks"]),
        len(record["offers"]),
        record["first_offer_ms"],
        record["accepted_ms"],
        seconds,
    )


def measure(count: int, asks: int, bid: float, root: Path) -> Row:
    """A mesh of one asker and `count - 1` helpers, asked `asks` times after a warm-up."""
    started = time.perf_counter()
    nodes: list[NodeProcess] = []
    with contextlib.ExitStack() as servers:
        own = servers.enter_context(LabModelServer(models={"lab": Scripted([Text("asker")])}))
        helped = [
            servers.enter_context(LabModelServer(models={"lab-helper": Scripted([Text("advice")])}))
            for _ in range(count - 1)
        ]
        try:
            asker = node(root / str(count), "asker", [], own.url, bid)
            asker.start()
            nodes.append(asker)
            for index, server in enumerate(helped):
                nodes.append(node(root / str(count), f"h{index}", [asker.addr], server.url, bid))
                nodes[-1].start(wait=False)
            for process in nodes:
                process.wait_ready()
            names = {p.name for p in nodes[1:]}
            wait_for(lambda: names <= alive(asker), 120, f"the asker to hear {count - 1} peers")
            for process in nodes:
                wait_for(
                    lambda p=process: bool(models_of(p)),  # type: ignore[misc]
                    60,
                    f"{process.name} to read its models",
                )
            # The helpers find each other through the DHT and dial: until every node holds
            # a connection to every other, that work (and the gossip meshes reshaping)
            # shares the cores with the asks, and offers come late.
            wait_for(
                lambda: all(connections(p) >= count - 1 for p in nodes),
                120,
                "every node to connect to every other",
                interval=0.5,
            )
            time.sleep(SETTLE)  # a few gossip heartbeats: the meshes settle
            print(f"{count} nodes: mesh formed in {time.perf_counter() - started:.0f} s")
            print(mesh_report(nodes), flush=True)
            warmups = 0
            while not (warm := ask(asker, -warmups)).helped:
                warmups += 1
                print(f"warm-up ask {warmups} got no help:\n{mesh_report(nodes)}", flush=True)
                if warmups == WARMUPS:
                    raise RuntimeError(f"{WARMUPS} warm-up asks got no help")
                time.sleep(PROMISE + 1)  # the offers that came late hold the helpers' slots
            print(count, "warm-up", warm, flush=True)
            done = []
            for number in range(1, asks + 1):
                done.append(ask(asker, number))
                print(count, number, done[-1], flush=True)
            print(mesh_report(nodes), flush=True)
            in_window = warm.offers + sum(a.offers for a in done)
            print(f"  offers in the bid window: {in_window} (of those the asker heard)")
        finally:
            for process in nodes:
                process.stop(timeout=20)
    return Row(count, done, warmups, time.perf_counter() - started)


def mesh_report(nodes: list[NodeProcess]) -> str:
    """Per node: its gossip mesh peers on the help topics, help requests heard, offers made."""
    lines = []
    for process in nodes:
        report = process.status_json() or {}
        mesh = report.get("mesh", {})
        heard = report.get("messages", {}).get("received", {})
        lines.append(
            f"  {process.name}: mesh {mesh.get('task_help_request')}"
            f"/{mesh.get('task_help_response')}, connections {report.get('connections')},"
            f" requests heard {heard.get('task_help_request', 0)},"
            f" offers heard {heard.get('task_help_response', 0)},"
            f" offers made {report.get('help', {}).get('offered')}"
        )
    return "\n".join(lines)


def ms(values: list[float], fraction: float) -> str:
    return f"{percentile(values, fraction):.1f} ms" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--asks", type=int, default=100)
    parser.add_argument("--bid-window", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-help-"))
    rows = []
    try:
        for count in args.nodes:
            rows.append(measure(count, args.asks, args.bid_window, root))
            row = rows[-1]
            print(
                f"{count} nodes: {row.seconds:.0f} s; a help command took a median"
                f" {statistics.median(a.seconds for a in row.asks):.2f} s;"
                f" offers per ask {sorted({a.offers for a in row.asks})},"
                f" mesh asked {sorted({a.asks for a in row.asks})} times;"
                f" warm-up asks without help {row.warmups_failed}",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    section = "\n".join(
        [
            "## Help between peers (`bench/help.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on 2 cores. Nodes on loopback, every one"
            " dialling the asker: one asker and N-1 helpers, each helper with a lab model"
            " server whose `lab-helper` model advises at once, and one consult slot. After a"
            f" warm-up ask, the asker's control socket gets {args.asks} `help` commands in a"
            f" row for `lab-helper` (bid window {args.bid_window:g} s), so every helper may"
            " offer and the best offer is taken. From the asker's status, per ask: first"
            " offer, from publishing the ask to its first offer arriving; accepted, from the"
            " ask to the case sent to the chosen helper, less the bid window. All helped:"
            " asks that came back with advice; offers: those that came within the bid window."
            " Measured once every node holds a connection to every other and the gossip"
            f" meshes had {SETTLE:g} s to settle."
            + "".join(
                f" At {r.nodes} nodes {r.warmups_failed} warm-up ask(s) got no offer in time"
                f" (each was followed by a {PROMISE + 1:g} s pause before the next)."
                for r in rows
                if r.warmups_failed
            ),
            "",
            "| nodes | asks | first offer p50 | p99 | accepted (less bid window) p50 | p99"
            " | all helped | offers per ask (median) |",
            "|---|---|---|---|---|---|---|---|",
            *[
                f"| {r.nodes} | {len(r.asks)}"
                f" | {ms(r.times('first_offer_ms'), 0.5)} | {ms(r.times('first_offer_ms'), 0.99)}"
                f" | {ms(r.times('accepted_ms'), 0.5)} | {ms(r.times('accepted_ms'), 0.99)}"
                f" | {sum(a.helped for a in r.asks)}/{len(r.asks)}"
                f" | {statistics.median(a.offers for a in r.asks):g} of {r.nodes - 1} |"
                for r in rows
            ],
        ]
    )
    print(section)
    write_section(args.out, section + "\n")


if __name__ == "__main__":
    main()

"""Gossip benchmark: Bzzz nodes against raw py-libp2p at the same settings, in one run.

For 2, 5 and 10 nodes (separate OS processes on loopback, every node dialling every
earlier one) and each mode it measures: time from start until every node hears every
other, idle CPU and RSS per node, publish-to-delivery latency at 10 msg/s (p50/p99
over all receivers), and the highest rate (of 25..800 msg/s) delivered without loss.
Modes alternate (raw, bzzz, raw, bzzz, ...) and each figure is the median of the
repeats, so both see the same machine. It also times Bzzz's own per-message work
(decoding twice, the sender check, the peer table) in-process.

    .venv/bin/python -m bench.gossip [--nodes 2 5 10] [--repeat 3] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bzzz.home import init_home
from bzzz.lab.processes import free_port
from bzzz.protocol import PresencePing, Topic, decode, encode, utc_now
from bzzz.state import PeerTable

RATES = (25, 50, 100, 200, 400, 800)
LATENCY_RATE = 10
LATENCY_COUNT = 200
IDLE_SECONDS = 30.0
IDLE_AFTER = 30.0  # past the start-up work: joining the DHT, first announcements
SETTLE_SECONDS = 5.0


class BenchNode:
    def __init__(self, mode: str, home: Path, port: int, peers: list[str]) -> None:
        self.home = home
        command = [
            sys.executable,
            "-m",
            "bench.node",
            mode,
            "--home",
            str(home),
            "--port",
            str(port),
        ]
        if peers:
            command += ["--peers", ",".join(peers)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(home / "stderr.log").open("wb"),
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.ready = False

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"bench node exited: {(self.home / 'stderr.log').read_text()[-2000:]}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def quit(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write('{"cmd": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(15)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


@dataclass
class Result:
    mode: str
    nodes: int
    formed_s: float
    idle_cpu_percent: float
    rss_mb: float
    p50_ms: float
    p99_ms: float
    latency_loss: int
    lossless_rate: int


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spawn(mode: str, count: int, root: Path) -> list[BenchNode]:
    ports = [free_port() for _ in range(count)]
    addrs: list[str] = []
    homes = []
    for i, port in enumerate(ports):
        home = root / f"{mode}-{count}-{i}"
        bootstrap = list(addrs) if mode == "bzzz" else []
        peer_id = init_home(
            home,
            f"bench-{i}",
            listen=[f"/ip4/127.0.0.1/tcp/{port}"],
            bootstrap=bootstrap,
            # The spam limit (a policy, 200 msg/s per peer and topic by default) is off in
            # both modes so that the lossless rate measures the transport.
            extra={"network": {"mdns": False}, "gossip": {"max_messages_per_second": 0.0}},
            force=True,
        )
        homes.append((home, port, list(addrs)))
        addrs.append(f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}")
    return [
        BenchNode(mode, home, port, peers if mode == "raw" else []) for home, port, peers in homes
    ]


def wait_formed(nodes: list[BenchNode], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for node in nodes:
        node.read()  # {"ready": ...}
    while time.monotonic() < deadline:
        if all(node.ask({"cmd": "status"})["heard"] >= len(nodes) - 1 for node in nodes):
            return
        time.sleep(0.05)
    raise TimeoutError("the mesh did not form")


def measure_idle(nodes: list[BenchNode]) -> tuple[float, float]:
    processes = [psutil.Process(node.process.pid) for node in nodes]
    before = [sum(p.cpu_times()[:2]) for p in processes]
    time.sleep(IDLE_SECONDS)
    after = [sum(p.cpu_times()[:2]) for p in processes]
    cpu = statistics.median(
        (a - b) / IDLE_SECONDS * 100 for a, b in zip(after, before, strict=True)
    )
    rss = statistics.median(p.memory_info().rss / 2**20 for p in processes)
    return cpu, rss


def burst(nodes: list[BenchNode], run: str, count: int, rate: int) -> tuple[list[float], int]:
    """Node 0 publishes `count` messages at `rate`; returns latencies and messages lost."""
    nodes[0].ask({"cmd": "publish", "run": run, "count": count, "rate": rate})
    receivers = nodes[1:]
    expected = count * len(receivers)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        replies = [node.ask({"cmd": "received", "run": run}) for node in receivers]
        got = sum(reply["count"] for reply in replies)
        if got >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    latencies = [value for reply in replies for value in reply["latencies_ms"]]
    return latencies, expected - got


def bench(mode: str, count: int, root: Path) -> Result:
    started = time.monotonic()
    nodes = spawn(mode, count, root)
    try:
        wait_formed(nodes)
        formed = time.monotonic() - started
        time.sleep(IDLE_AFTER)
        cpu, rss = measure_idle(nodes)
        latencies, lost = burst(nodes, "latency", LATENCY_COUNT, LATENCY_RATE)
        lossless = 0
        for rate in RATES:
            _, lost_here = burst(nodes, f"rate-{rate}", max(100, rate * 2), rate)
            if lost_here:
                break
            lossless = rate
        return Result(
            mode=mode,
            nodes=count,
            formed_s=formed,
            idle_cpu_percent=cpu,
            rss_mb=rss,
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
            latency_loss=lost,
            lossless_rate=lossless,
        )
    finally:
        for node in nodes:
            node.quit()


METHOD = """\
Separate OS processes on loopback, every node dialling every earlier one, GossipSub
settings as Bzzz ships them (v1.1, D=4, heartbeat 1 s) with the spam limit off.
`raw` is py-libp2p with the same host and GossipSub settings and a bare subscription;
`bzzz` is a whole Bzzz node: topic validator, JSON decoding, peer table, liveness,
DHT discovery and the periodic jobs (capabilities, presence pings). Formed: start to
every node hearing every other. Idle: median per node over {idle:.0f} s, starting {after:.0f} s
after the mesh formed. Latency: one publisher at {rate} msg/s, {count} messages, over
all receivers. Lossless rate: the highest of {rates} msg/s with nothing lost."""


def median_result(runs: list[Result]) -> Result:
    def med(field: str) -> Any:
        return statistics.median(getattr(run, field) for run in runs)

    return Result(
        mode=runs[0].mode,
        nodes=runs[0].nodes,
        formed_s=med("formed_s"),
        idle_cpu_percent=med("idle_cpu_percent"),
        rss_mb=med("rss_mb"),
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        latency_loss=max(run.latency_loss for run in runs),
        lossless_rate=min(run.lossless_rate for run in runs),
    )


def per_message_work_us() -> float:
    """Microseconds of Bzzz's own work per received message: decode in the validator,
    the sender check, decode again in the drain, the peer table."""
    message = PresencePing(node_id="bench-1", interval_s=5.0, timestamp=utc_now())
    data = encode(message)
    peers = PeerTable("me", "self", dead_after=15.0, forget_after=600.0)
    count = 20_000
    started = time.perf_counter()
    for i in range(count):
        checked = decode(Topic.PRESENCE_PING, data)
        peers.may_speak_for("peer", checked.sender or "", float(i))
        peers.observe("peer", decode(Topic.PRESENCE_PING, data), float(i))
    return (time.perf_counter() - started) / count * 1e6


def render(results: list[Result], repeat: int, work_us: float) -> str:
    by_key = {(r.mode, r.nodes): r for r in results}
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}, py-libp2p 0.8.1"
    method = METHOD.format(
        idle=IDLE_SECONDS,
        after=IDLE_AFTER,
        rate=LATENCY_RATE,
        count=LATENCY_COUNT,
        rates=", ".join(map(str, RATES)),
    )
    lines = [
        "## Gossip (`bench/gossip.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine}. {method}"
        f" Medians of {repeat} runs per mode.",
        "",
        "| nodes | mode | formed | idle CPU | RSS | p50 | p99 | lost at 10/s | lossless |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        top = "≥ " if r.lossless_rate == RATES[-1] else ""
        lines.append(
            f"| {r.nodes} | {r.mode} | {r.formed_s:.1f} s | {r.idle_cpu_percent:.2f} %"
            f" | {r.rss_mb:.0f} MB | {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.latency_loss}"
            f" | {top}{r.lossless_rate} msg/s |"
        )
    lines += ["", "Bzzz against raw py-libp2p in the same run (p50 latency):", ""]
    for count in sorted({r.nodes for r in results}):
        raw, full = by_key.get(("raw", count)), by_key.get(("bzzz", count))
        if raw and full:
            ratio = full.p50_ms / raw.p50_ms
            lines.append(f"- {count} nodes: {full.p50_ms:.1f} / {raw.p50_ms:.1f} ms = {ratio:.2f}x")
    lines += [
        "",
        f"Bzzz's own work per received message, timed in-process: {work_us:.0f} µs"
        " (decoding in the validator and again in the drain, the sender check, the peer table).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md, keeping the others."""
    title = section.splitlines()[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    parts = text.split("\n## ")
    kept = [parts[0].rstrip("\n")] + [
        "## " + p.rstrip("\n") for p in parts[1:] if not ("## " + p).startswith(title)
    ]
    path.write_text("\n\n".join([*kept, section.rstrip("\n")]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-"))
    results = []
    try:
        for count in args.nodes:
            runs: dict[str, list[Result]] = {"raw": [], "bzzz": []}
            for _ in range(args.repeat):
                for mode in ("raw", "bzzz"):
                    result = bench(mode, count, root)
                    print(result, flush=True)
                    runs[mode].append(result)
            results += [median_result(runs["raw"]), median_result(runs["bzzz"])]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    section = render(results, args.repeat, per_message_work_us())
    print(section)
    write_section(args.out, section)


if __name__ == "__main__":
    main()

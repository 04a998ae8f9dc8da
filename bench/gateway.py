"""The model gateway's cost: time to first byte and streamed chunks per second, through a
node's gateway (the model on this machine, and on a peer) against calling the model
server directly, in one run.

Two real nodes (separate processes) on loopback; `server` has the lab model server's
`fast` model (a `Paced` model: a chunk every `--interval` seconds, `--tokens` of them);
`caller` has none. Each round streams /api/generate `--rounds` times at 1 and 8
concurrent streams, three ways: straight to the model server, through `server`'s gateway
(the model is local), and through `caller`'s gateway (the model is a peer's, over a
libp2p stream). Medians.

    .venv/bin/python -m bench.gateway [--rounds 20] [--tokens 200] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.gossip import write_section
from bzzz.lab.model import LabModelServer
from bzzz.lab.model.paced import Paced
from bzzz.lab.processes import NodeProcess, free_port, wait_for


@dataclass(frozen=True)
class Stream:
    first_byte_ms: float
    chunks_per_s: float


_clients = threading.local()


def client() -> httpx.Client:
    """This thread's client: one kept-alive connection per server, as ollama's client keeps
    (a new httpx client per call would add its own ~20 ms of set-up to every first byte)."""
    if not hasattr(_clients, "client"):
        _clients.client = httpx.Client(timeout=60)
    made: httpx.Client = _clients.client
    return made


def stream(url: str, tokens: int) -> Stream:
    body = json.dumps({"model": "fast", "prompt": "go"})
    started = time.perf_counter()
    first = 0.0
    chunks = 0
    with client().stream("POST", f"{url}/api/generate", content=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line:
                continue
            if not chunks:
                first = time.perf_counter()
            chunks += 1
    ended = time.perf_counter()
    if chunks < tokens:
        raise RuntimeError(f"{url}: {chunks} chunks of {tokens}")
    return Stream((first - started) * 1000, (chunks - 1) / (ended - first))


def measure(url: str, tokens: int, rounds: int, concurrent: int) -> tuple[float, float]:
    """Median time to first byte (ms) and median chunks per second of one stream."""
    results: list[Stream] = []
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(rounds):
            results += list(pool.map(lambda _: stream(url, tokens), range(concurrent)))
    return (
        statistics.median(r.first_byte_ms for r in results),
        statistics.median(r.chunks_per_s for r in results),
    )


def node(root: Path, name: str, bootstrap: list[str], ollama_host: str) -> NodeProcess:
    process = NodeProcess(root / name, name, free_port())
    process.init(
        bootstrap,
        capabilities={"ollama_host": ollama_host, "check_interval": 1.0, "presence_interval": 1.0},
        gateway={"mesh_slots": 16},
        log={"level": "warning"},
    )
    return process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.001)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-gateway-"))
    model = Paced(tokens=args.tokens, interval=args.interval)
    nodes: list[NodeProcess] = []
    rows = []
    with LabModelServer(models={"fast": model}) as lab:
        try:
            server = node(root, "server", [], lab.url)
            server.start()
            nodes.append(server)
            caller = node(root, "caller", [server.addr], "http://127.0.0.1:9")  # no models
            caller.start()
            nodes.append(caller)

            def reaches() -> bool:
                try:
                    tags = httpx.get(f"{caller.gateway_url}/api/tags", timeout=5).json()
                except httpx.HTTPError:
                    return False
                return any(m["name"] == "fast:latest" for m in tags["models"])

            wait_for(reaches, 30, "the caller's gateway to see the model")
            ways = {
                "model server, directly": lab.url,
                "gateway, model on this machine": server.gateway_url,
                "gateway, model on a peer": caller.gateway_url,
            }
            for concurrent in (1, 8):
                for url in ways.values():  # a warm-up stream each
                    stream(url, args.tokens)
                direct = measure(lab.url, args.tokens, args.rounds, concurrent)
                for way, url in ways.items():
                    ttfb, rate = (
                        direct
                        if url == lab.url
                        else measure(url, args.tokens, args.rounds, concurrent)
                    )
                    rows.append((concurrent, way, ttfb, ttfb - direct[0], rate, rate / direct[1]))
                    print(rows[-1], flush=True)
        finally:
            for process in nodes:
                process.stop(timeout=20)
            shutil.rmtree(root, ignore_errors=True)
    section = "\n".join(
        [
            "## Model gateway (`bench/gateway.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on 2 cores. Two nodes on loopback; the lab"
            f" model server streams {args.tokens} chunks, one every {args.interval * 1000:g} ms"
            f" (`Paced`); /api/generate streamed {args.rounds} times per row, medians of the"
            " streams. Each client thread keeps its connection alive, as ollama's client"
            " does. Time to first byte from sending the request; chunks per second after"
            " the first. Every way in one run.",
            "",
            "| streams at once | way | first byte | added | chunks/s | of direct |",
            "|---|---|---|---|---|---|",
            *[
                f"| {c} | {way} | {ttfb:.1f} ms | {added:+.1f} ms | {rate:.0f} | {ratio:.2f}x |"
                for c, way, ttfb, added, rate, ratio in rows
            ],
        ]
    )
    print(section)
    write_section(args.out, section + "\n")


if __name__ == "__main__":
    main()

"""Task-table sync: what it costs a node to catch up on 1,000 tasks a peer knows, and to
find out that nothing changed.

Two real nodes (separate processes) on loopback. `known` starts with a table of
`--tasks` open tasks (its tasks.json, as a node that ran for a while has); `joiner`
starts empty and bootstraps to it: on connecting it asks for `known`'s table and learns
every task. Both sync every `--interval` seconds afterwards, and since the tables then
agree, each round is one small exchange of digests. Neither node has workers, so nothing
is claimed and the forge is not read. Bytes are those of the reply (the request is a
digest); times are the round's, from opening the stream to the tasks being in the
joiner's table, medians over the rounds.

    .venv/bin/python -m bench.sync [--tasks 1000] [--rounds 10] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.gossip import write_section
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, free_port, wait_for
from bzzz.node.status import SyncStatus
from bzzz.tasks.table import TaskRecord, TaskTable, save

REPO = "lab/app"


WORDS = [
    "add",
    "fix",
    "test",
    "parser",
    "render",
    "config",
    "cache",
    "retry",
    "timeout",
    "unit",
    "docs",
    "readme",
    "module",
    "handler",
    "error",
    "message",
    "logging",
    "client",
    "server",
    "queue",
    "worker",
    "branch",
    "review",
    "typo",
    "lint",
    "format",
    "refactor",
    "remove",
    "deprecated",
    "option",
    "flag",
    "default",
    "path",
    "encoding",
    "unicode",
    "locale",
]


def title(number: int) -> str:
    """Issue titles as varied as people's (synthetic text compresses too well)."""
    words = random.Random(number).choices(WORDS, k=random.Random(-number).randint(4, 12))
    return f"{' '.join(words).capitalize()} (#{number})"


def table(count: int) -> TaskTable:
    records = {
        f"{REPO}#{n}": TaskRecord(
            task_id=f"{REPO}#{n}",
            repo=REPO,
            issue_url=f"http://forge/{REPO}/issues/{n}",
            model="ollama",
            title=title(n),
            branch_prefix=f"bzzz/task-{n}-",
            announced_by="known",
            announced_at="2026-12-06T12:00:00Z",
            seen_at="2026-12-06T12:00:00.000+00:00",
        )
        for n in range(1, count + 1)
    }
    return TaskTable(records, history=count)


def node(
    root: Path, name: str, forge: LocalForge, bootstrap: list[str], interval: float
) -> NodeProcess:
    process = NodeProcess(root / name, name, free_port(), env={"BZZZ_FORGE_TOKEN": "tok-x"})
    process.init(
        bootstrap,
        forge={"api_url": forge.api_url},
        tasks={"repositories": [REPO], "poll_interval": 3600.0, "sync_interval": interval},
        capabilities={"presence_interval": 1.0, "peer_timeout": 5.0},
        log={"level": "warning"},
    )
    return process


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10, help="unchanged rounds to time")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-sync-"))
    forge = LocalForge(root / "forge").start()
    nodes: list[NodeProcess] = []
    try:
        known = node(root, "known", forge, [], args.interval)
        save(table(args.tasks).to_json(), known.home / "tasks.json")
        known.start()
        nodes.append(known)
        joiner = node(root, "joiner", forge, [known.addr], args.interval)
        started = time.monotonic()
        joiner.start()
        nodes.append(joiner)

        def entry() -> SyncStatus:
            report = joiner.status()
            found = report.sync.get(known.peer_id) if report else None
            return found or SyncStatus("", 0, 0, 0, 0, 0)

        def tasks_known() -> int:
            report = joiner.status()
            return len(report.tasks) if report else 0

        wait_for(lambda: tasks_known() >= args.tasks, 60, "the joiner to catch up")
        caught_up = time.monotonic() - started
        full_bytes, full_ms = entry().bytes_in, entry().last_ms
        times, sizes = [], []
        for _ in range(args.rounds):
            before = entry()
            wait_for(lambda b=before: entry().rounds > b.rounds, args.interval * 5 + 10, "a round")
            after = entry()
            times.append(after.last_ms)
            sizes.append((after.bytes_in - before.bytes_in) / (after.rounds - before.rounds))
    finally:
        for process in nodes:
            process.stop(timeout=20)
        forge.stop()
        shutil.rmtree(root, ignore_errors=True)
    section = "\n".join(
        [
            "## Task-table sync (`bench/sync.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on 2 cores. Two nodes on loopback; one knows"
            f" {args.tasks} open tasks, the other joins with none and learns them from the"
            " first's table on connecting; afterwards the tables agree and each periodic"
            " round is an exchange of digests. Reply bytes (zlib-compressed JSON) and the"
            " round's time from opening the stream to the tasks being in the joiner's table.",
            "",
            "| sync | reply bytes | round |",
            "|---|---|---|",
            f"| catch-up on {args.tasks} tasks | {full_bytes:,} | {full_ms:.0f} ms |",
            f"| unchanged table (median of {len(times)}) | {statistics.median(sizes):.0f}"
            f" | {statistics.median(times):.1f} ms |",
            "",
            f"From the joiner's start to its table holding all {args.tasks} tasks:"
            f" {caught_up:.1f} s (process start, mesh join and the sync).",
        ]
    )
    print(section)
    write_section(args.out, section + "\n")


if __name__ == "__main__":
    main()

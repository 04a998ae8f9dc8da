"""Claims benchmark: a task announced until one peer's claim is confirmed by the forge.

For 3, 5 and 10 real Bzzz nodes (separate processes) against the local forge over HTTP,
it opens labelled issues at random moments during a window and reads the nodes' logs:
from the poller's "announcing task" to the winner's "claimed" (its claim comment is the
earliest live one on the forge), p50 and p99. It also counts the claim comments per
task (more than one means peers raced and the losers withdrew) and the forge requests
the claims cost per task.

    .venv/bin/python -m bench.claims [--nodes 3 5 10] [--window 60] [--issues 20]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import github

from bench.gossip import percentile, write_section
from bzzz.claims import ledger
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, free_port, wait_for

REPO = "lab/app"
LABEL = "bzzz-task"
CLAIMS = {"lease": 120.0, "gossip_renew": 5.0, "rank_delay": 2.0, "margin": 30.0}


@dataclass
class Result:
    nodes: int
    tasks: int
    p50_s: float
    p99_s: float
    comments_per_task: float
    requests_per_task: float


def world(accounts: list[str]) -> dict[str, Any]:
    return {
        "users": [{"login": login} for login in ["lab", *accounts]],
        "repos": [
            {
                "owner": "lab",
                "name": "app",
                "labels": [LABEL],
                "collaborators": accounts,
                "issues": [],
            }
        ],
    }


def log_times(node: NodeProcess, kind: str) -> dict[str, float]:
    """Task id -> epoch time of the node's first log line saying it announced
    (`kind` "announced") or claimed ("claimed") the task."""
    found: dict[str, float] = {}
    for line in (node.home / "logs" / "node.log").read_text().splitlines():
        entry = json.loads(line)
        message = str(entry.get("message", ""))
        if kind == "announced" and message.startswith("announcing task "):
            task = message.split()[2]
        elif kind == "claimed" and ": claimed (comment" in message:
            task = message.split(": claimed", 1)[0]
        else:
            continue
        found.setdefault(task, datetime.fromisoformat(entry["time"]).timestamp())
    return found


def bench(count: int, root: Path, window: float, issues: int) -> Result:
    forge = LocalForge(root / "forge").start()
    tool_dir = root / "bin"
    tool_dir.mkdir()
    (tool_dir / "ollama").write_text("#!/bin/sh\nexit 0\n")
    (tool_dir / "ollama").chmod(0o755)
    nodes: list[NodeProcess] = []
    try:
        names = [f"node-{i}" for i in range(count)]
        tokens = {u["login"]: u["token"] for u in forge.seed(world(names))["users"]}
        path = f"{tool_dir}:/usr/local/bin:/usr/bin:/bin"
        for name in names:
            node = NodeProcess(
                root / name,
                name,
                free_port(),
                env={"BZZZ_FORGE_TOKEN": tokens[name], "PATH": path},
            )
            node.init(
                bootstrap=[nodes[0].addr] if nodes else [],
                forge={"api_url": forge.api_url, "seconds_between_writes": 0.0},
                tasks={"repositories": [REPO], "poll_interval": 1.0},
                claims=CLAIMS,
                workers={"threads": issues},  # slots enough: the queue is not drained here
            )
            nodes.append(node)
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()
        wait_for(
            lambda: all(len(getattr(n.status(), "peers", ())) >= count - 1 for n in nodes),
            60,
            "the mesh",
        )
        time.sleep(5)  # let pollers settle and capabilities spread: not synchronisation
        gh = github.Github(
            base_url=forge.api_url, auth=github.Auth.Token(tokens["lab"]), retry=None
        )
        repo = gh.get_repo(REPO)
        rng = random.Random(count)
        moments = sorted(rng.uniform(0, window) for _ in range(issues))
        mark = forge.requests()[-1].seq
        started = time.monotonic()
        numbers = []
        for moment in moments:
            time.sleep(max(0.0, started + moment - time.monotonic()))
            numbers.append(repo.create_issue(title=f"task at {moment:.1f}", labels=[LABEL]).number)
        tasks = {f"{REPO}#{n}" for n in numbers}

        def claimed() -> dict[str, float]:
            times: dict[str, float] = {}
            for node in nodes:
                for task, at in log_times(node, "claimed").items():
                    times[task] = min(at, times.get(task, at))
            return times

        wait_for(lambda: tasks <= set(claimed()), 120, "every task to be claimed")
        announced: dict[str, float] = {}
        for node in nodes:
            announced.update(log_times(node, "announced"))
        confirmed = claimed()
        latencies = [confirmed[t] - announced[t] for t in tasks]
        reader = GitHubForge(forge.api_url, Token(tokens["lab"]), seconds_between_writes=0)
        comments = [
            len(ledger.claims(reader.get_comments(REPO, n), {"COLLABORATOR"}, ())) for n in numbers
        ]
        claim_requests = [
            r for r in forge.requests(mark) if r.user in names and "/issues/" in r.path
        ]
    finally:
        for node in nodes:
            node.stop()
        forge.stop()
    return Result(
        count,
        len(tasks),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        sum(comments) / len(comments),
        len(claim_requests) / len(tasks),
    )


METHOD = """\
Bzzz nodes as separate processes against the local forge over HTTP on loopback; {issues}
labelled issues opened at random moments in a {window:.0f} s window, polled every 1 s.
Latency: the poller announces the task on task_broadcast until the winner's claim is
confirmed (its comment is the earliest live claim when it reads the comments back).
`claim comments/task`: 1.00 means no peer raced the winner. `requests/task`: forge
requests by the nodes on the task's issue (claim, read-back, issue re-read,
renewals) within the run, not counting polls."""


def render(results: list[Result], window: float, issues: int) -> str:
    lines = [
        "## Claims (`bench/claims.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}. {METHOD.format(issues=issues, window=window)}",
        "",
        "| nodes | tasks | p50 announce→claimed | p99 | claim comments/task | requests/task |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.nodes} | {r.tasks} | {r.p50_s * 1000:.0f} ms | {r.p99_s * 1000:.0f} ms"
            f" | {r.comments_per_task:.2f} | {r.requests_per_task:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--issues", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    results = []
    for count in args.nodes:
        root = Path(tempfile.mkdtemp(prefix="bzzz-claims-bench-"))
        try:
            result = bench(count, root, args.window, args.issues)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(result, flush=True)
        results.append(result)
    section = render(results, args.window, args.issues)
    print(section)
    write_section(args.out, section)


if __name__ == "__main__":
    main()

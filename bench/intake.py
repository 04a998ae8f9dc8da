"""Intake benchmark: issue opened to task known by every node, and forge API cost.

For 1, 3 and 5 nodes it runs, against the local forge over HTTP:
- `bzzz`: real Bzzz nodes (separate processes): one poller per repository,
  conditional polls, the task announced on task_broadcast;
- `naive`: the original Go Bzzz's way: every node lists every repository's issues
  unconditionally at the same interval (threads with PyGithub, one token each).

It opens issues at random moments during a measuring window and reports the time
from opening an issue until every node knows it (p50/p99), and per repository and
hour: API requests, the share answered 304, and the quota spent.

    .venv/bin/python -m bench.intake [--nodes 1 3 5] [--interval 5] [--window 60]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import github

from bench.gossip import percentile, write_section
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, free_port, wait_for

REPOS = ("lab/alpha", "lab/beta")
LABEL = "bzzz-task"


@dataclass
class Result:
    mode: str
    nodes: int
    p50_s: float
    p99_s: float
    requests_per_hour: float  # per repository
    not_modified_share: float
    quota_per_hour: float  # per repository


def world(accounts: list[str]) -> dict[str, Any]:
    return {
        "users": [{"login": login} for login in ["lab", *accounts]],
        "repos": [
            {
                "owner": "lab",
                "name": repo.split("/")[1],
                "labels": [LABEL],
                "issues": [{"title": "already there", "labels": [LABEL]}],
            }
            for repo in REPOS
        ],
    }


class IssueOpener:
    """Opens labelled issues at random moments; remembers when each was opened."""

    def __init__(self, forge: LocalForge, token: str, seed: int) -> None:
        self._gh = github.Github(
            base_url=forge.api_url,
            auth=github.Auth.Token(token),
            seconds_between_writes=0,
            retry=None,
        )
        self._random = random.Random(seed)
        self.opened: dict[str, float] = {}  # task id -> epoch seconds

    def run(self, window: float, count: int) -> None:
        moments = sorted(self._random.uniform(0, window * 0.8) for _ in range(count))
        started = time.monotonic()
        for moment in moments:
            time.sleep(max(0.0, started + moment - time.monotonic()))
            repo = self._random.choice(REPOS)
            opened = time.time()
            issue = self._gh.get_repo(repo).create_issue(
                title=f"opened at {opened:.3f}", labels=[LABEL]
            )
            self.opened[f"{repo}#{issue.number}"] = opened


def api_cost(forge: LocalForge, since_seq: int, since: float) -> tuple[float, float, float]:
    """Issue listings since `since_seq` (made at `since`, epoch): per repository and hour."""
    paths = {f"/api/v3/repos/{repo}/issues" for repo in REPOS}
    polls = [r for r in forge.requests(since_seq) if r.path in paths and r.method == "GET"]
    per_hour = 3600 / (time.time() - since) / len(REPOS)
    not_modified = sum(r.status == 304 for r in polls) / max(1, len(polls))
    return len(polls) * per_hour, not_modified, sum(r.counted for r in polls) * per_hour


def bench_bzzz(count: int, root: Path, interval: float, window: float, issues: int) -> Result:
    forge = LocalForge(root / "forge").start()
    nodes: list[NodeProcess] = []
    try:
        names = [f"node-{i}" for i in range(count)]
        tokens = {u["login"]: u["token"] for u in forge.seed(world(names))["users"]}
        previous: list[str] = []
        for name in names:
            node = NodeProcess(
                root / name, name, free_port(), env={"BZZZ_FORGE_TOKEN": tokens[name]}
            )
            node.init(
                bootstrap=previous[-1:],
                forge={"api_url": forge.api_url, "seconds_between_writes": 0.0},
                tasks={"repositories": list(REPOS), "poll_interval": interval},
            )
            previous.append(node.addr)
            nodes.append(node)
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()
        wait_for(lambda: all(len(known(n)) >= len(REPOS) for n in nodes), 120, "the first tasks")
        opener = IssueOpener(forge, tokens["lab"], seed=count)
        mark, since = forge.requests()[-1].seq, time.time()
        opener.run(window, issues)
        wait_for(
            lambda: all(set(opener.opened) <= set(known(n)) for n in nodes), 60, "the new tasks"
        )
        latencies = [
            max(known(n)[task] for n in nodes) - opened for task, opened in opener.opened.items()
        ]
        time.sleep(max(0.0, since + window - time.time()))  # measure the whole window
        requests, not_modified, quota = api_cost(forge, mark, since)
    finally:
        for node in nodes:
            node.stop()
        forge.stop()
    return Result(
        "bzzz",
        count,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        requests,
        not_modified,
        quota,
    )


def known(node: NodeProcess) -> dict[str, float]:
    """Task id -> when this node learnt of it (epoch seconds)."""
    report = node.status()
    tasks = report.tasks if report else ()
    return {t.task_id: datetime.fromisoformat(t.seen_at).timestamp() for t in tasks}


def bench_naive(count: int, root: Path, interval: float, window: float, issues: int) -> Result:
    forge = LocalForge(root / "forge-naive").start()
    stop = threading.Event()
    seen: list[dict[str, float]] = [{} for _ in range(count)]
    try:
        names = [f"node-{i}" for i in range(count)]
        tokens = {u["login"]: u["token"] for u in forge.seed(world(names))["users"]}

        def poll(index: int) -> None:
            gh = github.Github(
                base_url=forge.api_url,
                auth=github.Auth.Token(tokens[names[index]]),
                seconds_between_requests=0,
                retry=None,
            )
            repos = [gh.get_repo(repo) for repo in REPOS]
            next_poll = time.monotonic() + random.Random(index).uniform(0, interval)  # own phase
            while not stop.wait(max(0.0, next_poll - time.monotonic())):
                next_poll += interval
                for repo in repos:
                    for issue in repo.get_issues(state="open", labels=[LABEL]):
                        seen[index].setdefault(f"{repo.full_name}#{issue.number}", time.time())

        threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(count)]
        for thread in threads:
            thread.start()
        wait_for(lambda: all(len(s) >= len(REPOS) for s in seen), 60, "the first issues")
        opener = IssueOpener(forge, tokens["lab"], seed=count)
        mark, since = forge.requests()[-1].seq, time.time()
        opener.run(window, issues)
        wait_for(lambda: all(set(opener.opened) <= set(s) for s in seen), 60, "the new issues")
        latencies = [max(s[task] for s in seen) - opened for task, opened in opener.opened.items()]
        time.sleep(max(0.0, since + window - time.time()))  # measure the whole window
        requests, not_modified, quota = api_cost(forge, mark, since)
    finally:
        stop.set()
        forge.stop()
    return Result(
        "naive",
        count,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        requests,
        not_modified,
        quota,
    )


METHOD = """\
Local forge over HTTP on loopback, {repos} repositories, one labelled issue opened at a
random moment every ~{every:.0f} s during a {window:.0f} s window ({issues} issues per run),
poll interval {interval:.0f} s for both modes. `bzzz`: Bzzz nodes as separate processes
(one poller per repository, conditional requests, task_broadcast to the others);
`naive`: every node lists every repository unconditionally (the original Go Bzzz).
Latency: issue opened until every node knows the task. API cost per repository and
hour, at this interval (it scales with 1/interval)."""


def render(results: list[Result], interval: float, window: float, issues: int) -> str:
    method = METHOD.format(
        repos=len(REPOS),
        every=window * 0.8 / issues,
        window=window,
        issues=issues,
        interval=interval,
    )
    lines = [
        "## Intake (`bench/intake.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}. {method}",
        "",
        "| nodes | mode | p50 to all | p99 to all | requests/h/repo | 304 share | quota/h/repo |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.nodes} | {r.mode} | {r.p50_s:.2f} s | {r.p99_s:.2f} s"
            f" | {r.requests_per_hour:.0f} | {r.not_modified_share:.0%} | {r.quota_per_hour:.0f} |"
        )
    bzzz = [r.requests_per_hour for r in results if r.mode == "bzzz"]
    if bzzz:
        spread = (max(bzzz) - min(bzzz)) / statistics.mean(bzzz)
        lines += [
            "",
            f"Bzzz's requests per repository and hour vary by {spread:.0%} from 1 to 5 nodes.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=90.0)
    parser.add_argument("--issues", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    results = []
    for count in args.nodes:
        for mode in ("bzzz", "naive"):
            root = Path(tempfile.mkdtemp(prefix="bzzz-intake-"))
            try:
                run = bench_bzzz if mode == "bzzz" else bench_naive
                result = run(count, root, args.interval, args.window, args.issues)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            print(result, flush=True)
            results.append(result)
    section = render(results, args.interval, args.window, args.issues)
    print(section)
    write_section(args.out, section)


if __name__ == "__main__":
    main()

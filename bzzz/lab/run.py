"""`bzzz lab run`: N nodes as separate processes on loopback, from issues to pull requests.

Each node gets a home under the lab root, listens on a free loopback port and
bootstraps to every node before it, so that the mesh is whole from the start (with a
chain, the DHT could take a whole run to connect the first node to the model host,
which then never served it). mDNS is off: on loopback it would advertise on the
machine's real network.
A local forge, seeded with a sample repository, gives each node an account and
the nodes their tasks; the lab model server (ollama's API, answering from the sample
repository's playbook) is their model, unless the lab is given a real one: a GGUF model
the lab model server runs through llama.cpp (`--gguf`), or a real ollama server
(`--ollama-host`). With the scripted model and two nodes or more, the last node is the
lab's model host: it alone has LENT_MODEL, which issue 3 asks for, and takes no tasks,
so another node runs that task with the host's model, through its model gateway. Each
node has a `bzzz worker` pool that runs its claimed tasks in a
sandbox and opens pull requests. The nodes and pools are the
process handles of `bzzz.lab.processes`, which the tests use too.

Stopping: Ctrl-C, SIGTERM and SIGHUP alike stop every node, pool and server within
STOP_TIMEOUT and remove the temporary homes (unless `--keep`). Killed outright, the lab
cannot: its nodes and pools get SIGTERM from the kernel (the parent-death signal,
bzzz/lifeline.py) and its guard (bzzz/lab/guard.py), which sees the lab's end, kills what
is left of them and removes the homes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bzzz import lifeline
from bzzz.agents import SETUP_PATH, locate
from bzzz.forge.api import ForgeError
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.guard import Guard
from bzzz.lab.hive import LabHive
from bzzz.lab.model import (
    LAB_MODEL,
    LabModelServer,
    default_models,
    gguf_models,
    sample_playbook,
)
from bzzz.lab.n8n import LabWebhook
from bzzz.lab.processes import NodeProcess, WorkerPool, free_port
from bzzz.lab.progress import Progress, say
from bzzz.lab.sample import (
    AGENT_ISSUE,
    EXPECTED_TASKS,
    LENT_MODEL,
    SAMPLE_NAME,
    SAMPLE_OWNER,
    SAMPLE_REPO,
    sample_world,
)
from bzzz.lab.stopping import Stopping, stop_signals
from bzzz.node.status import NodeStatus

STOP_TIMEOUT = 20.0  # seconds the nodes and pools get to stop before they are killed
LAB_MODEL_TIMEOUT = 30.0  # the scripted model answers at once; a real one gets agent's default
LAB_AGENT = "claude"  # the agent CLI of the sample's AGENT_ISSUE


class Lab:
    """N nodes with their workers, a local forge seeded with a sample repository whose
    issues they take, and the lab model server they ask."""

    def __init__(
        self,
        root: Path,
        count: int,
        poll_interval: float = 5.0,
        guard: Guard | None = None,
        *,
        model: str | None = None,
        ollama_host: str | None = None,
        gguf: str | None = None,
    ) -> None:
        """`guard`: told of every process group the lab starts. `model`: the model the
        nodes ask; `ollama_host`: a real ollama server, instead of the lab model server;
        `gguf`: a GGUF model the lab model server runs too (see `find_gguf`)."""
        self.root = root
        self.guard = guard
        self.poll_interval = poll_interval
        self.nodes = [
            NodeProcess(root / f"node-{i}", f"lab-node-{i}", free_port())
            for i in range(1, count + 1)
        ]
        self.workers = [WorkerPool(node) for node in self.nodes]
        self.forge = LocalForge(root / "forge")
        self.model: LabModelServer | None = None
        self.ollama_host = ollama_host
        self.model_name = model if model is not None else (LAB_MODEL if not ollama_host else "")
        if ollama_host is None:
            models = default_models()
            if gguf is not None:
                served = gguf_models([gguf])  # loads it through llama.cpp
                models |= served
                self.model_name = model or next(iter(served))
            self.model = LabModelServer(models=models)
        # The model host's own server: the one place LENT_MODEL is.
        self.lender: LabModelServer | None = None
        if count >= 2 and self.model_name == LAB_MODEL and self.model is not None:
            self.lender = LabModelServer(models={LENT_MODEL: sample_playbook()})
        self.owner_token = ""
        # Hive lists the sample repository (the nodes' only source of repositories) and
        # hears claims and status; n8n's webhook hears escalations.
        self.hive = LabHive()
        self.webhook = LabWebhook()
        # The agent CLI that solves the sample's AGENT_ISSUE, where scripts/setup installed it
        # (and the model is the lab's scripted one, which plays to it).
        found = locate(LAB_AGENT, SETUP_PATH) if self.model_name in (LAB_MODEL, "") else None
        self.agent = LAB_AGENT if found and self.model is not None else None

    @property
    def model_host(self) -> NodeProcess | None:
        """The node that lends LENT_MODEL to the others and takes no tasks itself."""
        return self.nodes[-1] if self.lender is not None else None

    @property
    def model_url(self) -> str:
        """The ollama API the nodes ask."""
        return self.ollama_host or (self.model.url if self.model is not None else "")

    def _agent(self) -> dict[str, object]:
        if self.model_name == LAB_MODEL and self.model is not None:
            return {"model": LAB_MODEL, "model_timeout": LAB_MODEL_TIMEOUT}
        return {"model": self.model_name}  # and a real model's timeout (agent.model_timeout)

    def init(self) -> None:
        """Seed the forge (one account per node) and write every node's home."""
        task_model = LENT_MODEL if self.lender is not None else "ollama"
        accounts = [node.name for node in self.nodes]
        made = self.forge.seed(sample_world(accounts, task_model, self.agent))
        tokens = {user["login"]: user["token"] for user in made["users"]}
        self.owner_token = tokens[SAMPLE_OWNER]  # for benchmarks that open issues
        self.forge.start()
        for server in (self.model, self.lender):
            if server is not None:
                server.start()
        self.hive.start()
        self.hive.add_repo(SAMPLE_OWNER, SAMPLE_NAME)
        self.webhook.start()
        previous: list[str] = []
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            token_file = node.home / "forge.token"
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(tokens[node.name])
            node.init(
                bootstrap=list(previous),  # every earlier node: a mesh from the start
                forge={
                    "api_url": self.forge.api_url,
                    "token_file": "forge.token",
                    "seconds_between_writes": 0.0,
                },
                tasks={"repositories": [], "poll_interval": self.poll_interval},
                hive={"url": self.hive.url, "refresh": 30.0},  # lists the sample repository
                escalation={"webhook_url": self.webhook.hook_url()},
                **self._role(node),
                agent=self._agent(),
                antennae={"review": "always", "window": 15.0},  # peers review each plan
                audit={"announce_every": 5.0},  # replicas follow quickly
                git={"author_name": node.name, "author_email": f"{node.name}@lab.bzzz.invalid"},
            )
            previous.append(node.addr)

    def _role(self, node: NodeProcess) -> dict[str, dict[str, object]]:
        """Its model server, and whether it takes tasks (the model host does not)."""
        if node is self.model_host and self.lender is not None:
            return {
                "capabilities": {"ollama_host": self.lender.url},
                "workers": {"executor": "workers.executors:decline"},
            }
        return {
            "capabilities": {"ollama_host": self.model_url, "agent_path": list(SETUP_PATH)},
            "workers": {"executor": "workers.agent:run", "heartbeat": 5.0},
        }

    def start(self) -> None:
        for node in self.nodes:
            node.start(wait=False)
            self._guarded(node.process)
        for pool in self.workers:
            pool.start()
            self._guarded(pool.process)

    def _guarded(self, process: subprocess.Popen[bytes] | None) -> None:
        if self.guard is not None and process is not None:
            self.guard.watch(process.pid)  # the process leads a process group of its own

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[int | None]:
        """Stop the pools and nodes (all at once; SIGKILL to what is left after `timeout`
        seconds), then the servers; the nodes' exit codes (None: never started)."""
        for pool in self.workers:
            pool.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        codes = [node.wait(left()) for node in self.nodes]
        for pool in self.workers:
            pool.wait(left())
        for server in (self.model, self.lender):
            if server is not None:
                server.stop()
        self.hive.stop()
        self.webhook.stop()
        self.forge.stop()
        return codes

    def reports(self) -> list[NodeStatus | None]:
        return [node.status() for node in self.nodes]

    def mesh_complete(self, reports: list[NodeStatus | None]) -> bool:
        want = len(self.nodes) - 1
        return all(r is not None and len(r.alive_peers()) == want for r in reports)

    def tasks_known(self, reports: list[NodeStatus | None]) -> bool:
        return all(
            r is not None and {t.task_id for t in r.tasks} >= EXPECTED_TASKS for r in reports
        )

    def tasks_finished(self, reports: list[NodeStatus | None]) -> bool:
        """Every node knows how every sample task ended: done (its pull request, or a
        follow-up issue) or quarantined. A failure on one node is not an end: another
        node tries, until the task fails on claims.max_attempts nodes."""
        return all(
            r is not None and {t.task_id for t in r.tasks if t.finished} >= EXPECTED_TASKS
            for r in reports
        )

    def pull_requests(self, reports: list[NodeStatus | None]) -> dict[str, str]:
        """The sample tasks that ended in a pull request, with its URL."""
        report = next((r for r in reports if r is not None), None)
        tasks = report.tasks if report is not None else ()
        return {
            t.task_id: t.result_url
            for t in tasks
            if t.task_id in EXPECTED_TASKS and t.state == "done" and "/pull/" in t.result_url
        }

    def made_by(self) -> list[str]:
        """Each sample pull request's "Made by" line: the node that ran the task, and the
        node whose model answered, where that was another node's (over the mesh); and its
        "Helped by" lines (the peers whose models advised it) and its "It continues" line
        (the node that handed the task on to the one that made it), and the reviews of its
        plan."""
        forge = GitHubForge(self.forge.api_url, Token(self.owner_token), seconds_between_writes=0)
        try:
            pulls = forge.list_pull_requests(SAMPLE_REPO)
        except ForgeError as exc:
            return [f"(could not list the pull requests: {exc})"]
        statuses = [s["status"] for s in self.hive.statuses()]
        lines = [
            f"  Hive ({self.hive.url}) listed lab/hello and heard {len(self.hive.claims())}"
            f" claims and {len(statuses)} status reports"
            f" ({statuses.count('completed')} completed); the n8n webhook"
            f" ({self.webhook.hook_url()}) got {len(self.webhook.received())} escalations",
        ]
        for pull in sorted(pulls, key=lambda p: p.number):
            said = pull.body.splitlines()
            made = next((line for line in said if line.startswith("Made by")), "")
            lines.append(f"  {pull.html_url}: {made.replace('**', '')}")
            kept = ("Helped by", "It continues")
            lines += [f"    {x.replace('**', '')}" for x in said if x.startswith(kept)]
            reviews = [x for x in said if x.startswith("- **") and "(plan)" not in x]
            if reviews:  # the plan's review by peers (Antennae)
                lines.append(
                    f"    Plan reviewed: {'; '.join(x[2:].replace('**', '') for x in reviews)}"
                )
        return lines

    def audit_lines(self, reports: list[NodeStatus | None]) -> list[str]:
        """How far each node signed its audit log, and how far its peers' replicas of it
        are verified."""
        held: dict[str, list[str]] = {}
        alarms = 0
        for report in reports:
            if report is not None and report.audit is not None:
                alarms += len(report.audit.alarms)
                for replica in report.audit.replicas:
                    held.setdefault(replica.node_id, []).append(str(replica.checkpoint_size))
        signed = [
            f"{r.node_id} signed {r.audit.checkpoint_size} entries (replicas verified to"
            f" {', '.join(held.get(r.node_id, [])) or 'none yet'})"
            for r in reports
            if r is not None and r.audit is not None
        ]
        return [f"  Audit logs: {'; '.join(signed)}; {alarms} alarms"]


def run_lab(
    count: int,
    duration: float | None,
    root: Path | None,
    *,
    keep: bool = False,
    until_ready: bool = False,
    until_done: bool = False,
    model: str | None = None,
    ollama_host: str | None = None,
    gguf: str | None = None,
) -> int:
    """Run the lab until Ctrl-C, SIGTERM, SIGHUP or `duration`; with `until_ready`, stop as
    soon as the mesh has formed and every node knows the sample tasks; with `until_done`,
    once every node knows how every sample task ended (its pull request, or quarantined
    after failing on claims.max_attempts nodes). 0 when what was waited for happened (for
    `until_done`: every task has its pull request) and every node exited cleanly. The
    model: `model` on `ollama_host`, or on the lab model server (the scripted `lab`, or
    the GGUF model `gguf` it runs through llama.cpp)."""
    lifeline.arm_from_env()  # a lab started by a test or a tool stops when that ends
    lab_root = Path(tempfile.mkdtemp(prefix="bzzz-lab-")) if root is None else root
    removed = root is None and not keep
    progress = Progress(time.monotonic())
    codes: list[int | None] = []
    lab = Lab(lab_root, count, model=model, ollama_host=ollama_host, gguf=gguf)
    guard: Guard | None = None
    with stop_signals() as received:
        try:
            # First the guard, which cleans up after a lab that is killed outright.
            lab.guard = guard = Guard(remove=lab_root if removed else None)
            lab.init()  # starts the forge and the model server
            say(
                f"lab homes in {lab_root}; model {lab.model_name or '(the first listed)'} at"
                f" {lab.model_url}"
            )
            say(
                f"issue #{AGENT_ISSUE} is solved by the agent CLI {lab.agent}"
                if lab.agent
                else f"issue #{AGENT_ISSUE} is solved by Bzzz's loop ({LAB_AGENT} is not"
                " installed: scripts/setup installs the agent CLIs)"
            )
            progress.started = time.monotonic()
            lab.start()
            say("dashboards: " + ", ".join(f"{n.name} {n.dashboard_url}" for n in lab.nodes))
            while duration is None or progress.elapsed() < duration:
                reports = lab.reports()
                progress.update(lab, reports)
                if until_ready and progress.ready():
                    break
                if progress.finished_at is not None and not progress.made_by:
                    progress.made_by = lab.made_by() + lab.audit_lines(reports)
                if until_done and progress.finished_at is not None:
                    break
                progress.show()
                time.sleep(1.0)
        except Stopping as stop:
            say(f"\nstopping the lab ({stop.name})…")
        finally:
            received.append(0)  # from here on, a signal does not cut the cleanup short
            codes = lab.stop()
            if removed:
                shutil.rmtree(lab_root, ignore_errors=True)
            if guard is not None:
                guard.release()
    say("\n\n".join([progress.last_view, *progress.status_lines()]))
    clean = sum(code == 0 for code in codes)
    where = f"removed {lab_root}" if removed else f"homes kept in {lab_root}"
    say(f"lab stopped: {clean}/{count} nodes exited cleanly; {where}")
    if until_done:
        reached = progress.finished_at is not None and len(progress.pulls) == len(EXPECTED_TASKS)
    else:
        reached = progress.ready()
    return 0 if clean == count and reached else 1

"""The work side of the settings: [forge], [tasks], [claims], [workers], [git], [agent],
[sandbox], [log].

Each section checks itself (`check()` raises Invalid); what needs another section is
checked by Settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bzzz.config.base import Invalid, doc, positive
from bzzz.protocol import REPO_PATTERN

LOG_LEVELS = ("debug", "info", "warning", "error")
SANDBOX_BACKENDS = ("auto", "docker", "bubblewrap")
PUSH_TARGETS = ("fork", "origin", "auto")
# A Docker image reference: [HOST[:PORT]/]NAME[/NAME...][:TAG]
IMAGE_PATTERN = r"(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::\w[\w.-]{0,127})?"
GITHUB_ASSOCIATIONS = (
    "OWNER",
    "MEMBER",
    "COLLABORATOR",
    "CONTRIBUTOR",
    "FIRST_TIME_CONTRIBUTOR",
    "FIRST_TIMER",
    "MANNEQUIN",
    "NONE",
)


@dataclass(frozen=True)
class ForgeSettings:
    api_url: str = doc(
        "The forge's REST API: https://api.github.com, http(s)://HOST/api/v3 for GitHub"
        " Enterprise or Bzzz's local forge.",
        default="https://api.github.com",
    )
    token_file: str = doc(
        "File holding this node's forge token (mode 0600), relative to the home directory."
        " Empty: the token comes from BZZZ_FORGE_TOKEN, else systemd's credential forge-token.",
        default="",
    )
    timeout: float = doc("Seconds before a forge request is abandoned.", default=15.0)
    seconds_between_writes: float = doc(
        "Pause between writes (comments, labels, pull requests), as GitHub asks; 0 for none.",
        default=1.0,
    )

    def check(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.api_url):
            raise Invalid(
                "forge.api_url",
                f"is {self.api_url!r}",
                "use https://api.github.com or http(s)://HOST/api/v3",
            )
        positive("forge.timeout", self.timeout)
        if self.seconds_between_writes < 0:
            raise Invalid(
                "forge.seconds_between_writes", f"is {self.seconds_between_writes}", "use 0 or more"
            )


@dataclass(frozen=True)
class TaskSettings:
    repositories: tuple[str, ...] = doc(
        "Repositories (owner/name) whose labelled issues are tasks.", default=()
    )
    label: str = doc("Issues carrying this label are tasks.", default="bzzz-task")
    hold_label: str = doc(
        "Issues carrying this label wait for a person: no node works on them until a person"
        " removes it. A task that escalates to people gets it.",
        default="bzzz-needs-human",
    )
    poll_interval: float = doc(
        "Seconds between polls of one repository. One live peer polls each repository, and"
        " an unchanged listing costs no API quota.",
        default=30.0,
    )
    trusted_associations: tuple[str, ...] = doc(
        "Issues opened by authors with these GitHub associations become tasks.",
        default=("OWNER", "MEMBER", "COLLABORATOR"),
    )
    trusted_authors: tuple[str, ...] = doc(
        "Logins whose issues become tasks whatever their association.", default=()
    )
    default_model: str = doc(
        "Model asked for when the issue names none (with a label model:NAME).", default="ollama"
    )
    branch_prefix: str = doc(
        "Prefix of the working branch of a task; {number} is the issue number.",
        default="bzzz/task-{number}-",
    )
    sync_interval: float = doc(
        "Seconds between task-table syncs with one random live peer (a node also syncs"
        " with each peer it connects to), so that every node learns every open task.",
        default=60.0,
    )
    history: int = doc(
        "Finished tasks (done, quarantined, closed) kept in the task table and tasks.json,"
        " the most recent first; unfinished tasks are all kept.",
        default=1000,
    )

    def check(self) -> None:
        if self.history < 0:
            raise Invalid("tasks.history", f"is {self.history}", "use 0 or more")
        if self.sync_interval < 1:
            raise Invalid("tasks.sync_interval", f"is {self.sync_interval}", "use 1 or more")
        for repo in self.repositories:
            if not re.fullmatch(REPO_PATTERN, repo):
                raise Invalid("tasks.repositories", f"has {repo!r}", "write each as owner/name")
        if not self.label.strip():
            raise Invalid("tasks.label", "is empty", 'name the label, e.g. "bzzz-task"')
        if not self.hold_label.strip() or self.hold_label == self.label:
            raise Invalid(
                "tasks.hold_label",
                f"is {self.hold_label!r}",
                'name a label other than tasks.label, e.g. "bzzz-needs-human"',
            )
        if self.poll_interval < 1:
            raise Invalid(
                "tasks.poll_interval", f"is {self.poll_interval}", "poll at most once a second"
            )
        for association in self.trusted_associations:
            if association not in GITHUB_ASSOCIATIONS:
                raise Invalid(
                    "tasks.trusted_associations",
                    f"has {association!r}",
                    f"use some of {', '.join(GITHUB_ASSOCIATIONS)}",
                )
        if not self.default_model.strip():
            raise Invalid("tasks.default_model", "is empty", 'name a model, e.g. "ollama"')
        prefix = self.branch_prefix.replace("{number}", "1")
        if (
            not re.fullmatch(r"[A-Za-z0-9._/-]+", prefix)
            or ".." in prefix
            or prefix.startswith(("/", "-"))
        ):
            raise Invalid(
                "tasks.branch_prefix",
                f"is {self.branch_prefix!r}",
                'use e.g. "bzzz/task-{number}-"',
            )


@dataclass(frozen=True)
class ClaimSettings:
    lease: float = doc(
        "Seconds a claim on a task lasts on the forge unless its holder renews it; after a"
        " holder dies, another node takes the task over about this long later.",
        default=300.0,
    )
    gossip_renew: float = doc(
        "Seconds between the holder's task_claim messages while it works.", default=10.0
    )
    rank_delay: float = doc(
        "Seconds each eligible peer waits per place behind the best-ranked one before it"
        " claims, so that normally only one peer claims.",
        default=2.0,
    )
    margin: float = doc(
        "A holder that could not renew its claim stops this many seconds before the lease"
        " ends. At least twice forge.timeout, less than half the lease.",
        default=40.0,
    )
    clock_skew: float = doc(
        "Seconds of clock difference allowed between nodes and the forge when judging"
        " whether a claim has expired.",
        default=5.0,
    )
    max_attempts: int = doc(
        "A task that failed on this many different nodes is quarantined.", default=3
    )
    retention: float = doc(
        "Seconds a finished task stays in the claim machine, where its announcements and"
        " claims are recognised at no cost; after that they are checked on the forge.",
        default=3600.0,
    )
    remote_models: bool = doc(
        "Claim tasks whose model only another node has, to run them through the model"
        " gateway (ranked after the nodes that have the model).",
        default=True,
    )
    quarantine_label: str = doc(
        "Label put on a quarantined task's issue.", default="bzzz-quarantined"
    )

    @property
    def forge_renew(self) -> float:
        return self.lease / 3

    def check(self) -> None:
        """Everything but the margin's relation to forge.timeout, which Settings checks."""
        for key in ("lease", "gossip_renew", "margin"):
            positive(f"claims.{key}", getattr(self, key))
        if self.margin * 2 >= self.lease:
            raise Invalid(
                "claims.margin",
                f"is {self.margin}, not less than half of claims.lease ({self.lease})",
                f"use a lease of at least {self.margin * 2 + 1:g} s",
            )
        if self.gossip_renew >= self.lease / 2:
            raise Invalid("claims.gossip_renew", f"is {self.gossip_renew}", "renew more often")
        if self.rank_delay < 0 or self.clock_skew < 0:
            raise Invalid("claims.rank_delay", "or clock_skew is negative", "use 0 or more")
        if self.max_attempts < 1:
            raise Invalid("claims.max_attempts", f"is {self.max_attempts}", "use 1 or more")
        if self.retention < 0:
            raise Invalid("claims.retention", f"is {self.retention}", "use 0 or more")
        if not self.quarantine_label.strip():
            raise Invalid("claims.quarantine_label", "is empty", 'use e.g. "bzzz-quarantined"')


@dataclass(frozen=True)
class WorkerSettings:
    broker_url: str = doc(
        "The node's task queue: sqlite:PATH (relative to the home directory) or"
        " sqlite:///absolute/path, redis://HOST:PORT/DB, or amqp://HOST.",
        default="sqlite:queue/bzzz.db",
    )
    processes: int = doc("Worker processes that `bzzz worker` runs.", default=1)
    threads: int = doc("Tasks each worker process runs at once.", default=1)
    time_limit: float = doc("Seconds a task may run before it is stopped.", default=7200.0)
    heartbeat: float = doc("Seconds between a running task's heartbeats.", default=10.0)
    max_deliveries: int = doc(
        "A task whose worker was killed this many times (SIGKILL, out of memory) fails.",
        default=3,
    )
    executor: str = doc(
        "What runs a task, as module:function: workers.agent:run (clone, a model's"
        " sandboxed commands, a pull request), or workers.executors:decline for a node"
        " that takes no tasks.",
        default="workers.agent:run",
    )

    @property
    def slots(self) -> int:
        return self.processes * self.threads

    def check(self) -> None:
        if not re.match(r"^(sqlite|redis|rediss|amqp|amqps):", self.broker_url):
            raise Invalid(
                "workers.broker_url",
                "has an unknown scheme",
                "use sqlite:PATH, sqlite:///absolute/path, redis://HOST:PORT/DB or amqp://HOST",
            )
        for key in ("processes", "threads", "max_deliveries"):
            if getattr(self, key) < 1:
                raise Invalid(f"workers.{key}", f"is {getattr(self, key)}", "use 1 or more")
        positive("workers.time_limit", self.time_limit)
        positive("workers.heartbeat", self.heartbeat)
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.executor):
            raise Invalid(
                "workers.executor", f"is {self.executor!r}", "write it as package.module:function"
            )


@dataclass(frozen=True)
class GitSettings:
    author_name: str = doc(
        "Name on this node's commits. Empty: user.name from the node's ~/.gitconfig.", default=""
    )
    author_email: str = doc(
        "Email on this node's commits. Empty: user.email from the node's ~/.gitconfig.",
        default="",
    )
    push_to: str = doc(
        "Where a task's branch is pushed: fork (the node account's fork; a repository the"
        " account owns is its own fork), origin (the task's repository itself: the account"
        " needs push access), or auto (the repository itself where the forge says the account"
        " may push, else a fork). fork keeps model-written branches out of the repository,"
        " and its CI secrets away from them, until a person merges.",
        default="fork",
    )

    def check(self) -> None:
        # git writes these into commit headers: a newline or angle bracket would forge a field
        for key in ("author_name", "author_email"):
            if re.search(r"[<>\n\r\0]", getattr(self, key)):
                raise Invalid(f"git.{key}", "contains <, > or a line break", "remove them")
        if self.push_to not in PUSH_TARGETS:
            raise Invalid(
                "git.push_to", f"is {self.push_to!r}", f"use one of {', '.join(PUSH_TARGETS)}"
            )
        if self.author_email and "@" not in self.author_email:
            raise Invalid(
                "git.author_email",
                f"is {self.author_email!r}",
                'use an address, e.g. "node@example.org"',
            )


@dataclass(frozen=True)
class AgentSettings:
    model: str = doc(
        'Model for tasks that name none (model "ollama"). Empty: the first model the'
        " ollama server lists that can chat (embedding models are passed over).",
        default="",
    )
    model_timeout: float = doc(
        "Seconds one model call may take (less when less of wall_time is left). A reply"
        " that does not come in time fails the task as a slow model.",
        default=300.0,
    )
    num_ctx: int = doc(
        "The model's context window, in tokens (ollama's num_ctx, sent with every call):"
        " at most the model's own context length. 0: the model's own, as ollama's"
        " /api/show reports it. The loop keeps each prompt within it.",
        default=8192,
    )
    num_predict: int = doc(
        "The longest reply, in tokens (ollama's num_predict), at most a quarter of the"
        " context window. A reply cut at the limit goes back to the model as too long.",
        default=1024,
    )
    temperature: float = doc("Sampling temperature (0: the most likely reply).", default=0.0)
    max_steps: int = doc("Commands a task may run before it fails.", default=30)
    wall_time: float = doc("Seconds a task's reasoning loop may take.", default=1800.0)
    max_tokens: int = doc("Model tokens (prompt and reply) a task may use.", default=200_000)
    max_timeouts: int = doc("Commands in a row that may time out.", default=3)
    max_repeats: int = doc("Times the same command may give the same output.", default=3)
    max_bad_replies: int = doc("Unusable model replies in a row before the task fails.", default=3)
    output_chars: int = doc(
        "Characters of a command's output shown to the model (head and tail).", default=8000
    )
    draft: bool = doc("Open pull requests as drafts.", default=True)

    def check(self) -> None:
        for key in ("max_steps", "max_tokens", "max_timeouts", "max_repeats", "output_chars"):
            if getattr(self, key) < 1:
                raise Invalid(f"agent.{key}", f"is {getattr(self, key)}", "use 1 or more")
        if self.max_bad_replies < 0:
            raise Invalid("agent.max_bad_replies", f"is {self.max_bad_replies}", "use 0 or more")
        positive("agent.model_timeout", self.model_timeout)
        positive("agent.wall_time", self.wall_time)
        if self.num_ctx != 0 and self.num_ctx < 512:
            raise Invalid("agent.num_ctx", f"is {self.num_ctx}", "use 512 or more, or 0")
        if self.num_predict < 64:
            raise Invalid("agent.num_predict", f"is {self.num_predict}", "use 64 or more")
        if not 0 <= self.temperature <= 2:
            raise Invalid("agent.temperature", f"is {self.temperature}", "use 0 to 2")


@dataclass(frozen=True)
class SandboxSettings:
    backend: str = doc(
        "Where a task's commands run: auto (Docker when an engine answers and the image"
        " exists, else bubblewrap), docker or bubblewrap. Never unsandboxed: with no usable"
        " backend the task fails.",
        default="auto",
    )
    image: str = doc(
        "Docker image of the sandbox, built locally by `bzzz sandbox build-image`.",
        default="bzzz-sandbox:bookworm",
    )
    docker_host: str = doc(
        "Docker engine, e.g. unix:///run/docker.sock. Empty: DOCKER_HOST, else the default.",
        default="",
    )
    memory_mb: int = doc("Memory a sandbox may use, MiB (no swap).", default=1024)
    pids: int = doc("Processes and threads a sandbox may have at once.", default=256)
    cpus: float = doc("CPUs a sandbox may use (1.5: one and a half).", default=1.0)
    command_timeout: float = doc(
        "Seconds a command may run before it and every process it started are killed.",
        default=120.0,
    )
    output_limit: int = doc(
        "Characters kept of a command's stdout and of its stderr: the head and the tail,"
        " the middle cut.",
        default=20000,
    )

    def check(self) -> None:
        if self.backend not in SANDBOX_BACKENDS:
            raise Invalid(
                "sandbox.backend",
                f"is {self.backend!r}",
                f"use one of {', '.join(SANDBOX_BACKENDS)}",
            )
        if not re.fullmatch(IMAGE_PATTERN, self.image):
            raise Invalid(
                "sandbox.image", f"is {self.image!r}", 'name an image, e.g. "bzzz-sandbox:bookworm"'
            )
        if self.docker_host and not re.match(r"^(unix|tcp|ssh|npipe)://", self.docker_host):
            raise Invalid(
                "sandbox.docker_host",
                f"is {self.docker_host!r}",
                'use unix:///PATH/docker.sock, tcp://HOST:PORT or ssh://USER@HOST, or "" for the'
                " default",
            )
        minimums = {"memory_mb": 64, "pids": 16, "output_limit": 200}
        for key, least in minimums.items():
            if getattr(self, key) < least:
                raise Invalid(f"sandbox.{key}", f"is {getattr(self, key)}", f"use {least} or more")
        positive("sandbox.cpus", self.cpus)
        positive("sandbox.command_timeout", self.command_timeout)


@dataclass(frozen=True)
class LogSettings:
    level: str = doc("Log level: debug, info, warning or error.", default="info")
    file: str = doc(
        "Structured (JSON lines) log, relative to the home directory.", default="logs/node.log"
    )

    def check(self) -> None:
        if self.level not in LOG_LEVELS:
            raise Invalid("log.level", f"is {self.level!r}", f"use one of {', '.join(LOG_LEVELS)}")

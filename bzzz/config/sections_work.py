"""The work side of the settings: [forge], [tasks], [claims], [workers], [git], [log]
([agent] and [sandbox] are in sections_agent).

Each section checks itself (`check()` raises Invalid); what needs another section is
checked by Settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bzzz.config.base import Invalid, doc, positive
from bzzz.protocol import REPO_PATTERN

LOG_LEVELS = ("debug", "info", "warning", "error")
PUSH_TARGETS = ("fork", "origin", "auto")
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
class LogSettings:
    level: str = doc("Log level: debug, info, warning or error.", default="info")
    file: str = doc(
        "Structured (JSON lines) log, relative to the home directory.", default="logs/node.log"
    )

    def check(self) -> None:
        if self.level not in LOG_LEVELS:
            raise Invalid("log.level", f"is {self.level!r}", f"use one of {', '.join(LOG_LEVELS)}")

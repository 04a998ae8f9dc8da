"""Settings: a commented TOML file in the node's home, overridden by environment variables.

Every key `KEY` of section `[SECTION]` can be overridden by `BZZZ_SECTION_KEY`
(lists are comma-separated). The home directory comes from `--home`, else
`BZZZ_HOME`, else `~/.bzzz`. Loading yields frozen, typed settings or a
ConfigError that names the key, the bad value's source and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.addresses import AddressError, parse_bootstrap, parse_listen, parse_peer_id
from bzzz.protocol import NODE_ID_PATTERN, REPO_PATTERN
from bzzz.psk import PskError, read_psk

CONFIG_FILE = "config.toml"
IDENTITY_FILE = "identity.key"
CONTROL_SOCKET = "control.sock"
ENV_PREFIX = "BZZZ_"
HOME_ENV = "BZZZ_HOME"
DEFAULT_HOME = "~/.bzzz"

LOG_LEVELS = ("debug", "info", "warning", "error")
SANDBOX_BACKENDS = ("auto", "docker", "bubblewrap")
# A Docker image reference: [HOST[:PORT]/]NAME[/NAME...][:TAG]
IMAGE_PATTERN = r"(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::\w[\w.-]{0,127})?"


class ConfigError(Exception):
    """Bad configuration: the message names the key, where it came from, and the fix."""


def doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with its documentation, which becomes a comment in config.toml."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class NodeSettings:
    name: str = doc("This node's name in messages (node_id): letters, digits, '.', '_', '-'.")


@dataclass(frozen=True)
class NetworkSettings:
    listen: tuple[str, ...] = doc(
        "Multiaddrs to listen on (TCP; port 0 picks a free port).",
        default=("/ip4/0.0.0.0/tcp/4001",),
    )
    bootstrap: tuple[str, ...] = doc(
        "Peers to dial at start and whenever the link drops: /ip4/HOST/tcp/PORT/p2p/PEER_ID.",
        default=(),
    )
    mdns: bool = doc("Find peers on the local network by mDNS.", default=True)
    dht: bool = doc(
        "Find peers through the Kademlia DHT (peers of peers you never dialled).", default=True
    )
    namespace: str = doc(
        "Name of this mesh: peers advertise and look each other up under it in the DHT.",
        default="bzzz",
    )
    psk_file: str = doc(
        "Private network: file holding a 32-byte pre-shared key as 64 hex digits"
        " (go-libp2p swarm.key format accepted). Empty: no private network.",
        default="",
    )
    allow_peers: tuple[str, ...] = doc(
        "Peer IDs allowed to connect; empty allows any peer that can complete the handshake.",
        default=(),
    )
    reconnect_interval: float = doc(
        "Seconds between checks that redial lost bootstrap and known peers.", default=2.0
    )
    dial_timeout: float = doc("Seconds before a dial attempt is abandoned.", default=5.0)
    discovery_interval: float = doc(
        "Seconds between DHT lookups of other peers in the namespace (quicker while joining).",
        default=30.0,
    )


@dataclass(frozen=True)
class GossipSettings:
    heartbeat_interval: int = doc(
        "GossipSub heartbeat, seconds (py-libp2p's 120 s default loses messages).", default=1
    )
    degree: int = doc(
        "Target number of mesh peers per topic (D). Each message reaches a node about D times"
        " (py-libp2p spends milliseconds on each), so a lab-sized mesh wants it small.",
        default=4,
    )
    degree_low: int = doc("Graft more peers below this many (D_lo).", default=3)
    degree_high: int = doc("Prune peers above this many (D_hi).", default=6)
    max_message_bytes: int = doc("Messages larger than this are dropped.", default=65536)
    max_messages_per_second: float = doc(
        "Per peer and topic, messages per second accepted before the rest are dropped as spam;"
        " 0 disables the limit (py-libp2p's default of 10 counts your own publishes too).",
        default=200.0,
    )
    publish_queue_high_water: int = doc(
        "Publishing waits while any peer's outbound queue (32 slots) holds more RPCs than this.",
        default=16,
    )


@dataclass(frozen=True)
class CapabilitySettings:
    check_interval: float = doc("Seconds between capability readings.", default=5.0)
    max_interval: float = doc(
        "Capabilities are published when they change and at least this often, seconds.",
        default=30.0,
    )
    load_change: float = doc(
        "A change of CPU, memory or GPU load by this many percentage points counts as a change.",
        default=25.0,
    )
    presence_interval: float = doc(
        "Seconds between presence pings in a small mesh (the shortest interval).", default=5.0
    )
    presence_per_peer: float = doc(
        "The presence interval grows to this many seconds per live peer, so that the pings"
        " a node hears per second stay bounded however large the mesh grows.",
        default=2.0,
    )
    peer_timeout: float = doc(
        "A peer silent this many seconds is marked dead (at least: a peer that pings less"
        " often gets three of its own intervals).",
        default=15.0,
    )
    ollama_host: str = doc(
        "Ollama server whose models this node offers.", default="http://127.0.0.1:11434"
    )
    ollama_timeout: float = doc(
        "Seconds to wait for the ollama server when listing models.", default=2.0
    )
    agent_clis: tuple[str, ...] = doc(
        "Agent command-line tools to look for on PATH.",
        default=("ollama", "gemini", "claude", "codex", "aider", "opencode", "goose", "qwen"),
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


@dataclass(frozen=True)
class TaskSettings:
    repositories: tuple[str, ...] = doc(
        "Repositories (owner/name) whose labelled issues are tasks.", default=()
    )
    label: str = doc("Issues carrying this label are tasks.", default="bzzz-task")
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
    quarantine_label: str = doc(
        "Label put on a quarantined task's issue.", default="bzzz-quarantined"
    )

    @property
    def forge_renew(self) -> float:
        return self.lease / 3


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
        "What runs a task, as module:function.", default="workers.executors:decline"
    )

    @property
    def slots(self) -> int:
        return self.processes * self.threads


@dataclass(frozen=True)
class GitSettings:
    author_name: str = doc(
        "Name on this node's commits. Empty: user.name from the node's ~/.gitconfig.", default=""
    )
    author_email: str = doc(
        "Email on this node's commits. Empty: user.email from the node's ~/.gitconfig.",
        default="",
    )


@dataclass(frozen=True)
class AgentSettings:
    model: str = doc(
        'Model for tasks that name none (model "ollama"). Empty: the first model the'
        " ollama server lists.",
        default="",
    )
    model_timeout: float = doc("Seconds one model call may take.", default=300.0)
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


@dataclass(frozen=True)
class LogSettings:
    level: str = doc("Log level: debug, info, warning or error.", default="info")
    file: str = doc(
        "Structured (JSON lines) log, relative to the home directory.", default="logs/node.log"
    )


@dataclass(frozen=True)
class Settings:
    home: Path
    node: NodeSettings
    network: NetworkSettings = NetworkSettings()
    gossip: GossipSettings = GossipSettings()
    capabilities: CapabilitySettings = CapabilitySettings()
    forge: ForgeSettings = ForgeSettings()
    tasks: TaskSettings = TaskSettings()
    claims: ClaimSettings = ClaimSettings()
    workers: WorkerSettings = WorkerSettings()
    git: GitSettings = GitSettings()
    agent: AgentSettings = AgentSettings()
    sandbox: SandboxSettings = SandboxSettings()
    log: LogSettings = LogSettings()

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def identity_path(self) -> Path:
        return self.home / IDENTITY_FILE

    @property
    def control_socket(self) -> Path:
        return self.home / CONTROL_SOCKET

    @property
    def log_path(self) -> Path:
        return self.home / self.log.file

    @property
    def psk_path(self) -> Path | None:
        return self.home / self.network.psk_file if self.network.psk_file else None

    @property
    def token_path(self) -> Path | None:
        return self.home / self.forge.token_file if self.forge.token_file else None

    @property
    def tasks_path(self) -> Path:
        return self.home / "tasks.json"


SECTIONS: Mapping[str, type[Any]] = {
    "node": NodeSettings,
    "network": NetworkSettings,
    "gossip": GossipSettings,
    "capabilities": CapabilitySettings,
    "forge": ForgeSettings,
    "tasks": TaskSettings,
    "claims": ClaimSettings,
    "workers": WorkerSettings,
    "git": GitSettings,
    "agent": AgentSettings,
    "sandbox": SandboxSettings,
    "log": LogSettings,
}


def resolve_home(
    home: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path:
    environ = os.environ if environ is None else environ
    chosen = home if home is not None else environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


def load_settings(home: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read HOME/config.toml, apply BZZZ_* overrides, validate everything."""
    environ = os.environ if environ is None else environ
    path = home / CONFIG_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration at {path}. Fix: run `bzzz init --home {home} --name NODE_NAME`."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}). Fix: correct the file.") from None
    _reject_unknown(raw, path)
    sections = {
        name: _load_section(name, cls, raw.get(name, {}), environ, path)
        for name, cls in SECTIONS.items()
    }
    settings = Settings(home=home, **sections)
    _validate(settings)
    return settings


def _reject_unknown(raw: Mapping[str, Any], path: Path) -> None:
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"unknown section [{section}] in {path}.{_suggest(section, SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{section} in {path} must be a [{section}] table.")
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown key {section}.{key} in {path}.{_suggest(key, known)}")


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Fix: did you mean `{close[0]}`?" if close else " Fix: remove it."


def env_var(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


class _WrongType(Exception):
    def __init__(self, expected: str, shown: str) -> None:
        super().__init__(expected)
        self.expected, self.shown = expected, shown


def _load_section(
    section: str, cls: type[Any], values: Mapping[str, Any], environ: Mapping[str, str], path: Path
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        var = env_var(section, f.name)
        from_env = var in environ
        if not from_env and f.name not in values:
            continue
        hint = hints[f.name]
        try:
            raw = _from_env(environ[var], hint) if from_env else values[f.name]
            kwargs[f.name] = _check_type(raw, hint)
        except _WrongType as wrong:
            example = (
                f.default if f.default is not dataclasses.MISSING else _PLACEHOLDERS[_kind(hint)]
            )
            if from_env:
                source, fix = f"environment variable {var}", f"set {var}={_env_value(example)}"
            else:
                source, fix = str(path), f"write `{f.name} = {_toml_value(example)}` in [{section}]"
            raise ConfigError(
                f"{section}.{f.name} from {source} must be {wrong.expected},"
                f" not {wrong.shown}. Fix: {fix}."
            ) from None
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs]
        raise ConfigError(
            f"{section}.{missing[0]} is required. Fix: set it in the [{section}] table of {path}"
            f" or in {env_var(section, missing[0])}."
        ) from None


_PLACEHOLDERS: Mapping[str, Any] = {
    "bool": True,
    "int": 1,
    "float": 1.0,
    "str": "...",
    "list": ("...",),
}
_EXPECTED: Mapping[str, str] = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list of strings",
}


def _kind(hint: Any) -> str:
    if typing.get_origin(hint) is tuple:
        return "list"
    if hint in (bool, int, float, str):
        return str(hint.__name__)
    raise TypeError(f"unsupported settings type {hint}")  # only the kinds above are used


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _from_env(text: str, hint: Any) -> Any:
    kind = _kind(hint)
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise _WrongType(_EXPECTED[kind], repr(text))
    if kind in ("int", "float"):
        try:
            return hint(text)
        except ValueError:
            raise _WrongType(_EXPECTED[kind], repr(text)) from None
    if kind == "list":
        return [item.strip() for item in text.split(",") if item.strip()]
    return text


def _check_type(value: Any, hint: Any) -> Any:
    kind = _kind(hint)
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)
        value = tuple(value) if ok else value
    if not ok:
        raise _WrongType(_EXPECTED[kind], repr(value))
    return value


class _Invalid(Exception):
    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(key)
        self.key, self.problem, self.fix = key, problem, fix


def _validate(settings: Settings) -> None:
    """Checks of meaning; each failure names the key, where to change it, and the fix."""
    try:
        _validate_node(settings.node)
        _validate_network(settings.network, settings.psk_path)
        _validate_gossip(settings.gossip)
        _validate_capabilities(settings.capabilities)
        _validate_forge(settings.forge)
        _validate_tasks(settings.tasks)
        _validate_claims(settings.claims, settings.forge)
        _validate_workers(settings.workers)
        _validate_git(settings.git)
        _validate_agent(settings.agent)
        _validate_sandbox(settings.sandbox)
        _validate_log(settings.log)
    except _Invalid as bad:
        section, name = bad.key.split(".")
        raise ConfigError(
            f"{bad.key} {bad.problem}. Fix: {bad.fix}"
            f" (in {settings.config_path} or {env_var(section, name)})."
        ) from None


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


def _validate_forge(forge: ForgeSettings) -> None:
    if not re.match(r"^https?://[^/\s]+", forge.api_url):
        raise _Invalid(
            "forge.api_url",
            f"is {forge.api_url!r}",
            "use https://api.github.com or http(s)://HOST/api/v3",
        )
    _positive("forge.timeout", forge.timeout)
    if forge.seconds_between_writes < 0:
        raise _Invalid(
            "forge.seconds_between_writes", f"is {forge.seconds_between_writes}", "use 0 or more"
        )


def _validate_tasks(tasks: TaskSettings) -> None:
    for repo in tasks.repositories:
        if not re.fullmatch(REPO_PATTERN, repo):
            raise _Invalid("tasks.repositories", f"has {repo!r}", "write each as owner/name")
    if not tasks.label.strip():
        raise _Invalid("tasks.label", "is empty", 'name the label, e.g. "bzzz-task"')
    if tasks.poll_interval < 1:
        raise _Invalid(
            "tasks.poll_interval", f"is {tasks.poll_interval}", "poll at most once a second"
        )
    for association in tasks.trusted_associations:
        if association not in GITHUB_ASSOCIATIONS:
            raise _Invalid(
                "tasks.trusted_associations",
                f"has {association!r}",
                f"use some of {', '.join(GITHUB_ASSOCIATIONS)}",
            )
    if not tasks.default_model.strip():
        raise _Invalid("tasks.default_model", "is empty", 'name a model, e.g. "ollama"')
    prefix = tasks.branch_prefix.replace("{number}", "1")
    if (
        not re.fullmatch(r"[A-Za-z0-9._/-]+", prefix)
        or ".." in prefix
        or prefix.startswith(("/", "-"))
    ):
        raise _Invalid(
            "tasks.branch_prefix", f"is {tasks.branch_prefix!r}", 'use e.g. "bzzz/task-{number}-"'
        )


def _validate_claims(claims: ClaimSettings, forge: ForgeSettings) -> None:
    for key in ("lease", "gossip_renew", "margin"):
        _positive(f"claims.{key}", getattr(claims, key))
    if claims.margin < 2 * forge.timeout:
        raise _Invalid(
            "claims.margin",
            f"is {claims.margin}, less than twice forge.timeout ({forge.timeout})",
            f"use at least {2 * forge.timeout:g} or lower forge.timeout",
        )
    if claims.margin * 2 >= claims.lease:
        raise _Invalid(
            "claims.margin",
            f"is {claims.margin}, not less than half of claims.lease ({claims.lease})",
            f"use a lease of at least {claims.margin * 2 + 1:g} s",
        )
    if claims.gossip_renew >= claims.lease / 2:
        raise _Invalid("claims.gossip_renew", f"is {claims.gossip_renew}", "renew more often")
    if claims.rank_delay < 0 or claims.clock_skew < 0:
        raise _Invalid("claims.rank_delay", "or clock_skew is negative", "use 0 or more")
    if claims.max_attempts < 1:
        raise _Invalid("claims.max_attempts", f"is {claims.max_attempts}", "use 1 or more")
    if not claims.quarantine_label.strip():
        raise _Invalid("claims.quarantine_label", "is empty", 'use e.g. "bzzz-quarantined"')


def _validate_workers(workers: WorkerSettings) -> None:
    if not re.match(r"^(sqlite|redis|rediss|amqp|amqps):", workers.broker_url):
        raise _Invalid(
            "workers.broker_url",
            "has an unknown scheme",
            "use sqlite:PATH, sqlite:///absolute/path, redis://HOST:PORT/DB or amqp://HOST",
        )
    for key in ("processes", "threads", "max_deliveries"):
        if getattr(workers, key) < 1:
            raise _Invalid(f"workers.{key}", f"is {getattr(workers, key)}", "use 1 or more")
    _positive("workers.time_limit", workers.time_limit)
    _positive("workers.heartbeat", workers.heartbeat)
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", workers.executor):
        raise _Invalid(
            "workers.executor", f"is {workers.executor!r}", "write it as package.module:function"
        )


def _validate_agent(agent: AgentSettings) -> None:
    for key in ("max_steps", "max_tokens", "max_timeouts", "max_repeats", "output_chars"):
        if getattr(agent, key) < 1:
            raise _Invalid(f"agent.{key}", f"is {getattr(agent, key)}", "use 1 or more")
    if agent.max_bad_replies < 0:
        raise _Invalid("agent.max_bad_replies", f"is {agent.max_bad_replies}", "use 0 or more")
    _positive("agent.model_timeout", agent.model_timeout)
    _positive("agent.wall_time", agent.wall_time)


def _validate_git(git: GitSettings) -> None:
    # git writes these into commit headers: a newline or angle bracket would forge a field
    for key in ("author_name", "author_email"):
        if re.search(r"[<>\n\r\0]", getattr(git, key)):
            raise _Invalid(f"git.{key}", "contains <, > or a line break", "remove them")
    if git.author_email and "@" not in git.author_email:
        raise _Invalid(
            "git.author_email",
            f"is {git.author_email!r}",
            'use an address, e.g. "node@example.org"',
        )


def _validate_sandbox(sandbox: SandboxSettings) -> None:
    if sandbox.backend not in SANDBOX_BACKENDS:
        raise _Invalid(
            "sandbox.backend",
            f"is {sandbox.backend!r}",
            f"use one of {', '.join(SANDBOX_BACKENDS)}",
        )
    if not re.fullmatch(IMAGE_PATTERN, sandbox.image):
        raise _Invalid(
            "sandbox.image", f"is {sandbox.image!r}", 'name an image, e.g. "bzzz-sandbox:bookworm"'
        )
    if sandbox.docker_host and not re.match(r"^(unix|tcp|ssh|npipe)://", sandbox.docker_host):
        raise _Invalid(
            "sandbox.docker_host",
            f"is {sandbox.docker_host!r}",
            'use unix:///PATH/docker.sock, tcp://HOST:PORT or ssh://USER@HOST, or "" for the'
            " default",
        )
    minimums = {"memory_mb": 64, "pids": 16, "output_limit": 200}
    for key, least in minimums.items():
        if getattr(sandbox, key) < least:
            raise _Invalid(f"sandbox.{key}", f"is {getattr(sandbox, key)}", f"use {least} or more")
    _positive("sandbox.cpus", sandbox.cpus)
    _positive("sandbox.command_timeout", sandbox.command_timeout)


def _validate_log(log: LogSettings) -> None:
    if log.level not in LOG_LEVELS:
        raise _Invalid("log.level", f"is {log.level!r}", f"use one of {', '.join(LOG_LEVELS)}")


def _positive(key: str, number: float) -> None:
    if number <= 0:
        raise _Invalid(key, f"is {number}", "use a number greater than 0")


def _validate_node(node: NodeSettings) -> None:
    if not re.fullmatch(NODE_ID_PATTERN, node.name):
        raise _Invalid(
            "node.name",
            f"is {node.name!r}",
            "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )


def _validate_network(net: NetworkSettings, psk_path: Path | None) -> None:
    if not net.listen:
        raise _Invalid(
            "network.listen", "is empty", 'listen on an address, e.g. "/ip4/0.0.0.0/tcp/4001"'
        )
    parsers: list[tuple[str, tuple[str, ...], typing.Callable[[str], object]]] = [
        ("network.listen", net.listen, parse_listen),
        ("network.bootstrap", net.bootstrap, parse_bootstrap),
        ("network.allow_peers", net.allow_peers, parse_peer_id),
    ]
    for key, values, parse in parsers:
        for value in values:
            try:
                parse(value)
            except AddressError as exc:
                raise _Invalid(
                    key, f"has {value!r}: {exc}", "correct or remove that entry"
                ) from None
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", net.namespace):
        raise _Invalid(
            "network.namespace",
            f"is {net.namespace!r}",
            "use 1-64 letters, digits, '.', '_' or '-'",
        )
    if psk_path is not None:
        try:
            read_psk(psk_path)
        except PskError as exc:
            raise _Invalid(
                "network.psk_file", str(exc), 'use a key made by `bzzz psk`, or ""'
            ) from None
    _positive("network.reconnect_interval", net.reconnect_interval)
    _positive("network.dial_timeout", net.dial_timeout)
    _positive("network.discovery_interval", net.discovery_interval)


def _validate_gossip(gossip: GossipSettings) -> None:
    _positive("gossip.heartbeat_interval", gossip.heartbeat_interval)
    _positive("gossip.max_message_bytes", gossip.max_message_bytes)
    _positive("gossip.publish_queue_high_water", gossip.publish_queue_high_water)
    if not 1 <= gossip.degree_low <= gossip.degree <= gossip.degree_high:
        raise _Invalid(
            "gossip.degree",
            f"is {gossip.degree} with degree_low {gossip.degree_low}"
            f" and degree_high {gossip.degree_high}",
            "keep 1 <= degree_low <= degree <= degree_high",
        )
    if gossip.max_messages_per_second < 0:
        raise _Invalid(
            "gossip.max_messages_per_second",
            f"is {gossip.max_messages_per_second}",
            "use 0 (no limit) or more",
        )
    if gossip.publish_queue_high_water >= 32:
        raise _Invalid(
            "gossip.publish_queue_high_water",
            f"is {gossip.publish_queue_high_water}",
            "keep it below 32, the size of py-libp2p's per-peer queue",
        )


def _validate_capabilities(caps: CapabilitySettings) -> None:
    for key in (
        "check_interval",
        "max_interval",
        "presence_interval",
        "presence_per_peer",
        "peer_timeout",
        "ollama_timeout",
    ):
        _positive(f"capabilities.{key}", getattr(caps, key))
    if caps.peer_timeout <= caps.presence_interval:
        raise _Invalid(
            "capabilities.peer_timeout",
            f"is {caps.peer_timeout}, not above presence_interval {caps.presence_interval}",
            "make it at least twice the presence interval",
        )
    if not re.match(r"^https?://[^/\s]+", caps.ollama_host):
        raise _Invalid(
            "capabilities.ollama_host", f"is {caps.ollama_host!r}", "use http://HOST:PORT"
        )


# ---- writing a commented config.toml ---------------------------------------------------


def render_config(values: Mapping[str, Mapping[str, Any]]) -> str:
    """A commented config.toml: given keys are set, every other key is shown commented out
    with its default, so the file documents every setting."""
    lines = [
        "# Bzzz node configuration.",
        f"# Every key can be overridden by an environment variable {ENV_PREFIX}<SECTION>_<KEY>,",
        "# e.g. BZZZ_NETWORK_LISTEN=/ip4/0.0.0.0/tcp/4001 (lists are comma-separated).",
    ]
    for section, cls in SECTIONS.items():
        lines += ["", f"[{section}]"]
        given = values.get(section, {})
        for f in dataclasses.fields(cls):
            lines.append(f"# {f.metadata['doc']}")
            if f.name in given:
                lines.append(f"{f.name} = {_toml_value(given[f.name])}")
            elif f.default is not dataclasses.MISSING:
                lines.append(f"# {f.name} = {_toml_value(f.default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def render_config_docs() -> str:
    """docs/configuration.md, from the settings classes themselves (a test keeps it current)."""
    lines = [
        "# Configuration",
        "",
        "`bzzz init` writes `config.toml` in the node's home (`--home`, else `$BZZZ_HOME`,"
        " else `~/.bzzz`) with every key below, commented out at its default unless given.",
        "Each key can be overridden by its environment variable (lists comma-separated).",
        "A bad value stops the node at start with the key, where it came from, and the fix.",
        "",
        "This page is generated from `bzzz/config.py` by `python -m bzzz.config`.",
    ]
    for section, cls in SECTIONS.items():
        lines += [
            "",
            f"## [{section}]",
            "",
            "| key | default | environment | meaning |",
            "|---|---|---|---|",
        ]
        for f in dataclasses.fields(cls):
            default = (
                "(required)" if f.default is dataclasses.MISSING else f"`{_toml_value(f.default)}`"
            )
            lines.append(
                f"| `{f.name}` | {default} | `{env_var(section, f.name)}` | {f.metadata['doc']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_config_docs(), end="")

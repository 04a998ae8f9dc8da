"""`bzzz doctor`: check what a node needs, and say what to fix.

Each check reads, never writes (no claim, no fork, no queue message). A check that needs
what an earlier one found missing is skipped, saying why.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bzzz.agents import CATALOGUE, NO_GATEWAY, locate
from bzzz.config import ConfigError, Settings, load_settings
from bzzz.control import ControlError, request
from bzzz.errors import ExitCode
from bzzz.forge.api import ForgeError, Repository
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token, TokenError, load_token
from bzzz.identity import IdentityError, load_identity, peer_id_of
from bzzz.node.status import NodeStatus
from bzzz.reports.outbox import Outbox, State

AGENT_VERSION_TIMEOUT = 20.0  # seconds `CLI --version` may take (a cold start of node)


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "check": self.name,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def ok(name: str, detail: str) -> Check:
    return Check(name, Verdict.OK, detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Verdict.FAIL, detail, fix)


def diagnose(home: Path, environ: dict[str, str] | None = None) -> list[Check]:
    environ = dict(os.environ if environ is None else environ)
    try:
        settings = load_settings(home, environ=environ)
    except ConfigError as exc:
        return [fail("config", str(exc).partition(" Fix: ")[0], _fix_of(str(exc)))]
    checks = [ok("config", f"{settings.config_path} is valid")]
    checks.append(_identity(settings))
    token_check, token = _token(settings, environ)
    checks.append(token_check)
    checks.extend(_forge(settings, token))
    checks.append(_model(settings))
    checks.append(_sandbox(settings))
    checks.append(_broker(settings))
    checks.append(_git_identity(settings, environ))
    checks.append(_executor(settings))
    checks.extend(_agents(settings))
    checks.append(_reports(settings))
    checks.append(_node_running(settings))
    return checks


def _fix_of(message: str) -> str:
    return message.partition(" Fix: ")[2] or "see docs/configuration.md"


def _identity(settings: Settings) -> Check:
    try:
        key = load_identity(settings.identity_path)
    except IdentityError as exc:
        text = str(exc)
        fix = (
            _fix_of(text) if " Fix: " in text else f"run `bzzz init --home {settings.home} --force`"
        )
        return fail("identity", text.partition(" Fix: ")[0], fix)
    return ok("identity", f"peer ID {peer_id_of(key)}")


def _token(settings: Settings, environ: dict[str, str]) -> tuple[Check, Token | None]:
    fix = (
        "set BZZZ_FORGE_TOKEN, or forge.token_file (mode 0600), or a systemd credential forge-token"
    )
    try:
        token = load_token(settings.token_path, environ)
    except (TokenError, OSError) as exc:
        return fail("forge token", str(exc), fix), None
    if token is None:
        return fail("forge token", "no token is configured", fix), None
    return ok("forge token", "found (not shown)"), token


def _forge(settings: Settings, token: Token | None) -> list[Check]:
    api = settings.forge.api_url
    if token is None:
        return [Check("forge", Verdict.SKIP, f"{api}: needs a token")]
    forge = GitHubForge(api, token, timeout=min(settings.forge.timeout, 10.0))
    try:
        login = forge.login()
    except ForgeError as exc:
        if exc.status in (401, 403):
            fix = "make a new token for the node's account and configure it"
            return [fail("forge", f"{api} refused the token ({exc.status})", fix)]
        return [fail("forge", f"{api}: {exc}", "check forge.api_url and the network to it")]
    checks = [ok("forge", f"{api} as {login}")]
    if not settings.tasks.repositories:
        checks.append(
            Check(
                "repositories",
                Verdict.WARN,
                "none configured: this node takes no tasks",
                "list them in tasks.repositories",
            )
        )
    for repo in settings.tasks.repositories:
        try:
            info = forge.get_repository(repo)
        except ForgeError as exc:
            fix = f"give {login} read access to {repo} (a collaborator, so its claims count)"
            checks.append(fail(f"repository {repo}", str(exc), fix))
            continue
        checks.append(_push_check(settings, login, info))
    return checks


def _push_check(settings: Settings, login: str, info: Repository) -> Check:
    """Where task branches of a readable repository go, per git.push_to."""
    name, push_to = f"repository {info.full_name}", settings.git.push_to
    if push_to == "origin" and not info.can_push:
        return fail(
            name,
            f"git.push_to is origin, but {login} may not push to {info.full_name}",
            f"give {login} write access, or set git.push_to to fork or auto",
        )
    if push_to == "origin" or (push_to == "auto" and info.can_push):
        where = "pushes task branches to it (no fork)"
    elif info.owner.lower() == login.lower():
        where = "owns it: task branches go to it (there is no fork of one's own repository)"
    else:
        where = f"pushes task branches to its fork (git.push_to = {push_to})"
    access = "can push" if info.can_push else "read only"
    return ok(name, f"readable by {login}, {access}; {where}")


def _model(settings: Settings) -> Check:
    """The model a task that names none would get, chosen as the workers choose it."""
    from workers.loop import ModelFailed, ModelUnreachable  # noqa: PLC0415
    from workers.models import choose_model  # noqa: PLC0415

    host, wanted = settings.capabilities.ollama_host, settings.agent.model
    try:
        choice = choose_model("", wanted, host, 5.0)
    except ModelUnreachable as exc:
        return fail("model server", str(exc), "start ollama there, or set capabilities.ollama_host")
    except ModelFailed as exc:
        fix = f"`ollama pull {wanted}`" if wanted else "`ollama pull` a model that can chat"
        return fail("model server", str(exc), f"{fix} there, or set agent.model to one it has")
    if wanted and choice.reason != "agent.model":
        return fail(
            "model server",
            f"{host} cannot serve agent.model {wanted!r}; tasks would get {choice.describe()}",
            f"`ollama pull {wanted}` there, or change agent.model",
        )
    return ok("model server", f"{host}: tasks that name no model get {choice.describe()}")


def _sandbox(settings: Settings) -> Check:
    from workers.sandbox import SandboxError, choose_backend, open_sandbox  # noqa: PLC0415

    try:
        backend = choose_backend(settings.sandbox)
        with (
            tempfile.TemporaryDirectory(prefix="bzzz-doctor-") as workspace,
            open_sandbox(settings.sandbox, Path(workspace)) as box,
        ):
            ran = box.exec("echo ok > probe && cat probe", timeout=30)
            limits = box.limits
    except SandboxError as exc:
        return fail("sandbox", str(exc), "see docs/sandbox.md; `bzzz sandbox check` says more")
    if ran.exit_code != 0 or ran.stdout.strip() != "ok":
        return fail(
            "sandbox",
            f"{backend}: a test command gave exit {ran.exit_code}: {ran.stderr.strip()[:200]}",
            "run `bzzz sandbox check` for details",
        )
    return ok("sandbox", f"{backend} runs commands; limits held by {limits}")


def _broker(settings: Settings) -> Check:
    from bzzz.queue.url import BrokerURLError, redact_url  # noqa: PLC0415
    from bzzz.work import open_broker  # noqa: PLC0415

    url = redact_url(settings.workers.broker_url)
    try:
        broker = open_broker(settings)
    except BrokerURLError as exc:
        return fail("queue", str(exc), "fix workers.broker_url")
    try:
        detail = _ping(broker)
    except Exception as exc:  # each broker library fails its own way
        return fail(
            "queue",
            f"{url}: {type(exc).__name__}: {exc}",
            "start the broker or fix workers.broker_url",
        )
    finally:
        broker.close()
    return ok("queue", f"{url}: {detail}")


def _ping(broker: Any) -> str:
    from bzzz.queue.sqlite import SQLiteBroker  # noqa: PLC0415

    if isinstance(broker, SQLiteBroker):
        return f"{len(broker.dead_letters())} dead letters"
    if hasattr(broker, "client"):  # Redis
        broker.client.ping()
        return "answers"
    broker.connection  # RabbitMQ: opening the connection is the check  # noqa: B018
    return "answers"


def _git_identity(settings: Settings, environ: dict[str, str]) -> Check:
    from workers.git_access import WorkspaceError, node_identity  # noqa: PLC0415

    try:
        identity = node_identity(settings, environ)
    except WorkspaceError as exc:
        text = str(exc)
        return fail("git identity", text, "set git.author_name and git.author_email")
    return ok("git identity", f"{identity.name} <{identity.email}>")


def _executor(settings: Settings) -> Check:
    from workers.executors import load_executor  # noqa: PLC0415

    path = settings.workers.executor
    try:
        load_executor(path)
    except (ImportError, AttributeError) as exc:
        return fail("executor", f"{path}: {exc}", 'set workers.executor = "workers.agent:run"')
    if path == "workers.executors:decline":
        return Check(
            "executor",
            Verdict.WARN,
            f"{path}: this node takes no tasks",
            'set workers.executor = "workers.agent:run" to run tasks',
        )
    return ok("executor", path)


def _agents(settings: Settings) -> list[Check]:
    """Each agent CLI the node looks for: offered (found, drivable, answers --version), or
    why not."""
    caps = settings.capabilities
    checks = []
    for name in caps.agent_clis:
        cli = CATALOGUE.get(name)
        if cli is None:
            continue  # a plain tool (ollama): found or not, nothing to drive
        check = f"agent {name}"
        found = locate(cli.executable, caps.agent_path)
        if found is None:
            detail = f"not installed: not offered{f' ({cli.unable})' if cli.unable else ''}"
            fix = f"run scripts/setup, which installs it from {cli.package}" if cli.package else ""
            checks.append(Check(check, Verdict.SKIP, detail, "" if cli.unable else fix))
        elif cli.unable:
            checks.append(Check(check, Verdict.WARN, f"{found}: not offered: {cli.unable}"))
        elif cli.needs_gateway and not settings.gateway.listen:
            fix = 'set gateway.listen (default "127.0.0.1:11435")'
            checks.append(Check(check, Verdict.WARN, f"{found}: not offered: {NO_GATEWAY}", fix))
        else:
            checks.append(_agent_version(check, found))
    return checks


def _agent_version(check: str, found: str) -> Check:
    try:
        said = subprocess.run(
            [found, "--version"],
            capture_output=True,
            text=True,
            timeout=AGENT_VERSION_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return fail(check, f"{found} does not run: {exc}", "install it again (scripts/setup)")
    version = (said.stdout.strip().splitlines() or ["?"])[0][:80]
    if said.returncode != 0:
        why = (said.stderr.strip() or version)[:200]
        return fail(check, f"{found} --version failed: {why}", "install it again (scripts/setup)")
    return ok(check, f"{version} at {found}: offered (tasks labelled agent:{check[6:]})")


def _reports(settings: Settings) -> Check:
    """What the outbox says of the webhook and Hive: their last tries' errors (a 404 from
    n8n is a webhook that is not registered: a misconfiguration)."""
    targets = [
        t
        for t, url in (("webhook", settings.escalation.webhook_url), ("hive", settings.hive.url))
        if url
    ]
    if not targets:
        return Check("reports", Verdict.SKIP, "no escalation.webhook_url or hive.url set")
    if not settings.outbox_path.exists():
        return ok("reports", f"{' and '.join(targets)} set; nothing reported yet")
    outbox = Outbox(settings.outbox_path)
    problems = outbox.problems()
    lasting = [p for p in problems if p.state is State.MISCONFIGURED]
    if lasting:
        said = "; ".join(f"{p.target}: {p.waiting} waiting: {p.error}" for p in lasting)
        return fail("reports", said, "fix the URL or the credentials (docs/escalation.md)")
    if problems:
        said = "; ".join(f"{p.target}: {p.waiting} waiting: {p.error}" for p in problems)
        return Check("reports", Verdict.WARN, f"{said} (tried again with back-off)")
    return ok("reports", f"{outbox.waiting()} waiting to be delivered")


def _node_running(settings: Settings) -> Check:
    try:
        report = request(settings.control_socket, {"cmd": "status"}, timeout=3.0)
    except ControlError:
        return Check(
            "node",
            Verdict.WARN,
            "not running",
            f"start it: `bzzz node --home {settings.home}` (or systemctl start bzzz-node)",
        )
    status = NodeStatus.from_json(report)
    alive = len(status.alive_peers())
    if not alive:
        return Check(
            "node",
            Verdict.WARN,
            "running, but it hears no peer",
            "check network.bootstrap, mDNS on the LAN, firewalls (docs/deployment.md)",
        )
    ready = status.readiness
    if not ready.takes_tasks:
        reasons = [reason.partition(" Fix: ") for reason in ready.reasons]
        return Check(
            "node",
            Verdict.WARN,
            f"running, {alive} peers alive; it takes no tasks: "
            + "; ".join(text.rstrip(".") for text, _, _ in reasons),
            "; ".join(fix.rstrip(".") for _, _, fix in reasons if fix) or "see bzzz status",
        )
    return ok("node", f"running, {alive} peers alive, takes tasks ({ready.capacity} slots)")


def render(checks: list[Check]) -> Iterator[str]:
    marks = {Verdict.OK: "ok  ", Verdict.WARN: "WARN", Verdict.FAIL: "FAIL", Verdict.SKIP: "skip"}
    for check in checks:
        yield f"{marks[check.verdict]}  {check.name}: {check.detail}"
        if check.fix:
            yield f"      fix: {check.fix}"


def exit_code(checks: list[Check]) -> int:
    failed = any(c.verdict is Verdict.FAIL for c in checks)
    return ExitCode.FAILURE if failed else ExitCode.OK

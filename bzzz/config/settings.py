"""The root of the settings: the home directory and one frozen section per table of
config.toml, and the checks that span sections or need the home directory."""

# ruff: noqa: RUF009 - the sections are frozen dataclasses: one shared default is safe

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bzzz.config.base import Invalid
from bzzz.config.sections_agent import AgentSettings, SandboxSettings
from bzzz.config.sections_help import AntennaeSettings, AuditSettings, HelpSettings
from bzzz.config.sections_net import (
    CapabilitySettings,
    DashboardSettings,
    GatewaySettings,
    GossipSettings,
    NetworkSettings,
    NodeSettings,
)
from bzzz.config.sections_people import EscalationSettings, HiveSettings
from bzzz.config.sections_work import (
    ClaimSettings,
    ForgeSettings,
    GitSettings,
    LogSettings,
    TaskSettings,
    WorkerSettings,
)
from bzzz.psk import PskError, read_psk

CONFIG_FILE = "config.toml"
IDENTITY_FILE = "identity.key"
CONTROL_SOCKET = "control.sock"


@dataclass(frozen=True)
class Settings:
    home: Path
    node: NodeSettings
    network: NetworkSettings = NetworkSettings()
    gossip: GossipSettings = GossipSettings()
    capabilities: CapabilitySettings = CapabilitySettings()
    gateway: GatewaySettings = GatewaySettings()
    help: HelpSettings = HelpSettings()
    antennae: AntennaeSettings = AntennaeSettings()
    audit: AuditSettings = AuditSettings()
    forge: ForgeSettings = ForgeSettings()
    tasks: TaskSettings = TaskSettings()
    claims: ClaimSettings = ClaimSettings()
    workers: WorkerSettings = WorkerSettings()
    git: GitSettings = GitSettings()
    agent: AgentSettings = AgentSettings()
    sandbox: SandboxSettings = SandboxSettings()
    escalation: EscalationSettings = EscalationSettings()
    hive: HiveSettings = HiveSettings()
    dashboard: DashboardSettings = DashboardSettings()
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
    def webhook_header_path(self) -> Path | None:
        file = self.escalation.header_file
        return self.home / file if file else None

    @property
    def hive_key_path(self) -> Path | None:
        return self.home / self.hive.key_file if self.hive.key_file else None

    @property
    def outbox_path(self) -> Path:
        return self.home / "outbox.db"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit.db"

    @property
    def dashboard_token_path(self) -> Path | None:
        file = self.dashboard.token_file
        return self.home / file if file else None

    @property
    def replicas_path(self) -> Path:
        return self.home / "replicas"

    @property
    def token_path(self) -> Path | None:
        return self.home / self.forge.token_file if self.forge.token_file else None

    @property
    def tasks_path(self) -> Path:
        return self.home / "tasks.json"

    @property
    def model_url(self) -> str:
        """Where workers ask for models: this node's gateway, which has the mesh's models
        as well as this machine's, else this machine's model server."""
        if self.gateway.listen and self.gateway.host_port[1] != 0:
            return f"http://{self.gateway.listen}"
        return self.capabilities.ollama_host

    def check(self) -> None:
        """Each section checks itself, in the order of config.toml; between them, what
        spans sections or needs the home directory. Raises Invalid on the first problem."""
        self.node.check()
        self.network.check()
        self._check_psk()
        self.gossip.check()
        self.capabilities.check()
        self.gateway.check()
        self.help.check()
        self.antennae.check()
        self.audit.check()
        self.forge.check()
        self.tasks.check()
        self._check_claims_margin()
        self.claims.check()
        self.workers.check()
        self.git.check()
        self.agent.check()
        self.sandbox.check()
        self.escalation.check()
        self.hive.check()
        self.dashboard.check()
        self.log.check()

    def _check_psk(self) -> None:
        if self.psk_path is not None:
            try:
                read_psk(self.psk_path)
            except PskError as exc:
                raise Invalid(
                    "network.psk_file", str(exc), 'use a key made by `bzzz psk`, or ""'
                ) from None

    def _check_claims_margin(self) -> None:
        """A holder that cannot reach the forge must stop in time: the margin must cover
        two forge requests. Only once the claim timings are positive numbers, which
        claims.check() reports otherwise."""
        claims, forge = self.claims, self.forge
        if min(claims.lease, claims.gossip_renew, claims.margin) <= 0:
            return
        if claims.margin < 2 * forge.timeout:
            raise Invalid(
                "claims.margin",
                f"is {claims.margin}, less than twice forge.timeout ({forge.timeout})",
                f"use at least {2 * forge.timeout:g} or lower forge.timeout",
            )


SECTIONS: Mapping[str, type[Any]] = {
    "node": NodeSettings,
    "network": NetworkSettings,
    "gossip": GossipSettings,
    "capabilities": CapabilitySettings,
    "gateway": GatewaySettings,
    "help": HelpSettings,
    "antennae": AntennaeSettings,
    "audit": AuditSettings,
    "forge": ForgeSettings,
    "tasks": TaskSettings,
    "claims": ClaimSettings,
    "workers": WorkerSettings,
    "git": GitSettings,
    "agent": AgentSettings,
    "sandbox": SandboxSettings,
    "escalation": EscalationSettings,
    "hive": HiveSettings,
    "dashboard": DashboardSettings,
    "log": LogSettings,
}

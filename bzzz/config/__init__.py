"""Settings: a commented TOML file in the node's home, overridden by environment variables.

Every key `KEY` of section `[SECTION]` can be overridden by `BZZZ_SECTION_KEY`
(lists are comma-separated). The home directory comes from `--home`, else
`BZZZ_HOME`, else `~/.bzzz`. Loading yields frozen, typed settings or a
ConfigError that names the key, the bad value's source and the fix.

The sections and their checks live in `sections_net`, `sections_work`, `sections_agent`,
`sections_help` and `sections_people`, the root in `settings`, loading in `loader`,
writing config.toml and the docs in `render`.
"""

from bzzz.config.base import ENV_PREFIX, doc, env_var
from bzzz.config.loader import DEFAULT_HOME, HOME_ENV, load_settings, resolve_home
from bzzz.config.render import render_config, render_config_docs
from bzzz.config.sections_agent import (
    IMAGE_PATTERN,
    SANDBOX_BACKENDS,
    AgentSettings,
    SandboxSettings,
)
from bzzz.config.sections_help import AntennaeSettings, HelpSettings
from bzzz.config.sections_net import (
    CapabilitySettings,
    GatewaySettings,
    GossipSettings,
    NetworkSettings,
    NodeSettings,
)
from bzzz.config.sections_people import EscalationSettings, HiveSettings
from bzzz.config.sections_work import (
    GITHUB_ASSOCIATIONS,
    LOG_LEVELS,
    ClaimSettings,
    ForgeSettings,
    GitSettings,
    LogSettings,
    TaskSettings,
    WorkerSettings,
)
from bzzz.config.settings import CONFIG_FILE, CONTROL_SOCKET, IDENTITY_FILE, SECTIONS, Settings
from bzzz.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "CONTROL_SOCKET",
    "DEFAULT_HOME",
    "ENV_PREFIX",
    "GITHUB_ASSOCIATIONS",
    "HOME_ENV",
    "IDENTITY_FILE",
    "IMAGE_PATTERN",
    "LOG_LEVELS",
    "SANDBOX_BACKENDS",
    "SECTIONS",
    "AgentSettings",
    "AntennaeSettings",
    "CapabilitySettings",
    "ClaimSettings",
    "ConfigError",
    "EscalationSettings",
    "ForgeSettings",
    "GatewaySettings",
    "GitSettings",
    "GossipSettings",
    "HelpSettings",
    "HiveSettings",
    "LogSettings",
    "NetworkSettings",
    "NodeSettings",
    "SandboxSettings",
    "Settings",
    "TaskSettings",
    "WorkerSettings",
    "doc",
    "env_var",
    "load_settings",
    "render_config",
    "render_config_docs",
    "resolve_home",
]

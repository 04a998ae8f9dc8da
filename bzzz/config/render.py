"""Writing the settings down: a commented config.toml for `bzzz init`, and
docs/configuration.md, both from the sections' fields and their documentation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bzzz.config.base import ENV_PREFIX, env_var
from bzzz.config.settings import SECTIONS


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
                lines.append(f"{f.name} = {toml_value(given[f.name])}")
            elif f.default is not dataclasses.MISSING:
                lines.append(f"# {f.name} = {toml_value(f.default)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
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
        "This page is generated from the settings classes in `bzzz/config/sections_*.py`"
        " by `python -m bzzz.config`.",
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
                "(required)" if f.default is dataclasses.MISSING else f"`{toml_value(f.default)}`"
            )
            lines.append(
                f"| `{f.name}` | {default} | `{env_var(section, f.name)}` | {f.metadata['doc']} |"
            )
    return "\n".join(lines) + "\n"

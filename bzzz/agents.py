"""The agent CLIs Bzzz knows, where a node finds them, and which it can drive.

A node offers an agent (lists it among its capabilities' installed tools, so tasks
labelled `agent:NAME` come to it) only when the CLI is found and Bzzz can drive it
headless against the mesh's models; `bzzz doctor` says why any other is not offered.
The drivers themselves are in `workers.clis`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Where scripts/setup installs the agent CLIs, in a checkout (the lab and the tests look
# there): npm's prefix, and aider's own virtual environment.
SETUP_PATH = tuple(
    str(Path(__file__).resolve().parents[1] / ".tools" / part) for part in ("npm/bin", "aider/bin")
)


@dataclass(frozen=True)
class AgentCli:
    name: str  # as `agent:NAME` labels and capabilities name it
    executable: str
    package: str  # where scripts/setup installs it from
    unable: str = ""  # why Bzzz cannot drive it against the mesh's models ("": it can)
    needs_gateway: bool = False  # its API is one only the node's gateway speaks


CATALOGUE: dict[str, AgentCli] = {
    cli.name: cli
    for cli in (
        AgentCli("claude", "claude", "npm @anthropic-ai/claude-code"),
        AgentCli("codex", "codex", "npm @openai/codex"),
        # Gemini CLI speaks only Google's genai API: the gateway carries it as ollama's
        # chat, so it needs a gateway (gateway.listen) between it and the models.
        AgentCli("gemini", "gemini", "npm @google/gemini-cli", needs_gateway=True),
        AgentCli("opencode", "opencode", "npm opencode-ai"),
        AgentCli("aider", "aider", "PyPI aider-chat"),
        AgentCli("goose", "goose", "", "Bzzz has no driver for goose yet"),
        AgentCli("qwen", "qwen", "", "Bzzz has no driver for qwen yet"),
    )
}


def locate(executable: str, search_path: Sequence[str]) -> str | None:
    """The executable's path: in `search_path` first, then on PATH."""
    dirs = [str(Path(d).expanduser()) for d in search_path]
    path = os.pathsep.join([*dirs, os.environ.get("PATH", os.defpath)])
    return shutil.which(executable, path=path)


NO_GATEWAY = (
    "it speaks Google's genai API, which only the node's gateway translates for ollama,"
    " and gateway.listen is empty"
)


def offered(
    names: Iterable[str], search_path: Sequence[str], gateway: bool = True
) -> tuple[str, ...]:
    """The tools among `names` this node has and, for agent CLIs, can drive (`gateway`:
    whether the node runs its model gateway)."""
    found = []
    for name in names:
        cli = CATALOGUE.get(name)
        if cli is not None and (cli.unable or (cli.needs_gateway and not gateway)):
            continue
        if locate(cli.executable if cli else name, search_path):
            found.append(name)
    return tuple(found)

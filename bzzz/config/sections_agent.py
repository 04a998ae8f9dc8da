"""What runs a task's reasoning: [agent] (the model and the loop's budgets) and [sandbox]
(where its commands run)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bzzz.config.base import Invalid, doc, positive

SANDBOX_BACKENDS = ("auto", "docker", "bubblewrap")
# A Docker image reference: [HOST[:PORT]/]NAME[/NAME...][:TAG]
IMAGE_PATTERN = r"(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::\w[\w.-]{0,127})?"


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
    max_turns: int = doc(
        "Turns an agent CLI may take on a task, where it can be told (Claude Code's"
        " --max-turns); every CLI is bound by wall_time.",
        default=50,
    )

    def check(self) -> None:
        for key in (
            "max_steps",
            "max_turns",
            "max_tokens",
            "max_timeouts",
            "max_repeats",
            "output_chars",
        ):
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

"""Blocking probes of what this machine can do for tasks; run in scheduler threads."""

from __future__ import annotations

from bzzz.config import SandboxSettings


def probe_sandbox(settings: SandboxSettings) -> str | None:
    """None when a sandbox backend can run commands here, else what is wrong."""
    from workers.sandbox import SandboxError, choose_backend  # noqa: PLC0415 - heavy imports

    try:
        choose_backend(settings)
    except SandboxError as exc:
        return str(exc)
    return None

"""What the settings modules share: documented fields, the environment variable of a
key, and Invalid, the problem a section's check() raises."""

from __future__ import annotations

from dataclasses import field
from typing import Any

ENV_PREFIX = "BZZZ_"


def doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with its documentation, which becomes a comment in config.toml."""
    return field(metadata={"doc": text}, **kwargs)


def env_var(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


class Invalid(Exception):
    """A setting fails a check: `key` is SECTION.NAME; the loader adds where to change it."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(key)
        self.key, self.problem, self.fix = key, problem, fix


def positive(key: str, number: float) -> None:
    if number <= 0:
        raise Invalid(key, f"is {number}", "use a number greater than 0")

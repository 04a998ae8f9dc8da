"""The capability detector on machines with and without psutil, NVIDIA GPUs, ollama, agent CLIs."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bzzz.capabilities import (
    MISSES_KEPT,
    CapabilityDetector,
    CliProbe,
    GpuProbe,
    GpuReading,
    LoadProbe,
    ModelProbe,
    Reading,
    changed,
    to_message,
)
from bzzz.lab.model import LabModelServer, Scripted, Text

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ---- psutil -------------------------------------------------------------------------------


def test_load_from_psutil() -> None:
    cpu, memory = LoadProbe()()
    assert 0.0 <= cpu <= 100.0
    assert memory is not None
    assert 0.0 < memory <= 100.0


def test_without_psutil_cpu_comes_from_the_load_average(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil -> ImportError
    cpu, memory = LoadProbe()()
    assert 0.0 <= cpu <= 100.0
    assert memory is None


def test_failing_psutil_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = types.SimpleNamespace(
        cpu_percent=lambda interval=None: (_ for _ in ()).throw(OSError("no /proc")),
        virtual_memory=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "psutil", broken)
    probe = LoadProbe()
    cpu, memory = probe()
    assert 0.0 <= cpu <= 100.0
    assert memory is None


# ---- NVML -----------------------------------------------------------------------------------


class NVMLError(Exception):
    pass


def fake_nvml(devices: list[dict[str, Any] | None], init_fails: bool = False) -> types.ModuleType:
    """A stand-in for nvidia-ml-py's `pynvml` with the calls and shapes the probe uses;
    no GPU or NVIDIA driver exists on these machines. `None` is a device that errors."""
    module = types.ModuleType("pynvml")
    module.NVMLError = NVMLError  # type: ignore[attr-defined]
    module.shut_down = False  # type: ignore[attr-defined]

    def init() -> None:
        if init_fails:
            raise NVMLError("NVML Shared Library Not Found")

    def handle(index: int) -> dict[str, Any]:
        device = devices[index]
        if device is None:
            raise NVMLError("Unknown Error")
        return device

    def shutdown() -> None:
        module.shut_down = True  # type: ignore[attr-defined]

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(devices)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: h["name"]  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h["util"], memory=0)  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        used=h["used"], total=h["total"], free=h["total"] - h["used"]
    )
    return module


def test_no_nvidia_driver_means_no_gpus() -> None:
    probe = GpuProbe()  # the real nvidia-ml-py: this machine has no driver
    assert probe() == ()
    probe.close()


def test_without_nvidia_ml_py_there_are_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert GpuProbe()() == ()


def test_gpus_are_read_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml(
        [
            {"name": b"NVIDIA H100", "util": 37, "used": 10 * 2**30, "total": 80 * 2**30},
            {"name": "NVIDIA H100", "util": 3, "used": 2**30, "total": 80 * 2**30},
        ]
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    probe = GpuProbe()
    assert probe() == (
        GpuReading(
            index=0,
            name="NVIDIA H100",
            utilization=37.0,
            memory_used_mb=10240,
            memory_total_mb=81920,
        ),
        GpuReading(
            index=1, name="NVIDIA H100", utilization=3.0, memory_used_mb=1024, memory_total_mb=81920
        ),
    )
    probe.close()
    assert nvml.shut_down  # type: ignore[attr-defined]


def test_one_failing_gpu_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules,
        "pynvml",
        fake_nvml([None, {"name": "A", "util": 5, "used": 0, "total": 2**30}]),
    )
    assert [gpu.index for gpu in GpuProbe()()] == [1]


def test_nvml_that_fails_to_start_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([{"name": "A"}], init_fails=True))
    assert GpuProbe()() == ()


# ---- ollama ---------------------------------------------------------------------------------


@pytest.fixture
def ollama_tags() -> Iterator[str]:
    """An HTTP server answering ollama's /api/tags the way ollama does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/api/tags":
                self.send_error(404)
                return
            body = json.dumps(
                {
                    "models": [
                        {
                            "name": name,
                            "model": name,
                            "modified_at": "2026-01-01T00:00:00Z",
                            "size": 4_000_000_000,
                            "digest": "0" * 64,
                            "details": {
                                "format": "gguf",
                                "family": "llama",
                                "parameter_size": "8B",
                            },
                        }
                        for name in ("mistral:latest", "llama3:8b")
                    ]
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_models_come_from_the_ollama_server(ollama_tags: str) -> None:
    assert ModelProbe(ollama_tags, timeout=2.0)() == ("llama3:8b", "mistral:latest")


def test_ollama_down_means_no_models() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    assert ModelProbe(f"http://127.0.0.1:{port}", timeout=2.0)() == ()


def test_a_model_server_that_misses_a_reading_or_two_keeps_its_models() -> None:
    server = LabModelServer(models={"lab": Scripted([Text("hi")])}).start()
    probe = ModelProbe(server.url, timeout=2.0)
    try:
        assert probe() == ("lab:latest",)
    finally:
        server.stop()
    assert [probe() for _ in range(MISSES_KEPT)] == [("lab:latest",)] * MISSES_KEPT
    assert probe() == ()  # gone for longer: no models


def test_a_hung_ollama_server_costs_at_most_the_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # accepts connections into the backlog, never answers
        started = time.monotonic()
        assert ModelProbe(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.5)() == ()
        assert time.monotonic() - started < 2.0


# ---- agent CLIs -----------------------------------------------------------------------------


def test_agent_clis_are_found_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("claude", "gemini"):
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    (tmp_path / "codex").write_text("not executable")
    monkeypatch.setenv("PATH", str(tmp_path))
    # gemini is found, but needs the node's gateway (it speaks only Google's genai API)
    assert CliProbe(["ollama", "gemini", "claude", "codex"])() == ("gemini", "claude")
    assert CliProbe(["gemini", "claude"], gateway=False)() == ("claude",)
    elsewhere = tmp_path / "tools"
    elsewhere.mkdir()
    (tmp_path / "codex").rename(elsewhere / "codex")
    (elsewhere / "codex").chmod(0o755)
    assert CliProbe(["claude", "codex"], [str(elsewhere)])() == ("claude", "codex")


# ---- the detector and the message -----------------------------------------------------------


def test_detector_on_this_machine(ollama_tags: str) -> None:
    detector = CapabilityDetector.for_machine(ollama_tags, 2.0, ["sh", "no-such-agent"])
    reading = detector.read()
    detector.close()
    assert reading.models == ("llama3:8b", "mistral:latest")
    assert reading.installed == ("sh",)
    assert reading.gpus == ()


def reading(**changes: Any) -> Reading:
    base: dict[str, Any] = {
        "cpu": 10.0,
        "memory": 50.0,
        "gpus": (),
        "models": ("llama3",),
        "installed": (),
    }
    return Reading(**{**base, **changes})


def test_message_follows_the_brief_with_per_gpu_detail() -> None:
    gpus = (GpuReading(0, "A", 30.0, 1, 2), GpuReading(1, "B", 10.0, 1, 2))
    message = to_message("n1", reading(gpus=gpus), "busy", T0)
    assert (message.node_id, message.cpu, message.gpu, message.status) == ("n1", 10.0, 20.0, "busy")
    assert message.gpus is not None
    assert [gpu.name for gpu in message.gpus] == ["A", "B"]
    assert to_message("n1", reading(), "idle", T0).gpu == 0.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, False),
        ({"cpu": 19.0}, False),
        ({"cpu": 20.0}, True),
        ({"memory": 61.0}, True),
        ({"models": ("llama3", "mistral")}, True),
        ({"installed": ("claude",)}, True),
        ({"gpus": (GpuReading(0, "A", 0.0, 0, 1),)}, True),
    ],
)
def test_what_counts_as_a_change(change: dict[str, Any], expected: bool) -> None:
    before = to_message("n", reading(), "idle", T0)
    assert (
        changed(before, to_message("n", reading(**change), "idle", T0), load_change=10.0)
        is expected
    )
    assert changed(None, before, load_change=10.0)
    assert changed(before, to_message("n", reading(), "busy", T0), load_change=10.0)

"""What this machine offers: CPU/memory load, GPUs, ollama models, agent CLIs.

Every probe may be missing or failing (no GPU, no NVIDIA driver, ollama down,
psutil unavailable): that is a normal machine, reported as "none", never an
error. Probes block (ollama is asked over HTTP with a timeout), so the detector
runs in a scheduler thread, never on the trio thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bzzz.agents import offered
from bzzz.protocol import Capabilities, GpuDevice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization: float
    memory_used_mb: int
    memory_total_mb: int


@dataclass(frozen=True)
class Reading:
    cpu: float
    memory: float | None
    gpus: tuple[GpuReading, ...]
    models: tuple[str, ...]
    installed: tuple[str, ...]


class Probe(Protocol):
    def __call__(self) -> Any: ...


class _Quiet:
    """Logs a probe's failure once, and its recovery once, instead of every reading."""

    def __init__(self, name: str, then: str = "reporting none") -> None:
        self.name = name
        self.then = then
        self.failing: str | None = None

    def failed(self, exc: BaseException) -> None:
        summary = f"{type(exc).__name__}: {exc}"
        if summary != self.failing:
            log.info("%s unavailable (%s); %s", self.name, summary, self.then)
        self.failing = summary

    def ok(self) -> None:
        if self.failing is not None:
            log.info("%s available again", self.name)
        self.failing = None


class LoadProbe:
    """CPU and memory use in percent (psutil; load average as a fallback for CPU)."""

    def __init__(self) -> None:
        self._quiet = _Quiet("psutil")
        try:
            import psutil  # noqa: PLC0415 - optional at run time by design

            self._psutil: Any = psutil
            psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        except Exception as exc:
            self._psutil = None
            self._quiet.failed(exc)

    def __call__(self) -> tuple[float, float | None]:
        if self._psutil is not None:
            try:
                cpu = float(self._psutil.cpu_percent(interval=None))
                memory = float(self._psutil.virtual_memory().percent)
            except Exception as exc:
                self._quiet.failed(exc)
            else:
                self._quiet.ok()
                return _percent(cpu), _percent(memory)
        try:
            per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
        except OSError:
            return 0.0, None
        return _percent(per_core * 100.0), None


class GpuProbe:
    """Utilization and memory per NVIDIA GPU through NVML (nvidia-ml-py)."""

    def __init__(self) -> None:
        self._quiet = _Quiet("NVML")
        self._nvml: Any = None
        try:
            import pynvml  # noqa: PLC0415

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception as exc:
            self._quiet.failed(exc)

    def __call__(self) -> tuple[GpuReading, ...]:
        nvml = self._nvml
        if nvml is None:
            return ()
        try:
            count = nvml.nvmlDeviceGetCount()
        except Exception as exc:
            self._quiet.failed(exc)
            return ()
        readings = []
        failure: Exception | None = None
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as exc:  # one bad device does not hide the others
                failure = exc
                continue
            readings.append(
                GpuReading(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    utilization=_percent(float(utilization)),
                    memory_used_mb=int(memory.used) // 2**20,
                    memory_total_mb=int(memory.total) // 2**20,
                )
            )
        if failure is None:
            self._quiet.ok()
        else:
            self._quiet.failed(failure)
        return tuple(readings)

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                log.debug("NVML shutdown failed", exc_info=True)
            self._nvml = None


MISSES_KEPT = 2  # readings in a row a model server may miss before its models are dropped


class ModelProbe:
    """Models installed on the configured ollama server, asked with a timeout. A server
    that misses a reading or two (busy, slow to list) keeps its models: dropping them at
    once would take them out of the mesh's pool, and its tasks, for a glitch."""

    def __init__(self, host: str, timeout: float) -> None:
        then = f"keeping its models for {MISSES_KEPT} readings, then reporting none"
        self._quiet = _Quiet(f"ollama at {host}", then)
        self._known: tuple[str, ...] = ()
        self._misses = 0
        self._client: Any = None
        try:
            import ollama  # noqa: PLC0415

            self._client = ollama.Client(host=host, timeout=timeout)
        except Exception as exc:
            self._quiet.failed(exc)

    def __call__(self) -> tuple[str, ...]:
        if self._client is None:
            return ()
        try:
            response = self._client.list()
            names = sorted({str(model.model) for model in response.models if model.model})
        except Exception as exc:
            self._quiet.failed(exc)
            self._misses += 1
            return self._known if self._misses <= MISSES_KEPT else ()
        self._quiet.ok()
        self._misses, self._known = 0, tuple(names)
        return self._known


class CliProbe:
    """Command-line tools found in `search_path` or on PATH; of the agent CLIs, only those
    Bzzz can drive (bzzz.agents)."""

    def __init__(
        self, names: Sequence[str], search_path: Sequence[str] = (), gateway: bool = True
    ) -> None:
        self._names = tuple(names)
        self._search_path = tuple(search_path)
        self._gateway = gateway

    def __call__(self) -> tuple[str, ...]:
        return offered(self._names, self._search_path, self._gateway)


class CapabilityDetector:
    def __init__(
        self,
        load: Callable[[], tuple[float, float | None]],
        gpus: Callable[[], tuple[GpuReading, ...]],
        models: Callable[[], tuple[str, ...]],
        clis: Callable[[], tuple[str, ...]],
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self._load = load
        self._gpus = gpus
        self._models = models
        self._clis = clis
        self._close = close

    @classmethod
    def for_machine(
        cls,
        ollama_host: str,
        ollama_timeout: float,
        agent_clis: Sequence[str],
        agent_path: Sequence[str] = (),
        gateway: bool = True,
    ) -> CapabilityDetector:
        gpu_probe = GpuProbe()
        return cls(
            load=LoadProbe(),
            gpus=gpu_probe,
            models=ModelProbe(ollama_host, ollama_timeout),
            clis=CliProbe(agent_clis, agent_path, gateway),
            close=gpu_probe.close,
        )

    def read(self) -> Reading:
        cpu, memory = self._load()
        return Reading(
            cpu=cpu, memory=memory, gpus=self._gpus(), models=self._models(), installed=self._clis()
        )

    def close(self) -> None:
        self._close()


def to_message(
    node_id: str,
    reading: Reading,
    status: str,
    timestamp: datetime,
    polls: tuple[str, ...] = (),
    *,
    slots: int | None = None,
    cannot_run: list[str] | None = None,
    gateway: tuple[int, int] | None = None,
) -> Capabilities:
    gpus = [GpuDevice(**vars(gpu)) for gpu in reading.gpus]
    mean_gpu = sum(gpu.utilization for gpu in reading.gpus) / len(gpus) if gpus else 0.0
    return Capabilities(
        node_id=node_id,
        cpu=round(reading.cpu, 1),
        gpu=round(mean_gpu, 1),
        models=list(reading.models),
        installed=list(reading.installed),
        status=status,
        memory=None if reading.memory is None else round(reading.memory, 1),
        gpus=gpus,
        polls=list(polls),
        slots=slots,
        cannot_run=cannot_run,
        gateway_slots=gateway[0] if gateway else None,
        gateway_calls=gateway[1] if gateway else None,
        timestamp=timestamp,
    )


def changed(previous: Capabilities | None, current: Capabilities, load_change: float) -> bool:
    """Whether `current` differs enough from the last published message to publish again."""
    if previous is None or _facts(previous) != _facts(current):
        return True
    loads = [(previous.cpu, current.cpu), (previous.gpu, current.gpu)]
    if previous.memory is not None and current.memory is not None:
        loads.append((previous.memory, current.memory))
    return any(abs(before - after) >= load_change for before, after in loads)


def _facts(message: Capabilities) -> tuple[object, ...]:
    """What must be published as soon as it changes (unlike loads, which wiggle)."""
    return (
        message.models,
        message.installed,
        message.status,
        message.slots,
        [g.name for g in message.gpus or ()],
        message.polls or [],
        message.cannot_run or [],
        message.gateway_slots,
        message.gateway_calls,
    )


def _percent(value: float) -> float:
    return min(100.0, max(0.0, value))

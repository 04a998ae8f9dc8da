"""Periodic capability and presence publishing, with the clock and the machine injected."""

from __future__ import annotations

import threading

import trio

from bzzz.capabilities import CapabilityDetector, GpuReading
from bzzz.config import CapabilitySettings
from bzzz.jobs import PeriodicJobs, TrioBridge
from bzzz.protocol import Capabilities, Message, PresencePing


class Machine:
    def __init__(self) -> None:
        self.cpu = 5.0
        self.models: tuple[str, ...] = ("llama3",)

    def detector(self) -> CapabilityDetector:
        def no_gpus() -> tuple[GpuReading, ...]:
            return ()

        return CapabilityDetector(
            load=lambda: (self.cpu, 40.0),
            gpus=no_gpus,
            models=lambda: self.models,
            clis=lambda: ("claude",),
        )


def make_jobs(machine: Machine, clock: list[float], sent: list[Message]) -> PeriodicJobs:
    return PeriodicJobs(
        "n1",
        settings=CapabilitySettings(max_interval=30.0, load_change=10.0),
        detector=machine.detector(),
        publish=sent.append,
        status=lambda: "idle",
        clock=lambda: clock[0],
    )


def test_capabilities_are_published_on_change_and_at_least_every_max_interval() -> None:
    machine, clock, sent = Machine(), [0.0], []
    jobs = make_jobs(machine, clock, sent)
    jobs.capabilities_job()
    assert len(sent) == 1
    first = sent[0]
    assert isinstance(first, Capabilities)
    assert (first.node_id, first.cpu, first.models, first.installed) == (
        "n1",
        5.0,
        ["llama3"],
        ["claude"],
    )

    clock[0] = 5.0
    machine.cpu = 9.0  # small wiggle: not a change
    jobs.capabilities_job()
    assert len(sent) == 1

    clock[0] = 10.0
    machine.models = ("llama3", "mistral")  # a model was installed: publish at once
    jobs.capabilities_job()
    assert len(sent) == 2

    clock[0] = 39.9
    jobs.capabilities_job()
    assert len(sent) == 2
    clock[0] = 40.0  # 30 s since the last publish
    jobs.capabilities_job()
    assert len(sent) == 3


def test_presence_pings_slow_down_as_the_mesh_grows() -> None:
    clock, sent, peers = [0.0], [], [2]
    jobs = PeriodicJobs(
        "n1",
        settings=CapabilitySettings(presence_interval=5.0, presence_per_peer=1.5),
        detector=Machine().detector(),
        publish=sent.append,
        status=lambda: "idle",
        live_peers=lambda: peers[0],
        clock=lambda: clock[0],
    )

    def ticks(until: float) -> list[float]:
        """Run the job every 5 s (its schedule) up to `until`; the times it pinged."""
        times = []
        while clock[0] < until:
            count = len(sent)
            jobs.presence_job()
            if len(sent) > count:
                times.append(clock[0])
            clock[0] += 5.0
        return times

    assert ticks(20.0) == [0.0, 5.0, 10.0, 15.0]  # 2 peers: every 5 s
    ping = sent[-1]
    assert isinstance(ping, PresencePing)
    assert (ping.node_id, ping.interval_s) == ("n1", 5.0)
    peers[0] = 9  # 9 peers: every 13.5 s, reached in steps that at most double
    assert ticks(70.0) == [25.0, 40.0, 55.0]
    assert [ping.interval_s for ping in sent[-3:]] == [10.0, 13.5, 13.5]  # type: ignore[attr-defined]


def test_scheduler_runs_jobs_in_threads_and_publishes_through_the_trio_bridge() -> None:
    received: list[tuple[Message, bool]] = []

    async def main() -> None:
        trio_thread = threading.current_thread()
        both = trio.Event()

        async def publish_in_trio(message: Message) -> None:
            received.append((message, threading.current_thread() is trio_thread))
            kinds = {type(m) for m, _ in received}
            if {Capabilities, PresencePing} <= kinds:
                both.set()

        bridge = TrioBridge(trio.lowlevel.current_trio_token())
        jobs = PeriodicJobs(
            "n1",
            settings=CapabilitySettings(check_interval=0.1, presence_interval=0.1),
            detector=Machine().detector(),
            publish=lambda message: bridge.run(publish_in_trio, message),
            status=lambda: "idle",
        )
        jobs.start()
        try:
            with trio.fail_after(10):
                await both.wait()
        finally:
            await trio.to_thread.run_sync(jobs.shutdown)

    trio.run(main)
    assert all(in_trio for _, in_trio in received)


def test_bridge_is_a_no_op_once_trio_has_finished() -> None:
    async def grab() -> trio.lowlevel.TrioToken:
        return trio.lowlevel.current_trio_token()

    token = trio.run(grab)

    async def never_called() -> None:
        raise AssertionError("ran after trio finished")

    assert TrioBridge(token).run(never_called) is None

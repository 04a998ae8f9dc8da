"""The worker side of the node's queue: the actor that runs a claimed task.

It reports to the node on the events queue (started, heartbeats, finished) and
never touches the mesh. Before it starts a task, and whenever the executor asks,
it checks on the forge that its node still holds the task's claim:
a node that lost its lease (partitioned, or restarted after another took over)
must not work on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from dramatiq.message import Message
from dramatiq.middleware import CurrentMessage

from bzzz.claims import ledger
from bzzz.config import Settings
from bzzz.forge.api import Forge, ForgeError
from bzzz.forge.token import Token
from bzzz.queue.delivery import DELIVERIES
from bzzz.work import (
    DECLINED,
    EVENTS_QUEUE,
    HANDED,
    RUN_TASK,
    TASK_EVENT,
    TASKS_QUEUE,
    EventKind,
    TaskEvent,
    TaskSpec,
)
from workers.executors import Executor, Outcome
from workers.presence import Presence

log = logging.getLogger(__name__)


def send_event(broker: Broker, event: TaskEvent) -> None:
    broker.enqueue(
        Message(
            queue_name=EVENTS_QUEUE,
            actor_name=TASK_EVENT,
            args=(event.to_dict(),),
            kwargs={},
            options={},
        )
    )


class Lease:
    """Whether the forge still names this task's claim comment as its holder."""

    def __init__(self, forge: Forge, settings: Settings, spec: TaskSpec) -> None:
        self._forge = forge
        self._settings = settings
        self._spec = spec

    def holds(self) -> bool:
        tasks = self._settings.tasks
        try:
            comments = self._forge.get_comments(self._spec.repo, self._spec.number)
        except ForgeError as exc:
            log.warning(
                "%s: cannot check the claim (%s); assuming it is lost", self._spec.task_id, exc
            )
            return False
        notes = ledger.claims(comments, tasks.trusted_associations, tasks.trusted_authors)
        verdict = ledger.verdict(notes, datetime.now(UTC), self._settings.claims.clock_skew)
        holder = verdict.holder
        if holder is None or holder.comment_id != self._spec.comment_id:
            return False
        # The same comment may have been claimed again since: the nonce tells.
        return not self._spec.nonce or holder.nonce == self._spec.nonce


class _Context:
    def __init__(
        self,
        lease: Lease,
        settings: Settings,
        forge: Forge,
        token: Token | None,
        audit: Callable[[dict[str, Any]], None] = lambda entry: None,
    ) -> None:
        self._lease = lease
        self.audit = audit
        self.settings = settings
        self.forge = forge
        self.token = token
        self.last_progress = ""

    def still_holds(self) -> bool:
        return self._lease.holds()

    def progress(self, text: str) -> None:
        self.last_progress = text


def declare(
    broker: Broker,
    settings: Settings,
    forge: Forge,
    executor: Executor,
    token: Token | None = None,
    *,
    presence: Presence | None = None,
) -> Any:
    """Declare the run_task actor on `broker`; returns it. `presence` counts the tasks
    this process runs, for its beats."""
    workers = settings.workers
    me = f"{socket.gethostname()}:{os.getpid()}"

    def run_task(task: dict[str, Any]) -> None:
        spec = TaskSpec.from_dict(task)
        message = CurrentMessage.get_current_message()
        deliveries = int((message.options if message else {}).get(DELIVERIES, 1))
        lease = Lease(forge, settings, spec)
        started = time.monotonic()

        def event(kind: EventKind, **details: Any) -> None:
            task_event = TaskEvent(
                spec.task_id, spec.comment_id, kind, me, nonce=spec.nonce, **details
            )
            send_event(broker, task_event)

        def finish(outcome: Outcome) -> None:
            if outcome.succeeded:
                log.info("%s: done: %s", spec.task_id, outcome.result_url)
            elif outcome.result_type == HANDED:
                log.info("%s: %s", spec.task_id, outcome.reason)
            elif outcome.result_type == DECLINED:
                log.warning("%s: this node cannot run it: %s", spec.task_id, outcome.reason)
            else:
                log.warning("%s: failed: %s", spec.task_id, outcome.reason)
            event(
                EventKind.FINISHED,
                succeeded=outcome.succeeded,
                result_type=outcome.result_type,
                result_url=outcome.result_url,
                reason=outcome.reason,
                duration_ms=int((time.monotonic() - started) * 1000),
            )

        if not lease.holds():  # one read; it keeps a stale message from running twice
            log.info("%s: dropped: the claim it was queued under is no longer held", spec.task_id)
            return
        if deliveries > workers.max_deliveries:
            reason = f"its worker died {deliveries - 1} times (killed, or out of memory)"
            log.error("%s: %s; giving it up", spec.task_id, reason)
            finish(Outcome(False, "failure", spec.issue_url, reason))
            return
        event(EventKind.STARTED)
        context = _Context(
            lease, settings, forge, token, lambda entry: event(EventKind.AUDIT, entry=entry)
        )
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(workers.heartbeat):
                event(EventKind.HEARTBEAT, progress=context.last_progress)

        heart = threading.Thread(target=beat, name=f"heartbeat {spec.task_id}", daemon=True)
        heart.start()
        if presence is not None:
            presence.task_started()
        try:
            outcome = executor(spec, context)
        except Exception as exc:  # the executor's failure is the task's result, not ours
            log.exception("%s: the executor failed", spec.task_id)
            outcome = Outcome(False, "failure", spec.issue_url, f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            heart.join()
            if presence is not None:
                presence.task_ended()
        finish(outcome)

    return dramatiq.actor(
        actor_name=RUN_TASK,
        queue_name=TASKS_QUEUE,
        broker=broker,
        max_retries=0,  # a failed task is retried by another peer, not here
        time_limit=int(workers.time_limit * 1000),
    )(run_task)

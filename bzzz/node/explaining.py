"""Why a task was (not) claimed, asked of every live node (`bzzz tasks explain TASK`, the
dashboard's task page). Trio-owned; the words are bzzz.claims.why's.

The protocol (`/bzzz/explain/1.0.0`), one exchange per stream, length-prefixed JSON:
the asker sends `{"task_id": ...}`; the node answers `{"node", "line", "steps"}`: its
one-line reason and its short record of the task's moves.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from bzzz.claims.actions import TaskClaim
from bzzz.claims.driver import ClaimDriver
from bzzz.claims.matching import position
from bzzz.claims.why import Decisions, Situation, explain
from bzzz.config.sections_work import TaskSettings
from bzzz.forge.api import Forge, ForgeError
from bzzz.network.framing import FramingError, receive_message, reset, send_message
from bzzz.node.membership import Membership
from bzzz.node.offering import Offering
from bzzz.tasks.intake import why_not_a_task
from bzzz.tasks.poller import Poller

log = logging.getLogger(__name__)

PROTOCOL = TProtocol("/bzzz/explain/1.0.0")
TIMEOUT = 5.0  # seconds a peer has to answer
MAX_REQUEST = 1024
MAX_REPLY = 16 * 1024


@dataclass
class Explainer:
    host: IHost
    node: str
    claims: ClaimDriver | None
    offering: Offering
    poller: Poller | None
    membership: Membership
    max_attempts: int
    forge: Forge | None = None  # to read an issue this node never took for a task
    intake: TaskSettings | None = None
    clock: Callable[[], float] = time.monotonic
    decisions: Decisions = field(default_factory=Decisions)
    dropped: int = 0

    def start(self) -> None:
        self.host.set_stream_handler(PROTOCOL, self._serve)

    def moved(self, task: TaskClaim) -> None:
        """The claim book moved a task: keep it in the task's record."""
        self.decisions.moved(task, datetime.now(UTC).isoformat())

    async def answer(self, task_id: str) -> dict[str, Any]:
        """This node's line about the task."""
        if self.claims is not None and self.claims.book.get(task_id) is None:
            line = await self._issue(task_id)
            if line:
                return {"node": self.node, "line": line, "steps": []}
        return self.answer_now(task_id)

    async def _issue(self, task_id: str) -> str:
        """For an issue of a repository this node polls that it holds no task for: why
        it is not one, as the forge says now ("" when this node does not poll it)."""
        repo, _, number = task_id.rpartition("#")
        forge, intake = self.forge, self.intake
        polled = self.poller is not None and repo in self.poller.assigned
        if forge is None or intake is None or not polled or not number.isdigit():
            return ""
        try:
            issue = await trio.to_thread.run_sync(forge.get_issue, repo, int(number))
        except ForgeError as exc:
            return f"issue #{number}: the forge could not be read ({exc})"
        reason = why_not_a_task(issue, intake)
        if reason is None:
            return f"issue #{number} is a task; this node has not announced it yet"
        return f"issue #{number} is not a task: {reason}"

    def answer_now(self, task_id: str) -> dict[str, Any]:
        """This node's line about the task, from what it knows already."""
        ignored = next(
            (i for i in (self.poller.ignored() if self.poller else ()) if i.task_id == task_id),
            None,
        )
        if self.claims is None:
            line = "this node takes part in no claims: " + "; ".join(
                self.offering.readiness.reasons or ("no forge",)
            )
        elif ignored is not None and self.claims.book.get(task_id) is None:
            line = f"issue #{task_id.rpartition('#')[2]} is not a task: {ignored.reason}"
        else:
            line = self._line(self.claims, task_id)
        return {"node": self.node, "line": line, "steps": self.decisions.of(task_id)}

    def _line(self, claims: ClaimDriver, task_id: str) -> str:
        book = claims.book
        task = book.get(task_id)
        readiness = self.offering.readiness
        place = None
        if task is not None:
            place = position(task_id, task.model, book.market, task.attempts, book.used_slots())
        situation = Situation(
            node=self.node,
            market=book.market,
            used_slots=book.used_slots(),
            max_attempts=self.max_attempts,
            readiness=() if readiness.takes_tasks else readiness.reasons,
            place=place,
        )
        return explain(task, situation, self.clock())

    async def ask_all(self, task_id: str) -> list[dict[str, Any]]:
        """Every live node's line, this node's first, then the peers' by name."""
        peers = self.membership.peers.live_peer_ids(self.clock())
        found: dict[str, dict[str, Any]] = {}
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(self._ask, peer, task_id, found)
        named = sorted(found.values(), key=lambda reply: str(reply["node"]))
        return [await self.answer(task_id), *named]

    async def _ask(self, peer: str, task_id: str, found: dict[str, dict[str, Any]]) -> None:
        name = self.membership.node_name(peer)
        try:
            with trio.fail_after(TIMEOUT):
                stream = await self.host.new_stream(ID.from_base58(peer), [PROTOCOL])
                try:
                    await send_message(stream, json.dumps({"task_id": task_id}).encode())
                    reply = json.loads(await receive_message(stream, MAX_REPLY))
                finally:
                    await stream.close()
            found[peer] = {
                "node": str(reply.get("node", name))[:64],
                "line": str(reply.get("line", ""))[:1000],
                "steps": [str(s)[:200] for s in reply.get("steps", [])][:20],
            }
        except Exception as exc:  # gone, too slow, or an older node without explain
            found[peer] = {"node": name, "line": f"(no answer: {exc or 'timed out'})", "steps": []}

    async def _serve(self, stream: INetStream) -> None:
        try:
            with trio.fail_after(TIMEOUT):
                request = json.loads(await receive_message(stream, MAX_REQUEST))
                task_id = str(request["task_id"])[:300]
                await send_message(stream, json.dumps(await self.answer(task_id)).encode())
                await stream.close()
        except (FramingError, ValueError, KeyError, TypeError) as exc:
            self.dropped += 1
            log.info("dropped an explain request: %s", exc)
            await reset(stream)
        except Exception as exc:
            log.debug("answering an explain request failed: %s", exc)
            await reset(stream)

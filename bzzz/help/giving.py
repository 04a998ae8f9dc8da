"""The helper's side: offer help where this node can give it, and give it. Trio-owned.

A help request that this node may answer (help.matching.may_offer) gets an offer on
`task_help_response`, and a consult slot is promised to it for PROMISE seconds. The
asker that takes the offer opens a help stream with the case (the issue, the steps so
far, the diff, the question); this node's model writes the advice, which goes back on
the same stream. An asker that takes another offer says so on a stream ("decline"),
which frees the promise at once.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import trio
from libp2p.abc import INetStream

from bzzz.gateway.upstream import Unreachable, Upstream
from bzzz.help.consult import (
    MAX_CONTEXT_BYTES,
    Consult,
    advice_from,
    chat_body,
    parse_consult,
)
from bzzz.help.handover import HandOverCase, parse_case
from bzzz.help.matching import Helper, listed, may_offer
from bzzz.network.framing import close, receive_message, reset, send_message
from bzzz.protocol import Message, TaskHelpRequest, TaskHelpResponse, utc_now

log = logging.getLogger(__name__)

PROMISE = 5.0  # seconds a consult slot is held for an offer not yet taken (or declined)
# Seconds an offer to take a task over stands: the holder edits its claim on the forge
# before it sends the case.
HANDOFF_PROMISE = 90.0
KEPT = 50  # consults remembered for the status


@dataclass(frozen=True)
class Given:
    """A consult this node gave (or failed to give)."""

    task_id: str
    asker: str
    model: str
    seconds: float
    outcome: str  # "advice", "taken over", or why not
    kind: str = "consult"  # or "handoff": a task handed on to this node


class Giver:
    def __init__(
        self,
        *,
        name: str,
        own: Callable[[], tuple[tuple[str, ...], tuple[str, ...]]],
        room: Callable[[str], int],
        take: Callable[[HandOverCase, str], Awaitable[str]],
        publish: Callable[[Message], Awaitable[None]],
        upstream: Upstream,
        slots: int,
        eta: int,
        consult_timeout: float,
    ) -> None:
        self._name = name
        self._own = own  # this node's (models, agent CLIs) as last read
        self._room = room  # tasks this node could claim now, were it handed this one
        self._take = take  # claim a task handed on by the named node: "" or why not
        self._handoffs: dict[str, tuple[float, str, str, str]] = {}  # offers to take a task
        # over: request id -> (until when, the asking node, its peer ID, the task)
        self._publish = publish
        self._upstream = upstream
        self.slots = slots
        self._eta = eta
        self._consult_timeout = consult_timeout
        self._promised: dict[str, float] = {}  # request id -> until when
        self.giving = 0
        self.offered = 0
        self.given: deque[Given] = deque(maxlen=KEPT)

    def free(self) -> int:
        now = trio.current_time()
        self._promised = {rid: until for rid, until in self._promised.items() if until > now}
        return max(0, self.slots - self.giving - len(self._promised))

    async def on_request(self, request: TaskHelpRequest, origin: str = "") -> None:
        """A peer (`origin`: its peer ID) asks for help: offer it if this node can give
        it now."""
        models, installed = self._own()
        if request.request_id is None:  # a brief-only request: no way to take an offer
            return
        me = Helper(self._name, models, installed, self.free(), self._room(request.task_id))
        if not may_offer(request, me):
            return
        now = trio.current_time()
        if request.kind == "handoff":
            self._handoffs = {r: h for r, h in self._handoffs.items() if h[0] > now}
            self._handoffs[request.request_id] = (
                now + HANDOFF_PROMISE,
                request.from_node,
                origin,
                request.task_id,
            )
        else:
            self._promised[request.request_id] = now + PROMISE
        self.offered += 1
        offer = TaskHelpResponse(
            task_id=request.task_id,
            from_node=self._name,
            can_help=True,
            capabilities=listed(request.requested_capability, models, installed),
            eta_seconds=self._eta,
            timestamp=utc_now(),
            request_id=request.request_id,
            to_node=request.from_node,
            busy=self.giving,
        )
        log.info("offering help with %s to %s", request.task_id, request.from_node)
        await self._publish(offer)

    async def serve(self, stream: INetStream) -> None:
        """A help stream from an asker: a consult to give, a task to take over, or an
        offer declined."""
        asker = str(stream.muxed_conn.peer_id)
        try:
            with trio.fail_after(30):
                data = await receive_message(stream, MAX_CONTEXT_BYTES)
            kind, request_id = _kind(data)
            if kind == "decline":
                self._promised.pop(request_id, None)
                self._handoffs.pop(request_id, None)
                await close(stream)
                return
            case = parse_case(data) if kind == "handoff" else parse_consult(data)
        except (ValueError, trio.TooSlowError) as exc:  # FramingError, BadConsult, BadHandOver
            log.info("a help stream from %s ended: %s", asker, exc)
            await reset(stream)
            return
        if isinstance(case, HandOverCase):
            await self._take_over(stream, case, asker)
        else:
            await self._give(stream, case, asker)

    async def _give(self, stream: INetStream, consult: Consult, asker: str) -> None:
        self._promised.pop(consult.request_id, None)
        if self.giving >= self.slots:
            await _answer(stream, {"error": "busy: no consult slot free"})
            return
        self.giving += 1
        started = trio.current_time()
        model, answer = "", {}
        try:
            model = self.model_for(consult.capability)
            answer = await self._advise(model, consult)
        finally:
            self.giving -= 1
            outcome = "advice" if "advice" in answer else str(answer.get("error", "cut off"))
            seconds = trio.current_time() - started
            self.given.append(Given(consult.task_id, asker, model, seconds, outcome[:200]))
        await _answer(stream, answer)

    async def _take_over(self, stream: INetStream, case: HandOverCase, asker: str) -> None:
        """A holder hands us the task we offered to take: claim it in its place, and
        answer once the forge says whether we hold it. Only the node whose request we
        answered may hand it on, and only that task."""
        until, holder, origin, task_id = self._handoffs.pop(case.request_id, (0.0, "", "", ""))
        if until < trio.current_time() or task_id != case.task_id or origin != asker:
            await _answer(stream, {"error": "no offer of this node stands for that task"})
            return
        started = trio.current_time()
        why = await self._take(case, holder)
        log.info("%s: %s", task_id, why or f"taken over from {holder}")
        seconds = trio.current_time() - started
        outcome = why[:200] or "taken over"
        self.given.append(Given(task_id, asker, "", seconds, outcome, kind="handoff"))
        await _answer(stream, {"error": why} if why else {"taken": True})

    def model_for(self, capability: str) -> str:
        """The asked-for model if this node has it, else its first model."""
        models, _ = self._own()
        return next(iter(listed(capability, models, ())), "")

    async def _advise(self, model: str, consult: Consult) -> dict[str, str]:
        if not model:
            return {"error": "no model here"}
        try:
            with trio.fail_after(self._consult_timeout):
                reply = await self._upstream.call(
                    "POST", "/api/chat", chat_body(model, consult), first_byte=self._consult_timeout
                )
                data = b"".join([chunk async for chunk in reply.chunks])
            advice = advice_from(data)
        except (Unreachable, trio.TooSlowError, ValueError) as exc:
            log.warning("could not advise on %s: %s", consult.task_id, exc or "too slow")
            return {"error": f"the helper's model failed: {exc or 'too slow'}"}
        log.info("advised on %s with %s", consult.task_id, model)
        return {"advice": advice, "model": model, "node": self._name}


def _kind(data: bytes) -> tuple[str, str]:
    """A help stream's message's type ("decline", "handoff"; "" for a consult) and the
    request it is about."""
    try:
        message = json.loads(data)
    except ValueError:
        return "", ""
    if isinstance(message, dict) and message.get("type") in ("decline", "handoff"):
        return str(message["type"]), str(message.get("request_id"))
    return "", ""


async def _answer(stream: INetStream, answer: Mapping[str, str | bool]) -> None:
    try:
        await send_message(stream, json.dumps(answer).encode())
    except Exception as exc:  # the asker went away
        log.info("the asker left before the advice: %s", exc)
        await reset(stream)
        return
    await close(stream)

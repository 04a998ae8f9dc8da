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
from collections.abc import Awaitable, Callable
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
from bzzz.help.matching import Helper, listed, may_offer
from bzzz.network.framing import close, receive_message, reset, send_message
from bzzz.protocol import Message, TaskHelpRequest, TaskHelpResponse, utc_now

log = logging.getLogger(__name__)

PROMISE = 5.0  # seconds a consult slot is held for an offer not yet taken (or declined)
KEPT = 50  # consults remembered for the status


@dataclass(frozen=True)
class Given:
    """A consult this node gave (or failed to give)."""

    task_id: str
    asker: str
    model: str
    seconds: float
    outcome: str  # "advice", or why not


class Giver:
    def __init__(
        self,
        *,
        name: str,
        own: Callable[[], tuple[tuple[str, ...], tuple[str, ...]]],
        publish: Callable[[Message], Awaitable[None]],
        upstream: Upstream,
        slots: int,
        eta: int,
        consult_timeout: float,
    ) -> None:
        self._name = name
        self._own = own  # this node's (models, agent CLIs) as last read
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

    async def on_request(self, request: TaskHelpRequest) -> None:
        """A peer asks for help: offer it if this node can give it now."""
        models, installed = self._own()
        if request.request_id is None:  # a brief-only request: no way to take an offer
            return
        if not may_offer(request, Helper(self._name, models, installed, self.free())):
            return
        self._promised[request.request_id] = trio.current_time() + PROMISE
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
        """A help stream from an asker: a consult to give, or an offer declined."""
        asker = str(stream.muxed_conn.peer_id)
        try:
            with trio.fail_after(30):
                data = await receive_message(stream, MAX_CONTEXT_BYTES)
            declined = _declined(data)
            if declined is not None:
                self._promised.pop(declined, None)
                await close(stream)
                return
            consult = parse_consult(data)
        except (ValueError, trio.TooSlowError) as exc:  # FramingError, BadConsult too
            log.info("a help stream from %s ended: %s", asker, exc)
            await reset(stream)
            return
        self._promised.pop(consult.request_id, None)
        if self.giving >= self.slots:
            await _answer(stream, {"error": "busy: no consult slot free"})
            return
        self.giving += 1
        started = trio.current_time()
        model, answer = "", {}
        try:
            model = self._model_for(consult.capability)
            answer = await self._advise(model, consult)
        finally:
            self.giving -= 1
            outcome = "advice" if "advice" in answer else str(answer.get("error", "cut off"))
            seconds = trio.current_time() - started
            self.given.append(Given(consult.task_id, asker, model, seconds, outcome[:200]))
        await _answer(stream, answer)

    def _model_for(self, capability: str) -> str:
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


def _declined(data: bytes) -> str | None:
    """The request ID of an offer the asker declined, if that is what `data` says."""
    try:
        message = json.loads(data)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") == "decline":
        return str(message.get("request_id"))
    return None


async def _answer(stream: INetStream, answer: dict[str, str]) -> None:
    try:
        await send_message(stream, json.dumps(answer).encode())
    except Exception as exc:  # the asker went away
        log.info("the asker left before the advice: %s", exc)
        await reset(stream)
        return
    await close(stream)

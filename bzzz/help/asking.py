"""The asker's side: a task's worker wants help; this node asks the mesh, gathers offers
for the bid window, takes the best (help.matching.rank), sends the case over a help
stream and waits for the advice. Trio-owned.

No offer: it asks again with the hop count raised, up to `max_asks` times. A helper
that fails, or stays silent for twice its eta (at least `wait_floor` seconds): the next
offer. Once there is advice, or every ask is spent, the nodes whose offers were not
taken are told no.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from bzzz.help.consult import MAX_CONTEXT_BYTES, Consult
from bzzz.help.matching import Bid, rank
from bzzz.network.framing import close, receive_message, reset, send_message
from bzzz.protocol import Message, TaskHelpRequest, TaskHelpResponse, utc_now

log = logging.getLogger(__name__)

PROTOCOL = TProtocol("/bzzz/help/1.0.0")
KEPT = 50  # asks remembered for the status
CLOSED_KEPT = 64  # asks remembered after their bid window, to decline late offers
DECLINE_WITHIN = 5.0
ASK_WITHIN = 240.0  # seconds all asks and consults of one request may take


@dataclass
class Asked:
    """One task's request for help, as it went."""

    task_id: str
    question: str
    capability: str
    kind: str = "consult"  # or "handoff"
    asks: int = 0
    offers: list[str] = field(default_factory=list)  # nodes that offered, in order
    helper: str = ""
    model: str = ""
    outcome: str = "asking"  # "helped", "handed on", or why not
    first_offer_ms: float | None = None  # from an ask to its first offer
    accepted_ms: float | None = None  # from an ask to the helper holding the case,
    # less the bid window (which the asker waits out whatever comes)


@dataclass
class _Open:
    """An ask within its bid window: the offers so far."""

    record: Asked
    at: float  # when it was asked (trio's clock)
    bids: list[Bid] = field(default_factory=list)


class Asker:
    def __init__(
        self,
        *,
        name: str,
        host: IHost,
        publish: Callable[[Message], Awaitable[None]],
        bid_window: float,
        max_asks: int,
        wait_floor: float,
    ) -> None:
        self._name = name
        self._host = host
        self._publish = publish
        self._bid_window = bid_window
        self._max_asks = max_asks
        self._wait_floor = wait_floor
        self._open: dict[str, _Open] = {}  # asks within their bid window, by request id
        self._closed: deque[str] = deque(maxlen=CLOSED_KEPT)  # asks whose window has passed
        self._nursery: trio.Nursery | None = None
        self.asked: deque[Asked] = deque(maxlen=KEPT)
        # (task, why): no peer offered at all after every ask: a person may have to help
        self.on_unhelped: Callable[[str, str], None] | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Late offers are declined in `nursery` from now on."""
        self._nursery = nursery

    def on_offer(self, origin: ID, offer: TaskHelpResponse) -> None:
        """An offer on task_help_response: kept if it answers an open ask of ours."""
        if not offer.can_help or offer.to_node not in (None, self._name):
            return
        ask = self._open.get(offer.request_id or "")
        if ask is None:
            if offer.request_id in self._closed and self._nursery is not None:
                # Too late for its ask: say no at once, or its slot stays promised.
                late = Bid(str(origin), offer.from_node, (), offer.eta_seconds)
                self._nursery.start_soon(self._decline, late, offer.request_id)
            return
        if ask.record.first_offer_ms is None:
            ask.record.first_offer_ms = round((trio.current_time() - ask.at) * 1000, 1)
        ask.bids.append(
            Bid(
                str(origin),
                offer.from_node,
                tuple(offer.capabilities),
                offer.eta_seconds,
                offer.busy or 0,
            )
        )

    async def ask(self, consult: Consult) -> dict[str, Any]:
        """Ask until a helper advises or the asks are spent; the answer for the worker."""
        record = Asked(consult.task_id, consult.question, consult.capability)
        self.asked.append(record)
        turned_away: list[tuple[str, Bid]] = []  # (the ask it answered, the offer)
        try:
            with trio.move_on_after(ASK_WITHIN) as overall:
                answer = await self._asks(consult, record, turned_away)
            if overall.cancelled_caught:
                record.outcome = f"no advice within {ASK_WITHIN:.0f} s"
                answer = {"helped": False, "reason": record.outcome}
            return {"asks": record.asks, "offers": record.offers, **answer}
        finally:
            await self.decline(turned_away)

    async def _asks(
        self, consult: Consult, record: Asked, turned_away: list[tuple[str, Bid]]
    ) -> dict[str, Any]:
        for hop in range(self._max_asks):
            record.asks = hop + 1
            asked_at = trio.current_time()
            request_id, bids = await self.gather(
                record, f"{consult.request_id}-{hop}", hop, consult.question
            )
            for position, bid in enumerate(bids):
                case = replace(consult, request_id=request_id).to_json()
                answer = await self.exchange(bid, case, record, asked_at)
                if "advice" in answer:
                    turned_away += [(request_id, b) for b in bids[position + 1 :]]
                    record.helper, record.model = bid.node_id, str(answer.get("model", ""))
                    record.outcome = "helped"
                    return {"helped": True, **answer}
                record.outcome = f"{bid.node_id}: {answer.get('error', 'no advice')}"
        if not record.offers:
            record.outcome = f"no peer offered help after {record.asks} asks"
            self.unhelped(record)
        else:
            record.outcome = f"no advice came ({record.outcome})"
        return {"helped": False, "reason": record.outcome}

    async def gather(
        self, record: Asked, request_id: str, hop: int, reason: str
    ) -> tuple[str, list[Bid]]:
        """Ask once (`record.kind` of help); the ask's id and the offers that came within
        the bid window, best first (their nodes join `record.offers`)."""
        self._open[request_id] = ask = _Open(record, trio.current_time())
        try:
            await self._publish(
                TaskHelpRequest(
                    task_id=record.task_id,
                    from_node=self._name,
                    reason=reason[:500],
                    requested_capability=record.capability or "advice",
                    timestamp=utc_now(),
                    request_id=request_id,
                    kind=record.kind,  # type: ignore[arg-type]
                    hop=hop,
                )
            )
            await trio.sleep(self._bid_window)  # the bid window: offers come in meanwhile
            bids = rank(record.task_id, record.capability, ask.bids)
        finally:
            del self._open[request_id]
            self._closed.append(request_id)
        record.offers += [b.node_id for b in bids if b.node_id not in record.offers]
        return request_id, bids

    async def exchange(
        self, bid: Bid, case: bytes, record: Asked, asked_at: float
    ) -> dict[str, Any]:
        """Send the offer's node the case over a help stream, and read its answer: {}
        or {"error": ...} when none came within twice its eta (at least the floor)."""
        wait = max(2.0 * bid.eta_seconds, self._wait_floor)
        try:
            with trio.fail_after(wait):
                stream = await self._host.new_stream(ID.from_base58(bid.peer_id), [PROTOCOL])
                try:
                    await send_message(stream, case)
                    if record.accepted_ms is None:
                        waited = trio.current_time() - asked_at - self._bid_window
                        record.accepted_ms = round(waited * 1000, 1)
                    data = await receive_message(stream, MAX_CONTEXT_BYTES)
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await reset(stream)
                    raise
                await close(stream)
        except trio.TooSlowError:
            log.warning("helper %s went silent for %.0f s", bid.node_id, wait)
            return {"error": f"silent for {wait:.0f} s"}
        except Exception as exc:  # the helper went away: py-libp2p raises several kinds
            log.warning("helper %s failed: %s", bid.node_id, exc)
            return {"error": f"failed ({type(exc).__name__})"}
        answer = json.loads(data) if data.startswith(b"{") else {}
        return answer if isinstance(answer, dict) else {}

    def unhelped(self, record: Asked) -> None:
        if self.on_unhelped is not None:
            what = record.capability or "advice"
            self.on_unhelped(
                record.task_id,
                f"It asked the mesh {record.asks} times for {what} ({record.kind}), and no"
                f" peer could help: {record.question[:300]}",
            )

    async def decline(self, turned_away: list[tuple[str, Bid]]) -> None:
        """Tell the nodes whose offers were not taken (shielded: it runs in `finally`)."""
        with trio.CancelScope(shield=True):
            for request_id, bid in turned_away:
                await self._decline(bid, request_id)

    async def _decline(self, bid: Bid, request_id: str) -> None:
        """Tell a node whose offer was not taken (best effort)."""
        with trio.move_on_after(DECLINE_WITHIN):
            try:
                stream = await self._host.new_stream(ID.from_base58(bid.peer_id), [PROTOCOL])
                await send_message(
                    stream, json.dumps({"type": "decline", "request_id": request_id}).encode()
                )
                await close(stream)
            except Exception as exc:  # it is gone: its promise lapses by itself
                log.debug("could not decline %s's offer: %s", bid.node_id, exc)

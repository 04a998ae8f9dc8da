"""Peers taking part in each other's work, built from the settings: help (consults and
hand-offs) and plans reviewed by peers (Antennae)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from libp2p.abc import IHost

from bzzz.antennae.meeting import Proposer, Reviewer
from bzzz.claims.driver import ClaimDriver
from bzzz.claims.handing import Continuation
from bzzz.config import Settings
from bzzz.gateway.upstream import Upstream
from bzzz.help import HelpParts
from bzzz.help.asking import Asker
from bzzz.help.giving import Giver
from bzzz.help.handover import HandingOver, HandOverCase
from bzzz.node.membership import Membership
from bzzz.node.offering import Offering
from bzzz.node.people import ReportParts
from bzzz.protocol import Message


def build_help(
    settings: Settings,
    host: IHost,
    offering: Offering,
    *,
    claims: ClaimDriver | None,
    publish: Callable[[Message], Awaitable[None]],
) -> HelpParts:
    """Asking peers for help with this node's tasks (advice, or taking one over), and
    giving them advice or taking theirs over."""
    config, name = settings.help, settings.node.name
    upstream = Upstream(settings.capabilities.ollama_host, idle=config.consult_timeout)

    def own() -> tuple[tuple[str, ...], tuple[str, ...]]:
        reading = offering.announcer.reading
        return (reading.models, reading.installed) if reading is not None else ((), ())

    def room(task_id: str) -> int:
        """Tasks this node could claim now, if it knows `task_id` and has not ended it."""
        task = claims.book.get(task_id) if claims is not None else None
        if claims is None or task is None or task.phase.final or task.phase.busy:
            return 0
        return claims.book.free_slots()

    async def take(case: HandOverCase, holder: str) -> str:
        if claims is None or room(case.task_id) <= 0:
            return "this node cannot take a task now (no free worker slot)"
        return await claims.take_over(case.task_id, Continuation(holder, case.reason, case.branch))

    giver = Giver(
        name=name,
        own=own,
        room=room,
        take=take,
        publish=publish,
        upstream=upstream,
        slots=config.slots,
        eta=config.eta,
        consult_timeout=config.consult_timeout,
    )
    asker = Asker(
        name=name,
        host=host,
        publish=publish,
        bid_window=config.bid_window,
        max_asks=config.max_asks,
        wait_floor=config.wait_floor,
    )
    handing = (
        HandingOver(name=name, asker=asker, claims=claims, max_asks=config.max_asks)
        if claims is not None
        else None
    )
    return HelpParts(asker, giver, upstream, handing)


def build_antennae(
    parts: HelpParts,
    settings: Settings,
    membership: Membership,
    publish: Callable[[Message], Awaitable[None]],
    reports: ReportParts | None,
) -> None:
    """Plans reviewed by peers: every node reviews (with its model); one that claims tasks
    proposes its plans."""
    name = settings.node.name
    parts.reviewer = Reviewer(
        name=name,
        upstream=parts.upstream,
        model=lambda: parts.giver.model_for(""),
        publish=publish,
        timeout=settings.antennae.window,
    )
    if parts.handing is None:  # claims no tasks
        return
    parts.proposer = Proposer(
        name=name,
        settings=settings.antennae,
        publish=publish,
        candidates=lambda: [o.node_id for o in membership.offers() if o.models],
        escalate=reports.escalate_session if reports is not None else None,
    )

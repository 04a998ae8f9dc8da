"""Plans reviewed by peers, on the Antennae topic. Trio-owned.

`Proposer` is the holder's side: its worker sends the plan (control command `review`); the
plan goes out naming its reviewers, their reviews are gathered for the window, and the
answer says what follows (approved, revise, or escalated). `Reviewer` is every node's
other side: a plan that names it gets its model's review.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import trio

from bzzz.antennae.prompts import read_review, review_request
from bzzz.antennae.session import MAX_SECONDS, Outcome, Said, Session, reviewers, session_id
from bzzz.config.sections_help import AntennaeSettings
from bzzz.gateway.upstream import Unreachable, Upstream
from bzzz.protocol import MAX_ANTENNAE_HOPS, AntennaeMessage, Message, utc_now

log = logging.getLogger(__name__)

KEPT = 50  # sessions remembered (each at most MAX_SECONDS)
Escalate = Callable[[str, str, str, Session], None]  # (trigger, task, reason, session)


class Proposer:
    def __init__(
        self,
        *,
        name: str,
        settings: AntennaeSettings,
        publish: Callable[[Message], Awaitable[None]],
        candidates: Callable[[], list[str]],
        escalate: Escalate | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._publish = publish
        self._candidates = candidates  # live peers with a model that can review
        self.escalate = escalate
        self.sessions: dict[str, Session] = {}
        self._gathering: dict[str, dict[str, Said]] = {}  # plan msg_id -> reviews so far
        self._answered: dict[str, trio.Event] = {}

    def on_message(self, message: AntennaeMessage) -> None:
        """A review of one of our plans, from one of its reviewers."""
        reviews = self._gathering.get(message.parent_id or "")
        session = self.sessions.get(message.session_id)
        if reviews is None or session is None or message.kind != "review":
            return
        if message.node_id not in session.reviewers or message.node_id in reviews:
            return
        reviews[message.node_id] = Said(
            message.node_id, message.verdict or "suggestion", message.text
        )
        if len(reviews) == len(session.reviewers):
            self._answered[message.parent_id or ""].set()

    async def propose(self, task_id: str, claim: int, plan: str) -> dict[str, Any]:
        """One round: post the plan, gather the reviews for the window, say what follows."""
        now = trio.current_time()
        sid = session_id(task_id, claim)
        session = self.sessions.get(sid)
        if session is None:
            chosen = reviewers(sid, self._name, self._candidates(), self._settings.reviewers)
            session = Session(sid, task_id, self._name, chosen, now)
            self._keep(session)
        if not session.reviewers:
            return self._answer(session, Outcome.APPROVED, {}, "no peer can review it")
        session.rounds += 1
        msg_id = "m" + secrets.token_hex(6)
        session.said.append(Said(self._name, "plan", plan))
        self._gathering[msg_id], self._answered[msg_id] = {}, trio.Event()
        try:
            await self._publish(
                AntennaeMessage(
                    session_id=sid,
                    task_id=task_id,
                    node_id=self._name,
                    msg_id=msg_id,
                    hop_count=min(session.rounds - 1, MAX_ANTENNAE_HOPS),
                    kind="plan",
                    text=plan,
                    reviewers=session.reviewers,
                    timestamp=utc_now(),
                )
            )
            with trio.move_on_after(self._settings.window):
                await self._answered[msg_id].wait()
            reviews = self._gathering[msg_id]
        finally:
            del self._gathering[msg_id], self._answered[msg_id]
        session.said += [reviews[r] for r in session.reviewers if r in reviews]
        outcome = session.round(reviews, self._settings.max_rounds, trio.current_time())
        silent = [r for r in session.reviewers if r not in reviews]
        note = (
            f"no answer from {', '.join(silent)} within {self._settings.window:g} s"
            if silent
            else ""
        )
        return self._answer(session, outcome, reviews, note)

    def person(self, task_id: str, claim: int, question: str) -> dict[str, Any]:
        """The holder's model asks a person a question: escalate, the plan goes no further."""
        sid = session_id(task_id, claim)
        session = self.sessions.get(sid) or Session(
            sid, task_id, self._name, [], trio.current_time()
        )
        self._keep(session)
        session.said.append(Said(self._name, "person", question))
        return self._answer(session, Outcome.PERSON, {}, "")

    def _answer(
        self, session: Session, outcome: Outcome, reviews: dict[str, Said], note: str
    ) -> dict[str, Any]:
        if outcome in (Outcome.PERSON, Outcome.NO_CONSENSUS) and self.escalate is not None:
            last = session.said[-1].text if session.said else ""
            reason = (
                f"A question for a person: {last}"
                if outcome is Outcome.PERSON
                else f"The plan's review did not converge after {session.rounds} rounds."
            )
            self.escalate(
                "person_asked" if outcome is Outcome.PERSON else "no_consensus",
                session.task_id,
                reason,
                replace(session, said=list(session.said)),
            )
        log.info("%s: plan review round %d: %s", session.task_id, session.rounds, outcome.value)
        return {
            "outcome": outcome.value,
            "session_id": session.id,
            "round": session.rounds,
            "reviewers": session.reviewers,
            "reviews": [said.as_dict() for said in reviews.values()],
            "transcript": session.transcript(),
            "note": note,
        }

    def _keep(self, session: Session) -> None:
        now = trio.current_time()
        self.sessions = {k: s for k, s in self.sessions.items() if now - s.started < MAX_SECONDS}
        while len(self.sessions) >= KEPT:
            del self.sessions[next(iter(self.sessions))]
        self.sessions[session.id] = session


class Reviewer:
    def __init__(
        self,
        *,
        name: str,
        upstream: Upstream,
        model: Callable[[], str],
        publish: Callable[[Message], Awaitable[None]],
        timeout: float,
    ) -> None:
        self._name = name
        self._upstream = upstream
        self._model = model  # the model this node reviews with ("" for none)
        self._publish = publish
        self._timeout = timeout
        self.reviewed = 0

    async def on_message(self, message: AntennaeMessage) -> None:
        """A plan that names this node as a reviewer: answer it with this node's model."""
        if message.kind != "plan" or self._name not in (message.reviewers or ()):
            return
        model = self._model()
        if not model or message.node_id == self._name:
            return
        try:
            with trio.fail_after(self._timeout):
                reply = await self._upstream.call(
                    "POST",
                    "/api/chat",
                    review_request(model, message.text),
                    first_byte=self._timeout,
                )
                data = b"".join([chunk async for chunk in reply.chunks])
            verdict, text = read_review(data)
        except (Unreachable, trio.TooSlowError, ValueError) as exc:
            log.warning("could not review the plan for %s: %s", message.task_id, exc or "too slow")
            return
        self.reviewed += 1
        log.info("reviewed the plan for %s: %s", message.task_id, verdict)
        await self._publish(
            AntennaeMessage(
                session_id=message.session_id,
                task_id=message.task_id,
                node_id=self._name,
                msg_id="m" + secrets.token_hex(6),
                parent_id=message.msg_id,
                hop_count=min(message.hop_count + 1, MAX_ANTENNAE_HOPS),
                kind="review",
                verdict=verdict,  # type: ignore[arg-type]
                text=text,
                timestamp=utc_now(),
            )
        )

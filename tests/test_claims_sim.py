"""The claim protocol under arbitrary timing: nodes, a forge and gossip, simulated.

Each node runs the real ClaimBook; the forge keeps claim comments with whole-second
times as GitHub does; gossip is delayed, duplicated, reordered and lost at random;
nodes crash, are cut off from the forge and the mesh, and heal. Two properties:

- safety: at no instant do two running nodes hold a confirmed, unexpired lease;
- liveness: once faults stop, a task whose holder died is taken over by a live node.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.claims import ledger
from bzzz.claims.actions import (
    Action,
    Announce,
    Check,
    Enqueue,
    Finish,
    Phase,
    PostClaim,
    Release,
    Renew,
)
from bzzz.claims.ledger import ClaimNote, ClaimState
from bzzz.claims.machine import ClaimBook
from bzzz.claims.matching import Offer, Ranking, rank
from bzzz.config import ClaimSettings
from bzzz.forge.api import Comment

TASK = "lab/hello#1"
SETTINGS = ClaimSettings(lease=30.0, gossip_renew=3.0, rank_delay=1.0, margin=5.0, max_attempts=3)
SKEW = 2.0
MAX_FORGE_LATENCY = 2.4  # each of write and read-back: together less than the margin
EPOCH = datetime(2026, 11, 21, tzinfo=UTC)
TICK = 0.5


@dataclass
class Forge:
    comments: dict[int, Comment] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @staticmethod
    def stamp(t: float) -> datetime:
        return (EPOCH + timedelta(seconds=t)).replace(microsecond=0)  # whole seconds

    def post(self, note: ClaimNote, t: float) -> ClaimNote:
        comment_id = next(self.ids)
        body = ledger.render(note, "claim")
        stamp = self.stamp(t)
        self.comments[comment_id] = Comment(
            comment_id, note.node, body, "", stamp, stamp, "COLLABORATOR"
        )
        parsed = ledger.parse(self.comments[comment_id])
        assert parsed is not None
        return parsed

    def edit(self, comment_id: int, state: ClaimState, t: float) -> None:
        old = self.comments[comment_id]
        note = ledger.parse(old)
        assert note is not None
        body = ledger.render(
            ClaimNote(
                comment_id,
                note.author,
                note.node,
                note.peer,
                state,
                note.lease_s,
                note.created_at,
                note.updated_at,
            ),
            "edited",
        )
        self.comments[comment_id] = Comment(
            comment_id, old.author, body, "", old.created_at, self.stamp(t), "COLLABORATOR"
        )

    def verdict(self, t: float) -> ledger.Verdict:
        notes = ledger.claims(self.comments.values(), {"COLLABORATOR"}, ())
        return ledger.verdict(notes, EPOCH + timedelta(seconds=t), SKEW)


@dataclass(order=True)
class Event:
    time: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class Sim:
    def __init__(self, nodes: int, rng: random.Random, gossip_loss: float) -> None:
        self.rng = rng
        self.gossip_loss = gossip_loss
        self.forge = Forge()
        self.names = [f"n{i}" for i in range(nodes)]
        self.books = {
            name: ClaimBook(name, SETTINGS, ranking=self._ranker(name)) for name in self.names
        }
        self.crashed: set[str] = set()
        self.cut_off: set[str] = set()
        self.now = 0.0
        self.queue: list[Event] = []
        self.seq = itertools.count()
        self.holders_seen: set[str] = set()
        # A node's forge requests for a task run one after another (as the node's
        # adapter runs them), so a renewal in flight cannot undo a finished claim.
        self.forge_free_at = dict.fromkeys(self.names, 0.0)

    def _ranker(self, name: str) -> Ranking:
        def position(
            task_id: str, model: str, market: object, failed_on: object, used: int
        ) -> int | None:
            offers = [Offer(n, ("m",), ("ollama",), 1) for n in self.names]
            order = [p for p in rank(task_id, model, offers) if p not in failed_on]  # type: ignore[operator]
            return order.index(name) if name in order else None

        return position

    def at(self, time: float, run: Callable[[], None]) -> None:
        heapq.heappush(self.queue, Event(time, next(self.seq), run))

    def run_until(self, end: float) -> None:
        while self.queue and self.queue[0].time <= end:
            event = heapq.heappop(self.queue)
            self.now = max(self.now, event.time)
            event.run()
            self.check_safety()
        self.now = end

    def check_safety(self) -> None:
        holding = [
            name
            for name, book in self.books.items()
            if name not in self.crashed and book.holds(TASK, self.now)
        ]
        assert len(holding) <= 1, f"at {self.now:.2f} s both {holding} hold {TASK}"
        self.holders_seen.update(holding)

    # ---- driving the nodes --------------------------------------------------------------

    def start(self) -> None:
        for name in self.names:
            self.at(
                self.rng.uniform(0, 2),
                lambda name=name: self.apply(name, self.books[name].learn(TASK, "m", self.now)),
            )  # type: ignore[misc]
            self.at(TICK, lambda name=name: self.ticker(name))  # type: ignore[misc]

    def ticker(self, name: str) -> None:
        if name not in self.crashed:
            self.apply(name, self.books[name].tick(self.now))
        self.at(self.now + TICK, lambda: self.ticker(name))

    def latency(self) -> float:
        return self.rng.uniform(0.0, MAX_FORGE_LATENCY)

    def forge_slot(self, name: str, steps: int) -> tuple[float, float]:
        """When the node's next forge request lands, and when its read-back returns."""
        land = max(self.now, self.forge_free_at[name]) + self.latency()
        done = land + (self.latency() if steps > 1 else 0.0)
        self.forge_free_at[name] = done
        return land, done

    def apply(self, name: str, actions: list[Action]) -> None:
        if name in self.crashed:
            return
        for action in actions:
            self._do(name, action)

    def _do(self, name: str, action: Action) -> None:
        book, sent = self.books[name], self.now
        reachable = name not in self.cut_off
        match action:
            case Check():
                if not reachable:
                    self.reply(
                        name, lambda: book.checked(TASK, None, still_a_task=True, now=self.now)
                    )
                    return
                _, back = self.forge_slot(name, 1)

                def look() -> None:
                    verdict = None if name in self.cut_off else self.forge.verdict(self.now)
                    self.deliver(
                        name, lambda: book.checked(TASK, verdict, still_a_task=True, now=self.now)
                    )

                self.at(back, look)
            case PostClaim():
                if not reachable:
                    self.reply(
                        name,
                        lambda: book.claim_checked(
                            TASK, None, None, sent_at=sent, still_a_task=True, now=self.now
                        ),
                    )
                    return
                note = ClaimNote(
                    0, name, name, f"peer-{name}", ClaimState.CLAIM, SETTINGS.lease, EPOCH, EPOCH
                )
                land, back = self.forge_slot(name, 2)
                posted: list[ClaimNote] = []

                def read() -> None:
                    verdict = None if name in self.cut_off else self.forge.verdict(self.now)
                    self.deliver(
                        name,
                        lambda: book.claim_checked(
                            TASK, posted[0], verdict, sent_at=sent, still_a_task=True, now=self.now
                        ),
                    )

                self.at(land, lambda: posted.append(self.forge.post(note, self.now)))
                self.at(back, read)
            case Renew(comment_id=comment_id):
                if not reachable:
                    self.reply(name, lambda: book.renewed(TASK, None, sent, self.now))
                    return

                land, back = self.forge_slot(name, 2)

                def read() -> None:
                    verdict = None if name in self.cut_off else self.forge.verdict(self.now)
                    self.deliver(name, lambda: book.renewed(TASK, verdict, sent, self.now))

                self.at(land, lambda: self.forge.edit(comment_id, ClaimState.CLAIM, self.now))
                self.at(back, read)
            case Release(comment_id=comment_id, failed=failed):
                if reachable:
                    state = ClaimState.FAILED if failed else ClaimState.RELEASED
                    land, _ = self.forge_slot(name, 1)
                    self.at(land, lambda: self.forge.edit(comment_id, state, self.now))
            case Finish(comment_id=comment_id, succeeded=succeeded):
                if reachable:
                    state = ClaimState.DONE if succeeded else ClaimState.FAILED
                    land, _ = self.forge_slot(name, 1)
                    self.at(land, lambda: self.forge.edit(comment_id, state, self.now))
                self.gossip(
                    name,
                    lambda other: self.books[other].heard_result(TASK, name, succeeded, self.now),
                )
            case Announce(lease_s=lease_s):
                self.gossip(
                    name, lambda other: self.books[other].heard_claim(TASK, name, lease_s, self.now)
                )
            case Enqueue():
                book.enqueued(TASK)
                # A worker of the node picks it up.
                self.at(self.now + self.latency(), lambda: book.worker_started(TASK, self.now))

    def reply(self, name: str, answer: Callable[[], list[Action]]) -> None:
        self.at(self.now + self.latency(), lambda: self.deliver(name, answer))

    def deliver(self, name: str, answer: Callable[[], list[Action]]) -> None:
        if name not in self.crashed:
            self.apply(name, answer())

    def gossip(self, sender: str, hear: Callable[[str], list[Action]]) -> None:
        if sender in self.cut_off:
            return
        for other in self.names:
            if other == sender:
                continue
            for _ in range(self.rng.choice((0, 1, 1, 1, 2))):  # lost, once, or twice
                if self.rng.random() < self.gossip_loss:
                    continue

                def arrive(other: str = other) -> None:
                    if other not in self.cut_off and other not in self.crashed:
                        self.apply(other, hear(other))

                self.at(self.now + self.rng.uniform(0, 20), arrive)

    def holder_running(self) -> str | None:
        for name, book in self.books.items():
            if name not in self.crashed and book.holds(TASK, self.now):
                return name
        return None


FAULTS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=120),
        st.sampled_from(
            ["crash_holder", "crash", "cut_off_holder", "cut_off", "heal", "finish", "fail"]
        ),
        st.integers(min_value=0, max_value=4),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    nodes=st.integers(min_value=2, max_value=5),
    seed=st.integers(min_value=0, max_value=2**32),
    gossip_loss=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    faults=FAULTS,
)
def test_one_holder_at_a_time_and_expired_leases_are_taken_over(
    nodes: int, seed: int, gossip_loss: float, faults: list[tuple[float, str, int]]
) -> None:
    sim = Sim(nodes, random.Random(seed), gossip_loss)
    sim.start()
    for when, kind, index in sorted(faults):
        sim.run_until(when)
        name = sim.names[index % nodes]
        holder = sim.holder_running()
        match kind:
            case "crash_holder" if holder is not None:
                sim.crashed.add(holder)
            case "crash":
                sim.crashed.add(name)
            case "cut_off_holder" if holder is not None:
                sim.cut_off.add(holder)
            case "cut_off":
                sim.cut_off.add(name)
            case "heal":
                sim.cut_off.clear()
            case "finish" | "fail" if holder is not None:
                sim.apply(
                    holder,
                    sim.books[holder].worker_finished(
                        TASK,
                        succeeded=kind == "finish",
                        result_type="pull_request",
                        result_url="http://forge/pr/1",
                        reason="",
                        duration_ms=1,
                        now=sim.now,
                    ),
                )
    # Faults stop: the mesh and the forge heal; crashed nodes stay down.
    sim.cut_off.clear()
    end = sim.now + 3 * SETTINGS.lease + nodes * SETTINGS.rank_delay + 60
    sim.run_until(end)

    verdict = sim.forge.verdict(sim.now)
    live = [n for n in sim.names if n not in sim.crashed]
    eligible = [n for n in live if n not in verdict.attempts]
    if verdict.done is not None:  # every live node learns it, if only from the forge
        phases = {n: sim.books[n].get(TASK).phase for n in live}  # type: ignore[union-attr]
        assert set(phases.values()) <= {Phase.DONE}, phases
        return
    if len(verdict.attempts) >= SETTINGS.max_attempts or not eligible:
        assert sim.holder_running() is None or sim.holder_running() in live
        return
    holder = sim.holder_running()
    assert holder is not None, (
        f"nobody holds {TASK} at the end: phases"
        f" {[(n, b.get(TASK).phase) for n, b in sim.books.items()]}"  # type: ignore[union-attr]
    )
    assert verdict.holder is not None
    assert verdict.holder.node == holder


def test_a_lone_node_claims_at_once_and_keeps_its_lease() -> None:
    sim = Sim(1, random.Random(1), 0.0)
    sim.start()
    sim.run_until(200.0)
    assert sim.holder_running() == "n0"
    # Its worker runs it (a task that no worker picks up is let go: see test_claims.py).
    assert sim.books["n0"].get(TASK).phase is Phase.RUNNING  # type: ignore[union-attr]
    claims = ledger.claims(sim.forge.comments.values(), {"COLLABORATOR"}, ())
    assert [(c.node, c.state) for c in claims] == [("n0", ClaimState.CLAIM)]

"""Following another node's audit log: checking each page it serves against what this
node verified before, and against the checkpoint the page comes with. Pure: the state
in, a verdict out; the node stores what was accepted.

A follower holds the latest checkpoint it verified (size, root, text) and the entries it
keeps (a prefix of the log, as a Merkle frontier: O(log n) hashes whatever the log's
length). A page is accepted when the checkpoint is signed by the log's node and
  - its entries, appended to those kept, make a tree whose root is the checkpoint's, or
    that a consistency proof shows is a prefix of the checkpoint's tree; and
  - the checkpoint is consistent with the one verified before (same root at the same
    size; a larger tree whose prefix is it).
Otherwise the verdict names what the node did: signed two roots for one size
(equivocation: both texts are the proof), or served a history that is not the one it
signed before (inconsistent), or went back to a smaller log after a newer signature
(rolled back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bzzz.audit.checkpoint import Checkpoint, from_text, verify
from bzzz.audit.exchange import Page, Request
from bzzz.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, verify_consistency


class Fault(StrEnum):
    EQUIVOCATION = "equivocation"  # two signed roots for one size
    INCONSISTENT = "inconsistent"  # a history that is not the one signed before
    ROLLED_BACK = "rolled_back"  # a smaller log signed after a larger one
    UNSIGNED = "unsigned"  # a checkpoint its origin's key did not sign
    MALFORMED = "malformed"  # a page that is not what was asked for


@dataclass(frozen=True)
class Problem:
    fault: Fault
    detail: str
    evidence: tuple[str, ...] = ()  # signed checkpoints that prove it, where there are


@dataclass
class Follower:
    origin: str  # the log's node: its peer ID
    checkpoint: Checkpoint | None = None  # the latest verified
    text: str = ""  # its signed text
    kept: Frontier = field(default_factory=Frontier)  # the entries kept here
    wanted: Checkpoint | None = None  # announced, larger than the verified one
    wanted_text: str = ""

    @property
    def size(self) -> int:
        return self.checkpoint.size if self.checkpoint else 0

    @property
    def root(self) -> bytes:
        return self.checkpoint.root if self.checkpoint else EMPTY_ROOT

    def announced(self, text: str) -> Problem | None:
        """A checkpoint its node announced: wanted if it is larger than the verified one
        (and any wanted before), or what is wrong with it."""
        checkpoint, problem = self._checkpoint(text)
        if problem is not None or checkpoint is None:
            return problem
        if conflict := self._conflict(checkpoint, text):
            return conflict
        largest = max(self.size, self.wanted.size if self.wanted else 0)
        if checkpoint.size > largest:
            self.wanted, self.wanted_text = checkpoint, text
        return None

    def next_request(self, room: int) -> Request | None:
        """What to ask the node for next: the way to the wanted checkpoint (with up to
        `room` entries, when all up to the verified one are kept, else a proof only),
        then the entries up to it; None when there is nothing to ask."""
        if self.wanted is not None and self.wanted.size > self.size:
            if room and self.kept.size == self.size:
                return Request(self.origin, self.wanted.size, self.kept.size, room)
            return Request(self.origin, self.wanted.size, self.size, 0)
        if room and self.kept.size < self.size:
            return Request(self.origin, self.size, self.kept.size, room)
        return None

    def check_page(self, page: Page, request: Request) -> Problem | None:
        """Whether the node's answer to `request` holds."""
        checkpoint, problem = self._checkpoint(page.checkpoint)
        if problem is not None or checkpoint is None:
            return problem
        if checkpoint.size != request.size or page.start != request.start:
            return Problem(Fault.MALFORMED, "not the page asked for")
        if conflict := self._conflict(checkpoint, page.checkpoint):
            return conflict
        prefix = self._prefix(page, checkpoint)
        if isinstance(prefix, Problem):
            return prefix
        prefix_size, prefix_root = prefix
        if prefix_size and not verify_consistency(
            prefix_size, checkpoint.size, prefix_root, checkpoint.root, page.proof
        ):
            what = "its entries" if page.entries else f"its log at size {prefix_size}"
            return Problem(
                Fault.INCONSISTENT,
                f"{what} are not in the tree it signed at size {checkpoint.size}",
                (self.text, page.checkpoint) if self.text else (page.checkpoint,),
            )
        return None

    def accept(self, page: Page) -> bool:
        """Take a page that `check_page` passed: keep its entries, and its checkpoint if
        larger than the verified one (then True)."""
        self.kept.extend([leaf_hash(leaf) for leaf in page.entries])
        checkpoint = from_text(page.checkpoint)
        if checkpoint.size <= self.size:
            return False
        self.checkpoint, self.text = checkpoint, page.checkpoint
        if self.wanted is not None and self.wanted.size <= checkpoint.size:
            self.wanted, self.wanted_text = None, ""
        return True

    def _conflict(self, checkpoint: Checkpoint, text: str) -> Problem | None:
        """Whether `checkpoint` contradicts one signed before: another root for the same
        size, or a smaller log signed later."""
        for other, other_text in ((self.checkpoint, self.text), (self.wanted, self.wanted_text)):
            if other is None:
                continue
            if checkpoint.size == other.size and checkpoint.root != other.root:
                detail = f"two roots signed for size {checkpoint.size}"
                return Problem(Fault.EQUIVOCATION, detail, (other_text, text))
            if checkpoint.size < other.size and checkpoint.timestamp > other.timestamp:
                detail = f"signed size {checkpoint.size} after size {other.size}"
                return Problem(Fault.ROLLED_BACK, detail, (other_text, text))
        return None

    def _prefix(self, page: Page, checkpoint: Checkpoint) -> tuple[int, bytes] | Problem:
        """The size and root of the log up to the page's end, as this node computes it.
        Entries beyond the verified size are taken only after all up to it, so that the
        page's tree contains the verified one."""
        if not page.entries:
            if page.start != self.size:
                return Problem(Fault.MALFORMED, "no entries")
            return self.size, self.root
        if page.start != self.kept.size or (
            self.kept.size < self.size and checkpoint.size != self.size
        ):
            return Problem(Fault.MALFORMED, "not the entries asked for")
        prefix = self.kept.copy()
        prefix.extend([leaf_hash(leaf) for leaf in page.entries])
        if prefix.size > checkpoint.size:
            return Problem(Fault.MALFORMED, "more entries than the checkpoint covers")
        return prefix.size, prefix.root()

    def _checkpoint(self, text: str) -> tuple[Checkpoint | None, Problem | None]:
        try:
            checkpoint = from_text(text)
        except ValueError as exc:
            return None, Problem(Fault.MALFORMED, f"unreadable checkpoint: {exc}")
        if checkpoint.origin != self.origin or not verify(checkpoint):
            return None, Problem(Fault.UNSIGNED, f"a checkpoint not signed by {self.origin}")
        return checkpoint, None

"""The forge as the arbiter of claims: the blocking half of the claim driver.

Each method carries out one of the claim machine's forge actions from start to end
(post a claim and read the verdict back, check, renew, edit) and returns what the
machine needs to hear. Methods block on the forge, so the driver runs them in
threads; they touch no state of the node.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bzzz.claims import ledger
from bzzz.claims.ledger import ClaimNote, ClaimState, Verdict
from bzzz.config import Settings
from bzzz.forge.api import Comment, ErrorKind, Forge, ForgeError, PullRequest
from bzzz.protocol import utc_now
from bzzz.tasks.intake import is_task

log = logging.getLogger(__name__)

WORDS = {
    ClaimState.RELEASED: "let this task go",
    ClaimState.DONE: "finished this task",
    ClaimState.FAILED: "failed this task",
    ClaimState.CLAIM: "holds this task",
    ClaimState.HANDOFF: "hands this task on",
}


@dataclass(frozen=True)
class Posted:
    """What came of posting a claim: our claim as the forge recorded it (None: posting
    failed), the verdict read back (None: it could not be read), and whether the issue
    is still an unanswered task."""

    own: ClaimNote | None
    verdict: Verdict | None
    still_a_task: bool
    url: str = ""


@dataclass(frozen=True)
class Checked:
    verdict: Verdict | None  # None: the forge could not be read
    still_a_task: bool


@dataclass(frozen=True)
class Claim:
    """What our claim comment on a task records; its edits keep the attempt and whose
    claim it took over. `reuse`: our earlier comment to edit back into a claim."""

    task_id: str
    attempt: int = 1
    takes_over: str = ""
    reuse: int = 0
    nonce: str = ""  # fresh for each claim: see ledger.ClaimNote.nonce
    handed_by: str = ""  # the node that handed the task on to us
    successor: str = ""  # the node we hand it on to: kept in every later edit


class Arbiter:
    def __init__(self, forge: Forge, settings: Settings, peer_id: str) -> None:
        self._forge = forge
        self._settings = settings
        self.node = settings.node.name
        self.peer_id = peer_id

    def post_claim(self, claim: Claim, branch_prefix: str) -> Posted:
        repo, number = split(claim.task_id)
        text = f"Bzzz node **{self.node}** claims this task (attempt {claim.attempt})."
        if claim.handed_by:
            text = (
                f"Bzzz node **{self.node}** takes this task over from **{claim.handed_by}**,"
                f" which handed it on (attempt {claim.attempt})."
            )
        elif claim.takes_over:
            text = (
                f"Bzzz node **{self.node}** takes this task over: the claim of"
                f" **{claim.takes_over}** ran out (attempt {claim.attempt})."
            )
        body = ledger.render(self._note(claim, ClaimState.CLAIM), text)
        try:
            comment = self._claim_comment(claim, repo, number, body)
        except ForgeError as exc:
            log.warning("%s: claiming failed: %s", claim.task_id, exc)
            return Posted(None, None, still_a_task=True)
        own = ledger.parse(comment)
        try:
            still = self._still_a_task(repo, number, branch_prefix)
            verdict = self._verdict(repo, number)
        except ForgeError as exc:
            log.warning("%s: reading the claims back failed: %s", claim.task_id, exc)
            return Posted(own, None, still_a_task=True, url=comment.html_url)
        if own is not None and verdict.holder is None and verdict.done is None:
            log.error(
                "%s: this node's claim comment does not count: its forge account %s is"
                " not trusted. Fix: make it a collaborator of %s or add it to"
                " tasks.trusted_authors.",
                claim.task_id,
                comment.author,
                repo,
            )
        return Posted(own, verdict, still, url=comment.html_url)

    def _claim_comment(self, claim: Claim, repo: str, number: int, body: str) -> Comment:
        """Our claim comment: the earlier one edited back into a claim, or a new one
        when there is none (or it was deleted)."""
        if claim.reuse:
            try:
                return self._forge.edit_comment(repo, claim.reuse, body)
            except ForgeError as exc:
                if not self._gone(exc, repo, number, claim.reuse):
                    raise
                log.info(
                    "%s: claim comment %s is gone; posting another", claim.task_id, claim.reuse
                )
        return self._forge.comment(repo, number, body)

    def _gone(self, error: ForgeError, repo: str, number: int, comment_id: int) -> bool:
        """Whether a 404 on a comment means it was deleted: the issue's comments no
        longer list it (some forges fail single-comment requests of comments that
        exist)."""
        if error.kind is not ErrorKind.NOT_FOUND:
            return False
        return all(c.id != comment_id for c in self._forge.get_comments(repo, number))

    def check(self, task_id: str) -> Checked:
        repo, number = split(task_id)
        try:
            issue = self._forge.get_issue(repo, number)
            still = is_task(issue, self._settings.tasks)
            return Checked(self._verdict(repo, number), still)
        except ForgeError as exc:
            log.warning("%s: reading its claims failed: %s", task_id, exc)
            return Checked(None, still_a_task=True)

    def renew(self, claim: Claim, comment_id: int) -> Verdict | None:
        repo, number = split(claim.task_id)
        text = f"Bzzz node **{self.node}** holds this task (renewed {utc_now():%H:%M:%S} UTC)."
        state = ClaimState.HANDOFF if claim.successor else ClaimState.CLAIM
        if claim.successor:
            text = f"Bzzz node **{self.node}** hands this task on to **{claim.successor}**."
        try:
            body = ledger.render(self._note(claim, state), text)
            self._forge.edit_comment(repo, comment_id, body)
            return self._verdict(repo, number)
        except ForgeError as exc:
            log.warning("%s: renewing the claim failed: %s", claim.task_id, exc)
            return None

    def edit(
        self,
        claim: Claim,
        comment_id: int,
        state: ClaimState,
        *,
        result_url: str = "",
        reason: str = "",
    ) -> bool:
        """Record on our claim comment that we let the task go, finished or failed it;
        False if the forge did not take the edit."""
        repo, number = split(claim.task_id)
        text = f"Bzzz node **{self.node}** {WORDS[state]}."
        if reason:
            text += f" {reason[:500]}"
        note = self._note(claim, state, result_url=result_url, reason=reason)
        try:
            self._forge.edit_comment(repo, comment_id, ledger.render(note, text))
        except ForgeError as exc:
            try:
                if self._gone(exc, repo, number, comment_id):
                    log.info("%s: claim comment %s is gone", claim.task_id, comment_id)
                    return True  # nothing is left that could hold the task
            except ForgeError:
                pass
            log.warning("%s: could not update claim comment %s: %s", claim.task_id, comment_id, exc)
            return False
        return True

    def quarantine(self, task_id: str, reason: str) -> None:
        repo, number = split(task_id)
        report = (
            f"Bzzz quarantined this task: it failed on {self._settings.claims.max_attempts}"
            f" nodes. The last failure, on **{self.node}**: {reason[:2000]}"
        )
        try:
            self._forge.add_labels(repo, number, [self._settings.claims.quarantine_label])
            self._forge.comment(repo, number, report)
        except ForgeError as exc:
            log.warning("%s: could not quarantine it on the forge: %s", task_id, exc)

    def say(self, task_id: str, text: str) -> None:
        """A comment on the task's issue for people (a hand-off's); best effort."""
        repo, number = split(task_id)
        try:
            self._forge.comment(repo, number, text[:5000])
        except ForgeError as exc:
            log.warning("%s: could not comment on the issue: %s", task_id, exc)

    def _still_a_task(self, repo: str, number: int, branch_prefix: str) -> bool:
        """Whether the issue is still a task: open, labelled, and not already answered by
        an open pull request."""
        if not is_task(self._forge.get_issue(repo, number), self._settings.tasks):
            return False
        pulls = self._forge.list_pull_requests(repo)
        solving = [p for p in pulls if solves(p, number, branch_prefix)]
        if solving:
            log.info("%s#%d: already answered by %s", repo, number, solving[0].html_url)
        return not solving

    def _verdict(self, repo: str, number: int) -> Verdict:
        comments = self._forge.get_comments(repo, number)
        tasks = self._settings.tasks
        notes = ledger.claims(comments, tasks.trusted_associations, tasks.trusted_authors)
        return ledger.verdict(notes, datetime.now(UTC), self._settings.claims.clock_skew)

    def _note(
        self, claim: Claim, state: ClaimState, *, result_url: str = "", reason: str = ""
    ) -> ClaimNote:
        epoch = datetime.fromtimestamp(0, UTC)
        return ClaimNote(
            0,
            "",
            self.node,
            self.peer_id,
            state,
            self._settings.claims.lease,
            epoch,
            epoch,
            attempt=claim.attempt,
            takes_over=claim.takes_over,
            result_url=result_url,
            reason=reason,
            nonce=claim.nonce,
            successor=claim.successor,
            handed_by=claim.handed_by,
        )


_CLOSING = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(\d+)\b", re.I)


def solves(pull: PullRequest, number: int, branch_prefix: str) -> bool:
    """Whether an open pull request answers issue `number`: its body closes the issue
    (GitHub's keywords), or it comes from the task's branch (a Bzzz peer's earlier run)."""
    if pull.state != "open":
        return False
    if any(int(m) == number for m in _CLOSING.findall(pull.body)):
        return True
    branch = pull.head.partition(":")[2] or pull.head
    return bool(branch_prefix) and branch.startswith(branch_prefix)


def split(task_id: str) -> tuple[str, int]:
    repo, _, number = task_id.rpartition("#")
    return repo, int(number)

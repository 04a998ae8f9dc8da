"""GitHubForge (Bzzz's forge interface on unmodified PyGithub) against the local forge."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bzzz.forge.api import ErrorKind, ForgeError
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token, TokenError, load_token
from bzzz.lab.forge import Fault, LocalForge
from tests.lab.forge.conftest import TOKENS, clone, commit_file, push


def adapter(forge: LocalForge, login: str = "bob", **options: object) -> GitHubForge:
    return GitHubForge(forge.api_url, Token(TOKENS[login]), seconds_between_writes=0, **options)  # type: ignore[arg-type]


def test_conditional_listing_of_task_issues(forge: LocalForge) -> None:
    bob = adapter(forge)
    first = bob.list_open_issues("alice/demo", "bzzz-task")
    assert first.issues is not None
    assert [(i.number, i.author, i.author_association) for i in first.issues] == [
        (1, "alice", "OWNER"),
        (2, "bob", "COLLABORATOR"),
    ]
    assert first.etag is not None
    assert first.rate.limit == 5000
    remaining = first.rate.remaining
    assert remaining is not None

    again = bob.list_open_issues("alice/demo", "bzzz-task", etag=first.etag)
    assert again.issues is None  # 304: unchanged
    assert again.rate.remaining == remaining  # and free
    assert forge.requests()[-1].status == 304

    bob.create_issue("alice/demo", "Add a farewell", "", labels=["bzzz-task"])
    changed = bob.list_open_issues("alice/demo", "bzzz-task", etag=first.etag)
    assert changed.issues is not None
    assert [i.number for i in changed.issues][-1] == 6


def test_listing_follows_pages(forge: LocalForge) -> None:
    forge.seed(
        {
            "repos": [
                {
                    "owner": "alice",
                    "name": "busy",
                    "labels": ["bzzz-task"],
                    "issues": [
                        {"title": f"task {n}", "labels": ["bzzz-task"]} for n in range(1, 8)
                    ],
                }
            ]
        }
    )
    page = adapter(forge, per_page=3).list_open_issues("alice/busy", "bzzz-task")
    assert page.issues is not None
    assert [i.number for i in page.issues] == list(range(1, 8))
    assert page.requests == 3


def test_pull_requests_are_listed_and_flagged(forge: LocalForge, tmp_path: Path) -> None:
    bob = adapter(forge)
    repo = clone(forge.git_url("alice", "demo"), tmp_path / "work")
    commit_file(repo, "feature", "NOTES.md", "notes\n")
    assert push(repo, "bob", "feature").results == {"refs/heads/feature": None}
    pull = bob.create_pull_request(
        "alice/demo", title="Notes", body="Closes #1", head="feature", base="main", draft=True
    )
    assert pull.draft
    bob.add_labels("alice/demo", pull.number, ["bzzz-task"])
    page = bob.list_open_issues("alice/demo", "bzzz-task")
    assert page.issues is not None
    flagged = {i.number: i.is_pull_request for i in page.issues}
    assert flagged[pull.number] is True
    assert flagged[1] is False
    # The branch lives in alice/demo (bob pushed it there): its label is alice:feature.
    assert bob.find_pull_request("alice/demo", head="bob:feature", base="main") is None
    found = bob.find_pull_request("alice/demo", head="alice:feature", base="main")
    assert found is not None
    assert found.number == pull.number
    (listed,) = bob.list_pull_requests("alice/demo")
    assert (listed.number, listed.body, listed.head) == (pull.number, "Closes #1", "alice:feature")
    with pytest.raises(ForgeError) as again:
        bob.create_pull_request(
            "alice/demo", title="x", body="", head="feature", base="main", draft=True
        )
    assert again.value.kind is ErrorKind.INVALID
    assert again.value.status == 422


def test_reading_and_writing_an_issue(forge: LocalForge) -> None:
    bob = adapter(forge)
    issue = bob.get_issue("alice/demo", 2)
    assert (issue.title, set(issue.labels), issue.is_pull_request) == (
        "Fix a crash",
        {"bzzz-task", "bug"},
        False,
    )
    comment = bob.comment("alice/demo", 2, "bzzz: claimed by node-b")
    assert comment.author == "bob"
    assert [c.body for c in bob.get_comments("alice/demo", 2)] == ["bzzz: claimed by node-b"]
    assert comment.author_association == "COLLABORATOR"
    assert comment.created_at == comment.updated_at
    assert comment.created_at.tzinfo is not None
    edited = bob.edit_comment("alice/demo", comment.id, "bzzz: released by node-b")
    assert (edited.id, edited.body, edited.created_at) == (
        comment.id,
        "bzzz: released by node-b",
        comment.created_at,
    )
    assert edited.updated_at >= comment.updated_at
    bob.delete_comment("alice/demo", comment.id)
    assert bob.get_comments("alice/demo", 2) == []
    bob.add_labels("alice/demo", 2, ["bzzz-claimed"])
    bob.remove_label("alice/demo", 2, "bug")
    assert set(bob.get_issue("alice/demo", 2).labels) == {"bzzz-task", "bzzz-claimed"}


def test_fork_once(forge: LocalForge) -> None:
    carol = adapter(forge, "carol")
    assert carol.fork("alice/demo") == "carol/demo"
    assert carol.fork("alice/demo") == "carol/demo"
    assert carol.login() == "carol"


def test_failures_become_forge_errors_naming_the_repository(forge: LocalForge) -> None:
    with pytest.raises(ForgeError) as bad_token:
        GitHubForge(forge.api_url, Token("not-a-real-token")).list_open_issues(
            "alice/demo", "bzzz-task"
        )
    assert bad_token.value.kind is ErrorKind.AUTH
    assert str(bad_token.value) == "alice/demo: HTTP 401: Bad credentials"

    with pytest.raises(ForgeError) as missing:
        adapter(forge).get_issue("alice/nothing", 1)
    assert missing.value.kind is ErrorKind.NOT_FOUND
    assert missing.value.__cause__ is not None  # the original exception is kept

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ForgeError) as unreachable:
        GitHubForge(f"http://127.0.0.1:{closed}/api/v3", Token("t0ken")).list_open_issues(
            "a/b", "x"
        )
    assert unreachable.value.kind is ErrorKind.UNAVAILABLE
    assert "a/b: forge unreachable" in str(unreachable.value)


@pytest.mark.parametrize(
    ("fault", "kind", "retry_after"),
    [
        (Fault("secondary_rate_limit", retry_after=7), ErrorKind.RATE_LIMITED, 7.0),
        (Fault("secondary_rate_limit"), ErrorKind.RATE_LIMITED, None),
        (Fault("too_many_requests", retry_after=3), ErrorKind.RATE_LIMITED, 3.0),
        (Fault("too_many_requests"), ErrorKind.RATE_LIMITED, None),
        (Fault("server_error", status=502), ErrorKind.UNAVAILABLE, None),
    ],
)
def test_rate_limits_and_outages_are_told_apart(
    forge: LocalForge, fault: Fault, kind: ErrorKind, retry_after: float | None
) -> None:
    forge.add_fault(fault)
    with pytest.raises(ForgeError) as caught:
        adapter(forge).list_open_issues("alice/demo", "bzzz-task")
    assert caught.value.kind is kind
    assert caught.value.retry_after == retry_after
    forge.clear_faults()
    assert adapter(forge).list_open_issues("alice/demo", "bzzz-task").issues is not None


def test_an_exhausted_quota_says_when_it_refills(forge: LocalForge) -> None:
    forge.exhaust_rate_limit("bob", reset_in=120)
    with pytest.raises(ForgeError) as caught:
        adapter(forge).list_open_issues("alice/demo", "bzzz-task")
    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert caught.value.reset_at is not None


def test_no_automatic_retry_so_a_lost_reply_is_not_written_twice(forge: LocalForge) -> None:
    forge.add_fault(Fault("lost_reply", method="POST", path="*/comments", count=1))
    bob = adapter(forge)
    with pytest.raises(ForgeError):
        bob.comment("alice/demo", 1, "once")
    assert [c.body for c in bob.get_comments("alice/demo", 1)] == ["once"]


def test_the_token_never_shows(forge: LocalForge, tmp_path: Path) -> None:
    token = Token(TOKENS["bob"])
    assert TOKENS["bob"] not in repr(token)
    assert TOKENS["bob"] not in f"{token}"
    forge.add_fault(Fault("server_error", status=500))
    with pytest.raises(ForgeError) as caught:
        GitHubForge(forge.api_url, token).list_open_issues("alice/demo", "bzzz-task")
    assert TOKENS["bob"] not in str(caught.value)
    assert TOKENS["bob"] not in repr(caught.value.__cause__)


def test_token_sources(tmp_path: Path) -> None:
    assert load_token(None, {}) is None
    assert load_token(None, {"BZZZ_FORGE_TOKEN": "from-env"}) == Token("from-env")
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    secret.chmod(0o600)
    assert load_token(secret, {}) == Token("from-file")
    secret.chmod(0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        load_token(secret, {})
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "forge-token").write_text("from-systemd")
    assert load_token(None, {"CREDENTIALS_DIRECTORY": str(credentials)}) == Token("from-systemd")

"""The REST API through unmodified PyGithub: users, repositories, issues, labels, comments."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import github
import pytest
import requests

from bzzz.lab.forge import LocalForge
from tests.lab.forge.conftest import TOKENS, gh, headers


def test_users_and_repository(forge: LocalForge) -> None:
    alice = gh(forge, "alice")
    me = alice.get_user()
    assert (me.login, me.name, me.email) == ("alice", "Alice", "alice@example.org")
    assert alice.get_user("bob").name == "Bob"

    repo = alice.get_repo("alice/demo")
    assert repo.full_name == "alice/demo"
    assert repo.owner.login == "alice"
    assert (repo.private, repo.fork, repo.default_branch) == (False, False, "main")
    assert repo.clone_url == forge.git_url("alice", "demo")
    assert repo.url.startswith(forge.api_url + "/repos/alice/demo")
    assert repo.html_url == f"{forge.url}/alice/demo"
    assert (repo.permissions.admin, repo.permissions.push) == (True, True)
    assert gh(forge, "bob").get_repo("alice/demo").permissions.push
    carol = gh(forge, "carol").get_repo("alice/demo").permissions
    assert (carol.push, carol.pull) == (False, True)
    assert gh(forge, None).get_repo("alice/demo").name == "demo"  # anonymous reads

    branch = repo.get_branch("main")
    assert branch.commit.sha == repo.get_git_ref("heads/main").object.sha


def test_rate_limit_endpoint_is_free(forge: LocalForge) -> None:
    alice = gh(forge, "alice")
    before = alice.get_rate_limit().resources.core
    after = alice.get_rate_limit().resources.core
    assert before.limit == 5000
    assert before.remaining == after.remaining
    assert not [r for r in forge.requests() if r.path.endswith("/rate_limit") and r.counted]


def test_issue_filters(forge: LocalForge) -> None:
    repo = gh(forge, "alice").get_repo("alice/demo")

    def numbers(**filters: object) -> list[int]:
        return [issue.number for issue in repo.get_issues(**filters)]  # type: ignore[arg-type]

    assert numbers() == [5, 3, 2, 1]
    assert numbers(state="closed") == [4]
    assert numbers(state="all", direction="asc") == [1, 2, 3, 4, 5]
    assert numbers(labels=["bzzz-task"]) == [2, 1]
    assert numbers(labels=["bzzz-task", "bug"]) == [2]  # ALL labels must match
    assert numbers(labels=["bzzz-task", "bug", "help-wanted"]) == []
    assert numbers(creator="bob") == [2]
    assert numbers(state="all", assignee="none") == [5, 4, 3, 2, 1]

    issue = repo.get_issue(2)
    issue.edit(body="touched")
    assert numbers(sort="updated")[0] == 2
    assert 2 in numbers(since=issue.updated_at)
    assert numbers(since=datetime(2100, 1, 1, tzinfo=UTC)) == []


def test_pagination_link_headers(forge: LocalForge) -> None:
    repo = gh(forge, "alice", per_page=2).get_repo("alice/demo")
    assert [i.number for i in repo.get_issues(state="all")] == [5, 4, 3, 2, 1]

    url = f"{forge.api_url}/repos/alice/demo/issues"
    first = requests.get(url, params={"state": "all", "per_page": 2}, timeout=10)
    base = f"{url}?state=all&per_page=2"
    assert first.headers["Link"] == f'<{base}&page=2>; rel="next", <{base}&page=3>; rel="last"'
    middle = requests.get(url, params={"state": "all", "per_page": 2, "page": 2}, timeout=10)
    assert middle.headers["Link"] == (
        f'<{base}&page=1>; rel="prev", <{base}&page=3>; rel="next", '
        f'<{base}&page=3>; rel="last", <{base}&page=1>; rel="first"'
    )
    last = requests.get(url, params={"state": "all", "per_page": 2, "page": 3}, timeout=10)
    assert [i["number"] for i in last.json()] == [1]
    assert 'rel="next"' not in last.headers["Link"]
    assert "Link" not in requests.get(url, timeout=10).headers  # one page


def test_create_issue_drops_labels_without_push_access(forge: LocalForge) -> None:
    mine = (
        gh(forge, "bob")
        .get_repo("alice/demo")
        .create_issue(
            "From a collaborator", body="body", labels=["bzzz-task", "new-label"], assignees=["bob"]
        )
    )
    assert sorted(label.name for label in mine.labels) == ["bzzz-task", "new-label"]
    assert [a.login for a in mine.assignees] == ["bob"]
    assert mine.author_association == "COLLABORATOR"

    theirs = (
        gh(forge, "carol")
        .get_repo("alice/demo")
        .create_issue("From a stranger", labels=["bzzz-task"], assignees=["carol"])
    )
    assert theirs.labels == []
    assert theirs.assignees == []
    assert theirs.author_association == "NONE"
    assert theirs.number == mine.number + 1
    assert gh(forge, "alice").get_repo("alice/demo").get_issue(1).author_association == "OWNER"


def test_edit_labels_and_assignees(forge: LocalForge) -> None:
    issue = gh(forge, "bob").get_repo("alice/demo").get_issue(1)
    issue.add_to_labels("bug", "brand-new")
    assert sorted(label.name for label in issue.get_labels()) == ["brand-new", "bug", "bzzz-task"]
    issue.remove_from_labels("bug")
    assert sorted(label.name for label in issue.get_labels()) == ["brand-new", "bzzz-task"]
    issue.edit(labels=["help-wanted"])  # a list replaces the set
    assert [
        label.name for label in gh(forge, "alice").get_repo("alice/demo").get_issue(1).labels
    ] == ["help-wanted"]

    issue.add_to_assignees("bob")
    issue.edit(assignees=["alice"])  # replaces: last writer wins
    assert [a.login for a in issue.assignees] == ["alice"]
    issue.edit(title="Renamed", state="closed")
    assert (issue.title, issue.state, issue.closed_at is not None) == ("Renamed", "closed", True)

    stranger = gh(forge, "carol").get_repo("alice/demo").get_issue(1)
    with pytest.raises(github.GithubException) as refused:
        stranger.add_to_labels("bug")
    assert refused.value.status == 403
    with pytest.raises(github.GithubException) as refused:
        stranger.edit(title="mine now")
    assert refused.value.status == 403
    stranger.add_to_assignees("carol")  # silently ignored, as on GitHub
    assert [a.login for a in stranger.assignees] == ["alice"]
    own = gh(forge, "carol").get_repo("alice/demo").get_issue(3)
    own.edit(body="authors edit their own issues", labels=["bug"])  # labels dropped
    assert (own.body, [label.name for label in own.labels]) == (
        "authors edit their own issues",
        ["help-wanted"],
    )


def test_comments(forge: LocalForge) -> None:
    issue = gh(forge, "carol").get_repo("alice/demo").get_issue(1)
    first = issue.create_comment("I can take this")
    second = gh(forge, "bob").get_repo("alice/demo").get_issue(1).create_comment("Go ahead")
    assert second.id > first.id
    assert (first.user.login, first.author_association) == ("carol", "NONE")
    assert second.author_association == "COLLABORATOR"
    listed = gh(forge, None).get_repo("alice/demo").get_issue(1).get_comments()
    assert [(c.id, c.body) for c in listed] == [
        (first.id, "I can take this"),
        (second.id, "Go ahead"),
    ]
    assert gh(forge, "alice").get_repo("alice/demo").get_issue(1).comments == 2

    first.edit("I can take this, tomorrow")
    with pytest.raises(github.GithubException) as refused:
        gh(forge, "dave").get_repo("alice/demo").get_issue(1).get_comment(second.id).delete()
    assert refused.value.status == 403
    gh(forge, "alice").get_repo("alice/demo").get_issue(1).get_comment(second.id).delete()
    assert [c.body for c in issue.get_comments()] == ["I can take this, tomorrow"]


def test_errors(forge: LocalForge) -> None:
    bad = github.Github(
        base_url=forge.api_url, auth=github.Auth.Token("not-a-token"), seconds_between_requests=0
    )
    with pytest.raises(github.BadCredentialsException):
        bad.get_user().login  # noqa: B018 - the attribute fetches
    with pytest.raises(github.UnknownObjectException):
        gh(forge, "alice").get_repo("alice/nothing")
    with pytest.raises(github.UnknownObjectException):
        gh(forge, "alice").get_repo("alice/demo").get_issue(99)

    anonymous = requests.post(
        f"{forge.api_url}/repos/alice/demo/issues", json={"title": "x"}, timeout=10
    )
    assert anonymous.status_code == 401
    nowhere = requests.get(f"{forge.api_url}/no/such/route", headers=headers("alice"), timeout=10)
    assert (nowhere.status_code, nowhere.json()["message"]) == (404, "Not Found")
    invalid = requests.post(
        f"{forge.api_url}/repos/alice/demo/issues", json={}, headers=headers("alice"), timeout=10
    )
    assert invalid.status_code == 422
    assert invalid.json()["message"] == "Validation Failed"
    bearer = requests.get(
        f"{forge.api_url}/user", headers={"Authorization": "Bearer tok-dave-0123456789"}, timeout=10
    )
    assert bearer.json()["login"] == "dave"
    wrong = requests.get(
        f"{forge.api_url}/user", headers={"Authorization": "Bearer leaked-123"}, timeout=10
    )
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Bad credentials"
    assert "leaked-123" not in wrong.text


def test_concurrent_writers_get_distinct_numbers(forge: LocalForge) -> None:
    """Each request thread has its own SQLite connection; numbering is one write transaction."""
    numbers: list[int] = []
    failures: list[BaseException] = []

    def create(login: str) -> None:
        repo = gh(forge, login).get_repo("alice/demo")
        for n in range(5):
            try:
                numbers.append(repo.create_issue(f"{login} {n}").number)
            except Exception as exc:  # collected for the assertion below
                failures.append(exc)

    writers = [threading.Thread(target=create, args=(login,)) for login in TOKENS for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert failures == []
    assert sorted(numbers) == list(range(6, 6 + 5 * len(writers)))

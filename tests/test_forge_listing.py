"""Every listing of the forge adapter costs one request per page, never one per item:
counted in the local forge's request log. (PyGithub's paginated lists would fetch each
listed comment and pull request again when its `raw_data` is read: 10 comments cost 11
requests.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.forge.reqlog import LoggedRequest
from tests.conftest import seeded_forge
from tests.lab.forge.conftest import clone, commit_file

TOKEN = "tok-alice-0123456789"  # noqa: S105
REPO = "alice/demo"
WORLD = {
    "users": [{"login": "alice", "token": TOKEN}],
    "repos": [
        {
            "owner": "alice",
            "name": "demo",
            "files": {"README.md": "# demo\n"},
            "labels": ["bzzz-task"],
            "issues": [
                {
                    "number": 1,
                    "title": "Thirty comments",
                    "labels": ["bzzz-task"],
                    "comments": [{"author": "alice", "body": f"c{n}"} for n in range(30)],
                },
                {
                    "number": 2,
                    "title": "A hundred and fifty comments",
                    "labels": ["bzzz-task"],
                    "comments": [{"author": "alice", "body": f"c{n}"} for n in range(150)],
                },
            ],
        }
    ],
}
PULLS = 10


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-listing-") as running:
        _open_pull_requests(running, tmp_path_factory.mktemp("clone"))
        yield running


def _open_pull_requests(forge: LocalForge, path: Path) -> None:
    repo = clone(forge.git_url("alice", "demo"), path)
    branches = [f"feature-{n}" for n in range(PULLS)]
    for branch in branches:
        commit_file(repo, branch, f"{branch}.txt", f"{branch}\n")

    class Alice(pygit2.RemoteCallbacks):
        def credentials(self, *_: object) -> pygit2.UserPass:
            return pygit2.UserPass("alice", TOKEN)

    repo.remotes["origin"].push([f"refs/heads/{b}" for b in branches], callbacks=Alice())
    alice = account(forge)
    for branch in branches:
        alice.create_pull_request(
            REPO, title=branch, body="", head=branch, base="main", draft=False
        )


def account(forge: LocalForge, per_page: int = 100) -> GitHubForge:
    return GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0, per_page=per_page)


def requests_of(forge: LocalForge, read: object) -> list[LoggedRequest]:
    """The requests `read()` made (a callable), after the log so far."""
    logged = forge.requests()
    mark = logged[-1].seq if logged else 0
    assert callable(read)
    read()
    return forge.requests(mark)


def test_thirty_comments_cost_one_request(forge: LocalForge) -> None:
    found = []
    log = requests_of(forge, lambda: found.extend(account(forge).get_comments(REPO, 1)))
    assert [c.body for c in found] == [f"c{n}" for n in range(30)]
    assert [(r.method, r.path.removeprefix("/api/v3"), r.status) for r in log] == [
        ("GET", f"/repos/{REPO}/issues/1/comments", 200)
    ]


@pytest.mark.parametrize(("per_page", "pages"), [(100, 2), (30, 5)])
def test_a_hundred_and_fifty_comments_cost_one_request_per_page(
    forge: LocalForge, per_page: int, pages: int
) -> None:
    found = []
    log = requests_of(forge, lambda: found.extend(account(forge, per_page).get_comments(REPO, 2)))
    assert [c.body for c in found] == [f"c{n}" for n in range(150)]  # in order, none twice
    assert len(log) == pages
    assert all(r.path.endswith(f"/repos/{REPO}/issues/2/comments") for r in log)
    assert [f"page={n}" in r.query for n, r in enumerate(log[1:], start=2)] == [True] * (pages - 1)


def test_ten_pull_requests_cost_one_request(forge: LocalForge) -> None:
    found = []
    log = requests_of(forge, lambda: found.extend(account(forge).list_pull_requests(REPO)))
    assert sorted(p.head for p in found) == sorted(f"alice:feature-{n}" for n in range(PULLS))
    assert [(r.method, r.path.removeprefix("/api/v3")) for r in log] == [
        ("GET", f"/repos/{REPO}/pulls")
    ]
    paged = requests_of(forge, lambda: found.extend(account(forge, 4).list_pull_requests(REPO)))
    assert len(paged) == 3  # 4 + 4 + 2
    assert len(found) == 2 * PULLS


def test_finding_a_pull_request_costs_one_request(forge: LocalForge) -> None:
    found = []
    log = requests_of(
        forge,
        lambda: found.append(
            account(forge, 1).find_pull_request(REPO, head="alice:feature-3", base="main")
        ),
    )
    (pull,) = found
    assert pull is not None
    assert pull.head == "alice:feature-3"
    assert len(log) == 1  # the first match ends the listing, even one item a page
    assert "head=alice%3Afeature-3" in log[0].query


def test_an_issue_listing_costs_one_request_per_page(forge: LocalForge) -> None:
    pages = []
    log = requests_of(
        forge, lambda: pages.append(account(forge, 1).list_open_issues(REPO, "bzzz-task"))
    )
    (page,) = pages
    assert page.issues is not None
    assert [i.number for i in page.issues] == [1, 2]
    assert page.requests == len(log) == 2

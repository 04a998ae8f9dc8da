"""Forks, git smart HTTP (pygit2 and the git CLI) and pull requests checked against real git."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import github
import pygit2
import pytest
import requests

from bzzz.lab.forge import LocalForge
from tests.lab.forge.conftest import TOKENS, clone, commit_file, gh, push


def test_fork_is_202_and_repeatable(forge: LocalForge, tmp_dir: Path) -> None:
    owner_copy = clone(forge.git_url("alice", "demo"), tmp_dir / "owner")
    extra = commit_file(owner_copy, "extra", "extra.txt", "another branch\n")
    push(owner_copy, "alice", "extra")

    upstream = gh(forge, "carol").get_repo("alice/demo")
    fork = upstream.create_fork()
    assert (fork.full_name, fork.fork) == ("carol/demo", True)
    assert fork.parent.full_name == fork.source.full_name == "alice/demo"
    assert fork.clone_url == forge.git_url("carol", "demo")
    assert fork.permissions.push
    assert upstream.create_fork().id == fork.id
    assert [r.full_name for r in upstream.get_forks()] == ["carol/demo"]
    statuses = [r.status for r in forge.requests() if r.path.endswith("/forks")]
    assert statuses == [202, 202, 200]
    assert fork.get_branch("main").commit.sha == upstream.get_branch("main").commit.sha
    assert fork.get_branch("extra").commit.sha == extra  # a clone with all branches


def test_clone_push_and_pull_request(forge: LocalForge, tmp_dir: Path) -> None:
    carol = gh(forge, "carol")
    upstream = carol.get_repo("alice/demo")
    fork = upstream.create_fork()
    work = clone(fork.clone_url, tmp_dir / "work")
    assert (Path(work.workdir) / "src/app.py").read_text() == "print('hello')\n"
    sha = commit_file(work, "fix-1", "src/app.py", "print('hello, world')\n")

    pushed = push(work, "carol", "fix-1")
    assert pushed.results == {"refs/heads/fix-1": None}  # None: accepted
    assert fork.get_branch("fix-1").commit.sha == sha

    pull = upstream.create_pull(
        base="main", head="carol:fix-1", title="Greet the world", body="Fixes #1"
    )
    assert pull.number == 6  # issues and pull requests share numbers
    assert (pull.head.sha, pull.head.ref, pull.head.label) == (sha, "fix-1", "carol:fix-1")
    assert pull.head.repo.full_name == "carol/demo"
    assert (pull.base.ref, pull.base.repo.full_name) == ("main", "alice/demo")
    assert (pull.state, pull.draft, pull.merged) == ("open", False, False)
    assert pull.html_url == f"{forge.url}/alice/demo/pull/6"

    as_issue = upstream.get_issue(6)
    assert "/pull/" in as_issue.html_url
    assert as_issue.pull_request.url == pull.url
    listed = {i.number: i for i in upstream.get_issues()}
    assert "/pull/" in listed[6].html_url
    assert "/pull/" not in listed[1].html_url

    assert [p.number for p in upstream.get_pulls(head="carol:fix-1")] == [6]
    assert [p.number for p in upstream.get_pulls(head="dave:fix-1")] == []
    assert [p.number for p in upstream.get_pulls(base="main", state="all")] == [6]

    with pytest.raises(github.GithubException) as duplicate:
        upstream.create_pull(base="main", head="carol:fix-1", title="again")
    assert duplicate.value.status == 422
    assert duplicate.value.data["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for carol:fix-1.",
        }
    ]

    newer = commit_file(work, "fix-1", "NOTES.md", "more\n")
    push(work, "carol", "fix-1")
    assert upstream.get_pull(6).head.sha == newer  # a push moves the head at once

    pull.edit(state="closed")
    assert upstream.get_pull(6).state == "closed"
    assert [p.number for p in upstream.get_pulls()] == []


def test_pull_request_validation(forge: LocalForge, tmp_dir: Path) -> None:
    upstream = gh(forge, "carol").get_repo("alice/demo")
    upstream.create_fork()

    def refused(**fields: str) -> dict[str, object]:
        with pytest.raises(github.GithubException) as error:
            upstream.create_pull(title="t", **fields)
        assert error.value.status == 422
        assert error.value.data["message"] == "Validation Failed"
        return error.value.data["errors"][0]  # type: ignore[no-any-return]

    assert refused(base="main", head="carol:main")["message"] == (
        "No commits between main and carol:main"
    )
    assert refused(base="main", head="carol:nope")["field"] == "head"
    assert refused(base="nope", head="carol:main")["field"] == "base"
    assert refused(base="main", head="nobody:main")["field"] == "head"

    # a branch in the base repository itself, pushed by a collaborator
    bob = gh(forge, "bob").get_repo("alice/demo")
    work = clone(bob.clone_url, tmp_dir / "bob")
    sha = commit_file(work, "bob/topic", "topic.txt", "topic\n")
    assert push(work, "bob", "bob/topic").results == {"refs/heads/bob/topic": None}
    assert bob.get_branch("bob/topic").commit.sha == sha
    pull = bob.create_pull(base="main", head="bob/topic", title="Topic", draft=True)
    assert (pull.head.label, pull.head.sha, pull.draft) == ("alice:bob/topic", sha, True)


def test_push_needs_credentials_and_rights(forge: LocalForge, tmp_dir: Path) -> None:
    url = forge.git_url("alice", "demo")
    work = clone(url, tmp_dir / "work")  # anonymous clone of a public repository
    commit_file(work, "sneaky", "x.txt", "x\n")

    with pytest.raises(pygit2.GitError):
        push(work, None, "sneaky")  # 401: no credentials given
    with pytest.raises(pygit2.GitError, match="403"):
        push(work, "carol", "sneaky")  # right credentials, no push access
    repo = gh(forge, "alice").get_repo("alice/demo")
    with pytest.raises(github.GithubException):
        repo.get_branch("sneaky")

    challenge = requests.get(f"{url}/info/refs?service=git-receive-pack", timeout=10)
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="bzzz-forge"'
    wrong = requests.get(
        f"{url}/info/refs?service=git-receive-pack", auth=("alice", "wrong-token"), timeout=10
    )
    assert wrong.status_code == 401
    denied = requests.get(
        f"{url}/info/refs?service=git-receive-pack", auth=("carol", TOKENS["carol"]), timeout=10
    )
    assert denied.status_code == 403

    assert push(work, "alice", "sneaky").results == {"refs/heads/sneaky": None}
    assert repo.get_branch("sneaky").commit.sha == str(work.branches["sneaky"].target)


def test_git_cli_clones_and_pushes(forge: LocalForge, tmp_dir: Path) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str, cwd: Path = tmp_dir) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    cloned = git("clone", forge.git_url("alice", "demo"), "cli")
    assert cloned.returncode == 0, cloned.stderr
    assert (tmp_dir / "cli" / "README.md").read_text() == "# demo\n"
    work = tmp_dir / "cli"
    git("checkout", "-b", "cli-branch", cwd=work)
    (work / "cli.txt").write_text("from the git CLI\n")
    git("add", "cli.txt", cwd=work)
    commit = git("-c", "user.name=T", "-c", "user.email=t@e", "commit", "-m", "cli", cwd=work)
    assert commit.returncode == 0, commit.stderr

    anonymous = git("push", "origin", "cli-branch", cwd=work)
    assert anonymous.returncode != 0
    basic = base64.b64encode(f"bob:{TOKENS['bob']}".encode()).decode()
    pushed = git(
        "-c",
        f"http.extraHeader=Authorization: Basic {basic}",
        "push",
        "origin",
        "cli-branch",
        cwd=work,
    )
    assert pushed.returncode == 0, pushed.stderr
    head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    assert gh(forge, "bob").get_repo("alice/demo").get_branch("cli-branch").commit.sha == head

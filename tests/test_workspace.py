"""The task workspace against the local forge: fork once, clone, branch, commit as the node,
push with the token only in a callback, refuse bad credentials and refs, clean up."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pygit2
import pytest

from bzzz.config import ConfigError, GitSettings, NodeSettings, Settings, load_settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import wait_for
from bzzz.work import TaskSpec
from tests.conftest import seeded_forge
from tests.lab.forge.conftest import clone, commit_file, push
from workers.git_access import GitIdentity, WorkspaceError, node_identity
from workers.workspace import PushRejected, Workspace, branch_name, prepare

TOKENS = {
    "lab": "tok-lab-5b1c0e77a2",
    "node-a": "tok-node-a-9f3d2c1b8e",
    "node-b": "tok-node-b-41aa07c6d2",
}
WORLD = {
    "users": [{"login": login, "token": token} for login, token in TOKENS.items()],
    "repos": [
        {
            "owner": "lab",
            "name": "hello",
            "default_branch": "trunk",
            "files": {
                "README.md": "# hello\n",
                "hello.py": "print('hello')\n",
                ".gitignore": "*.pyc\n",
            },
            "issues": [{"number": 1, "title": "Add farewell"}],
        }
    ],
}
NODE_A = GitIdentity("Node A", "node-a@bzzz.example")
BRANCH = "bzzz/task-1-add-farewell"


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-ws-") as forge:
        yield forge


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "workspaces"


def account(forge: LocalForge, login: str = "node-a") -> GitHubForge:
    return GitHubForge(forge.api_url, Token(TOKENS[login]), seconds_between_writes=0)


def task(
    number: int = 1,
    title: str = "Add farewell",
    prefix: str = "bzzz/task-1-",
    repo: str = "lab/hello",
) -> TaskSpec:
    return TaskSpec(
        task_id=f"{repo}#{number}",
        repo=repo,
        number=number,
        issue_url="",
        model="",
        input=title,
        branch_prefix=prefix,
        node="node-a",
        comment_id=1,
        attempt=1,
    )


def open_workspace(
    forge: LocalForge,
    root: Path,
    token: str = TOKENS["node-a"],
    *,
    login: str = "node-a",
    repo: str = "lab/hello",
    push_to: str = "fork",
    fork_timeout: float = 300.0,
) -> Workspace:
    forge_account = account(forge, login)
    spec = task(repo=repo)
    return prepare(
        forge_account, Token(token), spec, NODE_A, root, fork_timeout=fork_timeout, push_to=push_to
    )


def fresh_clone(forge: LocalForge, owner: str, path: Path) -> pygit2.Repository:
    return clone(forge.git_url(owner, "hello"), path)


def fork_branch(forge: LocalForge, branch: str = BRANCH) -> str | None:
    return forge.repos.branch_sha(forge.repos.path("node-a", "hello"), branch)


def farewell(workspace: Workspace) -> None:
    (workspace.path / "hello.py").write_text("print('hello')\nprint('goodbye')\n")
    (workspace.path / "NOTES.md").write_text("said goodbye\n")  # untracked until committed
    (workspace.path / "README.md").unlink()


def test_prepare_forks_once_and_branches_from_upstream_now(
    forge: LocalForge, root: Path, tmp_path: Path
) -> None:
    first = open_workspace(forge, root)
    assert (first.repo, first.fork, first.base, first.branch) == (
        "lab/hello",
        "node-a/hello",
        "trunk",
        BRANCH,
    )
    assert (first.path / "hello.py").read_text() == "print('hello')\n"
    assert not (first.path / ".git").exists()  # git's own files are out of the sandbox's reach
    assert not first.changed()
    assert first.diff() == ""

    # upstream moves on; the fork stays behind, but a new workspace starts from upstream
    owner = clone(forge.git_url("lab", "hello"), tmp_path / "owner")
    news = commit_file(owner, "trunk", "NEWS.md", "version 2\n")
    assert push(owner, "lab", "trunk", token=TOKENS["lab"]).results == {"refs/heads/trunk": None}
    second = open_workspace(forge, root)
    assert (second.path / "NEWS.md").read_text() == "version 2\n"
    assert str(pygit2.Repository(str(second.path.parent / "git")).head.target) == news
    assert forge.repos.branch_sha(forge.repos.path("node-a", "hello"), "trunk") != news

    fork_calls = [r.status for r in forge.requests() if r.path.endswith("/forks")]
    assert fork_calls == [202, 202]  # asked twice, the same fork both times
    described = account(forge).get_repository("node-a/hello")
    assert (described.fork, described.parent, described.can_push) == (True, "lab/hello", True)
    assert described.clone_url == forge.git_url("node-a", "hello")
    assert account(forge, "node-b").get_repository("node-a/hello").can_push is False
    first.close()
    second.close()


def test_commit_as_the_node_and_push_to_the_fork(
    forge: LocalForge, root: Path, tmp_path: Path
) -> None:
    with open_workspace(forge, root) as workspace:
        farewell(workspace)
        (workspace.path / "cache.pyc").write_bytes(b"\0ignored")
        assert workspace.changed()
        diff = workspace.diff()
        assert "+print('goodbye')" in diff
        assert "diff --git a/NOTES.md b/NOTES.md\nnew file mode" in diff
        assert "deleted file mode 100644" in diff
        assert "cache.pyc" not in diff

        sha = workspace.commit("Say goodbye\n\nCloses #1")
        assert sha is not None
        assert workspace.commit("again") is None  # nothing new
        assert workspace.changed()  # still differs from the base
        workspace.push()

    assert fork_branch(forge) == sha
    pushed = fresh_clone(forge, "node-a", tmp_path / "check")
    commit = pushed.revparse_single(f"origin/{BRANCH}").peel(pygit2.Commit)
    for person in (commit.author, commit.committer):
        assert (person.name, person.email) == (NODE_A.name, NODE_A.email)
    assert commit.message == "Say goodbye\n\nCloses #1\n"
    assert [str(p) for p in commit.parent_ids] == [fork_branch(forge, "trunk")]
    assert sorted(str(e.name) for e in commit.tree) == [".gitignore", "NOTES.md", "hello.py"]


def test_a_retry_replaces_the_earlier_attempt(forge: LocalForge, root: Path) -> None:
    with open_workspace(forge, root) as first:
        (first.path / "attempt.txt").write_text("one\n")
        first.commit("First attempt")
        first.push()
    with open_workspace(forge, root) as second:
        assert second.branch == BRANCH
        assert not (second.path / "attempt.txt").exists()  # starts again from the base
        (second.path / "attempt.txt").write_text("two\n")
        retried = second.commit("Second attempt")
        assert retried is not None
        second.push()
    assert fork_branch(forge) == retried
    base = fork_branch(forge, "trunk")
    fork = pygit2.Repository(str(forge.repos.path("node-a", "hello")))
    assert [str(p) for p in fork[retried].peel(pygit2.Commit).parent_ids] == [base]


def test_a_task_handed_on_continues_from_its_holder_s_branch_or_else_afresh(
    forge: LocalForge, root: Path
) -> None:
    with open_workspace(forge, root) as first:
        (first.path / "attempt.txt").write_text("begun\n")
        begun = first.commit("Work in progress, handed on")
        first.push()
    handed = replace(task(), handed_by="node-a", continue_from=f"node-a/hello:{BRANCH}")
    with prepare(account(forge), Token(TOKENS["node-a"]), handed, NODE_A, root) as going_on:
        assert going_on.continued
        assert (going_on.path / "attempt.txt").read_text() == "begun\n"
        assert "+begun" in going_on.diff()  # from the base: all the work so far
        assert going_on.commit("nothing new") is None
        (going_on.path / "attempt.txt").write_text("done\n")
        finished = going_on.commit("Finished")
        going_on.push()
    fork = pygit2.Repository(str(forge.repos.path("node-a", "hello")))
    assert [str(p) for p in fork[finished].peel(pygit2.Commit).parent_ids] == [begun]
    gone = replace(handed, continue_from="node-a/hello:no-such-branch")
    with prepare(account(forge), Token(TOKENS["node-a"]), gone, NODE_A, root) as afresh:
        assert not afresh.continued
        assert not afresh.changed()


def test_a_wrong_token_is_refused_once_not_retried(forge: LocalForge, root: Path) -> None:
    wrong = "tok-wrong-0000000000"
    with open_workspace(forge, root, token=wrong) as workspace:  # public: fetching needs none
        (workspace.path / "x.txt").write_text("x\n")
        workspace.commit("Add x")
        seen = forge.requests()[-1].seq
        started = time.monotonic()
        with pytest.raises(PushRejected, match="rejected this node's token") as refused:
            workspace.push()
        assert time.monotonic() - started < 5
    assert wrong not in str(refused.value)

    def asked() -> list[int]:
        logged = forge.requests(after=seen)
        return [r.status for r in logged if "receive-pack" in r.query + r.path]

    # the forge logs a request just after answering it
    wait_for(lambda: len(asked()) >= 2, 5, "the push's requests in the forge's log")
    assert asked() == [401, 401]  # once without credentials, once with them; then it stops
    assert fork_branch(forge) is None


def test_a_push_without_permission_is_rejected(forge: LocalForge, root: Path) -> None:
    # node-b's token is valid but node-b may not push to node-a's fork: 403
    with open_workspace(forge, root, token=TOKENS["node-b"]) as workspace:
        (workspace.path / "x.txt").write_text("x\n")
        workspace.commit("Add x")
        with pytest.raises(PushRejected, match="403") as denied:
            workspace.push()
    assert TOKENS["node-b"] not in str(denied.value)
    assert fork_branch(forge) is None


def test_a_ref_the_forge_declines_is_rejected(forge: LocalForge, root: Path) -> None:
    with open_workspace(forge, root) as workspace:
        # what GitHub's branch protection does: the push is received, the ref refused
        hook = forge.repos.path("node-a", "hello") / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
        hook.chmod(0o755)
        (workspace.path / "x.txt").write_text("x\n")
        workspace.commit("Add x")
        with pytest.raises(PushRejected, match=f"rejected {BRANCH}: pre-receive hook declined"):
            workspace.push()
    assert fork_branch(forge) is None


def test_nothing_to_push_before_a_commit(forge: LocalForge, root: Path) -> None:
    with open_workspace(forge, root) as workspace, pytest.raises(WorkspaceError, match="nothing"):
        workspace.push()


def test_the_token_is_nowhere_on_disk_or_in_logs(
    forge: LocalForge, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = TOKENS["node-a"]
    caplog.set_level(logging.DEBUG)
    workspace = open_workspace(forge, root)
    farewell(workspace)
    workspace.commit("Say goodbye")
    workspace.push()
    home = workspace.path.parent
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "config" for p in files)
    assert [p for p in files if token.encode() in p.read_bytes()] == []
    config = (home / "git" / "config").read_text()
    assert f"url = {forge.git_url('node-a', 'hello')}\n" in config
    assert token not in caplog.text
    assert token not in repr(workspace)
    workspace.close()


def test_a_git_repository_made_in_the_work_tree_changes_nothing(
    forge: LocalForge, root: Path
) -> None:
    """The sandbox may run `git init` and point a remote elsewhere: neither is committed
    nor followed, since the workspace's git directory lies outside the work tree."""
    with open_workspace(forge, root) as workspace:

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=workspace.path, check=True, capture_output=True)

        git("init", "--quiet")
        git("remote", "add", "origin", "http://127.0.0.1:9/stolen.git")
        (workspace.path / "x.txt").write_text("x\n")
        assert ".git/" not in workspace.diff()
        sha = workspace.commit("Add x")
        workspace.push()
    assert fork_branch(forge) == sha


def test_close_removes_the_clone_and_is_idempotent(forge: LocalForge, root: Path) -> None:
    workspace = open_workspace(forge, root)
    locked = workspace.path / "locked"
    locked.mkdir()
    (locked / "file").write_text("x\n")
    locked.chmod(0o500)  # as a sandboxed command might leave it
    home = workspace.path.parent
    workspace.close()
    assert not home.exists()
    assert root.exists()
    workspace.close()
    assert list(root.iterdir()) == []


def test_prepare_waits_for_a_fork_to_become_clonable(forge: LocalForge, root: Path) -> None:
    """On GitHub a new fork's git repository appears some time after the 202."""
    account(forge).fork("lab/hello")
    bare = forge.repos.path("node-a", "hello")
    hidden = bare.with_name("hello.git.copying")
    bare.rename(hidden)
    appear = threading.Timer(0.5, hidden.rename, args=(bare,))
    appear.start()
    started = time.monotonic()
    try:
        workspace = open_workspace(forge, root, fork_timeout=30)
    finally:
        appear.join()
    assert time.monotonic() - started >= 0.5
    assert (workspace.path / "hello.py").exists()
    workspace.close()


def test_a_fork_that_never_appears_fails_at_the_deadline(forge: LocalForge, root: Path) -> None:
    account(forge).fork("lab/hello")
    bare = forge.repos.path("node-a", "hello")
    bare.rename(bare.with_name("gone.git"))
    started = time.monotonic()
    with pytest.raises(WorkspaceError, match=r"node-a/hello is not clonable after 1 s"):
        open_workspace(forge, root, fork_timeout=1)
    assert time.monotonic() - started < 5
    assert list(root.iterdir()) == []  # nothing left behind


def forks_asked(forge: LocalForge) -> int:
    return sum(1 for r in forge.requests() if r.path.endswith("/forks"))


def test_auto_pushes_to_the_repository_itself_given_push_access(
    forge: LocalForge, root: Path
) -> None:
    files = {"README.md": "# team\n", "hello.py": "print('hello')\n"}
    team = {"owner": "lab", "name": "team", "files": files}
    forge.seed({"repos": [{**team, "collaborators": ["node-a"]}]})
    with open_workspace(forge, root, repo="lab/team", push_to="auto") as workspace:
        assert (workspace.repo, workspace.fork, workspace.in_repository) == (
            "lab/team",
            "lab/team",
            True,
        )
        assert (workspace.pull_head, workspace.head_label) == (BRANCH, f"lab:{BRANCH}")
        farewell(workspace)
        sha = workspace.commit("Say goodbye")
        workspace.push()
    assert forks_asked(forge) == 0
    assert forge.repos.branch_sha(forge.repos.path("lab", "team"), BRANCH) == sha
    assert forge.repos.path("node-a", "team").exists() is False  # no fork was made
    node = account(forge)
    pull = node.create_pull_request(
        "lab/team", title="Farewell", body="", head=BRANCH, base="main", draft=True
    )
    assert pull.head == f"lab:{BRANCH}"
    found = node.find_pull_request("lab/team", head=f"lab:{BRANCH}", base="main")
    assert found is not None
    assert found.number == pull.number


def test_auto_forks_without_push_access(forge: LocalForge, root: Path) -> None:
    with open_workspace(forge, root, push_to="auto") as workspace:
        assert (workspace.fork, workspace.in_repository) == ("node-a/hello", False)
        assert workspace.pull_head == f"node-a:{BRANCH}"
    assert forks_asked(forge) == 1


def test_origin_without_push_access_is_refused_before_anything_is_made(
    forge: LocalForge, root: Path
) -> None:
    with pytest.raises(WorkspaceError, match=r"may not push to lab/hello.*git\.push_to"):
        open_workspace(forge, root, push_to="origin")
    assert forks_asked(forge) == 0
    assert not root.exists()  # refused before any clone was begun


def test_forking_ones_own_repository_pushes_to_it(forge: LocalForge, root: Path) -> None:
    # GitHub answers a fork of one's own repository with the repository itself
    assert account(forge, "lab").fork("lab/hello") == "lab/hello"
    with open_workspace(forge, root, TOKENS["lab"], login="lab", push_to="fork") as workspace:
        assert (workspace.fork, workspace.in_repository, workspace.pull_head) == (
            "lab/hello",
            True,
            BRANCH,
        )
        farewell(workspace)
        sha = workspace.commit("Say goodbye")
        workspace.push()
    assert forge.repos.branch_sha(forge.repos.path("lab", "hello"), BRANCH) == sha
    assert [r.status for r in forge.requests() if r.path.endswith("/forks")] == [202, 202]


@pytest.mark.parametrize(
    ("title", "prefix", "branch"),
    [
        ("Add farewell", "bzzz/task-1-", "bzzz/task-1-add-farewell"),
        ("Fix: crash on `--help` (again!)", "", "bzzz/task-7-fix-crash-on-help-again"),
        ("Ünïcödé títle", "work/{number}/", "work/7/unicode-title"),
        ("日本語", "bzzz/task-7-", "bzzz/task-7-change"),
        ("a " * 60, "t-", "t-" + "-".join(["a"] * 20)),
    ],
)
def test_branch_names(title: str, prefix: str, branch: str) -> None:
    assert branch_name(task(7, title, prefix)) == branch


def settings(tmp_path: Path, name: str = "", email: str = "") -> Settings:
    return Settings(home=tmp_path, node=NodeSettings("node-a"), git=GitSettings(name, email))


def test_identity_from_config(tmp_path: Path) -> None:
    configured = settings(tmp_path, "Node A", "node-a@bzzz.example")
    assert node_identity(configured, environ={"HOME": str(tmp_path / "empty")}) == NODE_A


def test_identity_from_the_nodes_gitconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Node A\n\temail = node-a@bzzz.example\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert node_identity(settings(tmp_path)) == NODE_A
    # a key in config wins over the file
    assert node_identity(settings(tmp_path, name="Other")) == GitIdentity(
        "Other", "node-a@bzzz.example"
    )
    # git's XDG file counts too, below ~/.gitconfig
    (home / ".gitconfig").unlink()
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "config").write_text("[user]\nname = X\nemail = x@bzzz.example\n")
    assert node_identity(settings(tmp_path)) == GitIdentity("X", "x@bzzz.example")


def test_no_identity_names_the_keys_to_set(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkspaceError) as missing:
        node_identity(settings(tmp_path, name="Node A"), environ={"HOME": str(tmp_path / "empty")})
    for key in ("git.author_name", "git.author_email", "BZZZ_GIT_AUTHOR_EMAIL", "user.email"):
        assert key in str(missing.value)


def test_git_settings_load_and_validate(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[node]\nname = "node-a"\n\n[git]\nauthor_name = "A"\n')
    loaded = load_settings(tmp_path, environ={"BZZZ_GIT_AUTHOR_EMAIL": "a@bzzz.example"})
    assert loaded.git == GitSettings("A", "a@bzzz.example", push_to="fork")
    pushing = load_settings(tmp_path, environ={"BZZZ_GIT_PUSH_TO": "auto"})
    assert pushing.git.push_to == "auto"
    with pytest.raises(ConfigError, match=r"git\.push_to.*fork, origin, auto"):
        load_settings(tmp_path, environ={"BZZZ_GIT_PUSH_TO": "upstream"})
    with pytest.raises(ConfigError, match=r"git\.author_email"):
        load_settings(tmp_path, environ={"BZZZ_GIT_AUTHOR_EMAIL": "not-an-address"})

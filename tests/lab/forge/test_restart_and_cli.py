"""State survives a restart on the same directory; `bzzz lab forge seed` and `serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import github
import pytest
import requests

from bzzz.lab.forge import LocalForge, SeedError
from tests.lab.forge.conftest import TOKENS, WORLD, ForgeFactory, clone, commit_file, gh, push


def test_state_and_git_refs_survive_a_restart(make_forge: ForgeFactory, tmp_dir: Path) -> None:
    first = make_forge("state")
    first.seed(WORLD)
    upstream = gh(first, "carol").get_repo("alice/demo")
    fork = upstream.create_fork()
    work = clone(fork.clone_url, tmp_dir / "work")
    sha = commit_file(work, "fix", "fix.txt", "fixed\n")
    push(work, "carol", "fix")
    pull = upstream.create_pull(base="main", head="carol:fix", title="Fix it")
    upstream.get_issue(1).create_comment("on it")
    gh(first, "bob").get_repo("alice/demo").get_issue(1).edit(labels=["bug"], assignees=["bob"])
    first.stop()

    second = make_forge("state")
    again = gh(second, "carol").get_repo("alice/demo")
    assert again.clone_url == second.git_url("alice", "demo")
    issue = again.get_issue(1)
    assert ([label.name for label in issue.labels], [a.login for a in issue.assignees]) == (
        ["bug"],
        ["bob"],
    )
    assert [c.body for c in issue.get_comments()] == ["on it"]
    restored = again.get_pull(pull.number)
    assert (restored.head.sha, restored.head.repo.full_name) == (sha, "carol/demo")
    assert [f.full_name for f in again.get_forks()] == ["carol/demo"]
    assert gh(second, "carol").get_repo("carol/demo").get_branch("fix").commit.sha == sha
    assert gh(second, "alice").get_user().login == "alice"  # tokens still valid

    fresh = clone(second.git_url("carol", "demo"), tmp_dir / "fresh")
    assert str(fresh.branches.remote["origin/fix"].target) == sha
    assert [i.number for i in again.get_issues(state="all")] == [6, 5, 4, 3, 2, 1]


def test_seeding_twice_fails_clearly(make_forge: ForgeFactory) -> None:
    forge = make_forge()
    forge.seed(WORLD)
    with pytest.raises(SeedError, match="repository alice/demo exists already"):
        forge.seed({"repos": WORLD["repos"]})
    with pytest.raises(SeedError, match="user alice exists already"):
        forge.seed({"users": WORLD["users"][:1]})
    assert len(list(gh(forge, "alice").get_repo("alice/demo").get_issues(state="all"))) == 5


def run_bzzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bzzz", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_seed_and_serve(tmp_dir: Path) -> None:
    root = tmp_dir / "cli"
    spec = tmp_dir / "seed.json"
    spec.write_text(
        json.dumps({"users": [{"login": "zed"}], "repos": [{"owner": "zed", "name": "z"}]})
    )
    seeded = run_bzzz("lab", "forge", "seed", "--root", str(root), str(spec))
    assert seeded.returncode == 0, seeded.stderr
    token = json.loads(seeded.stdout)["users"][0]["token"]
    again = run_bzzz("lab", "forge", "seed", "--root", str(root), str(spec))
    assert again.returncode == 2
    assert "exists already" in again.stderr

    server = subprocess.Popen(
        [sys.executable, "-m", "bzzz", "lab", "forge", "serve", "--root", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "BZZZ_FORGE_ADMIN_TOKEN": "cli-admin"},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket listens
        api_url = line.split("(API base ")[1].rstrip(")\n")
        client = github.Github(base_url=api_url, auth=github.Auth.Token(token))
        assert client.get_repo("zed/z").owner.login == "zed"
        admin = requests.get(
            api_url.replace("/api/v3", "/_forge/faults"),
            headers={"Authorization": "token cli-admin"},
            timeout=10,
        )
        assert admin.json() == []
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert token not in (root / "requests.jsonl").read_text()


def test_a_forge_is_a_context_manager(tmp_dir: Path) -> None:
    with LocalForge(tmp_dir / "ctx") as forge:
        forge.seed({"users": [{"login": "amy", "token": TOKENS["alice"]}]})
        assert gh(forge, "alice").get_user().login == "amy"
        url = forge.api_url
    assert not forge.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)

"""What Bzzz depends on at the HTTP level: ETags and free 304s, rate limits, faults, the log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import github
import pytest
import requests

from bzzz.lab.forge import Fault, FaultError, LocalForge
from bzzz.lab.processes import wait_for
from tests.lab.forge.conftest import ADMIN, TOKENS, WORLD, ForgeFactory, gh, headers


def remaining(response: requests.Response) -> int:
    return int(response.headers["X-RateLimit-Remaining"])


def test_conditional_requests_are_free(forge: LocalForge) -> None:
    url = f"{forge.api_url}/repos/alice/demo/issues"
    first = requests.get(url, headers=headers("bob"), timeout=10)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert first.headers["X-RateLimit-Resource"] == "core"

    same = requests.get(url, headers={**headers("bob"), "If-None-Match": etag}, timeout=10)
    assert (same.status_code, same.content) == (304, b"")
    assert remaining(same) == remaining(first)
    again = requests.get(url, headers={**headers("bob"), "If-None-Match": etag}, timeout=10)
    assert remaining(again) == remaining(first)

    requester = gh(forge, "bob").requester
    answer_headers, data = requester.requestJsonAndCheck(
        "GET", url, headers={"If-None-Match": etag}
    )
    assert data is None
    assert int(answer_headers["x-ratelimit-remaining"]) == remaining(first)

    gh(forge, "alice").get_repo("alice/demo").get_issue(1).create_comment("news")
    changed = requests.get(url, headers={**headers("bob"), "If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert remaining(changed) == remaining(first) - 1

    polls = [r for r in forge.requests() if r.user == "bob" and r.path.endswith("/issues")]
    assert [(r.status, r.counted) for r in polls] == [
        (200, True),
        (304, False),
        (304, False),
        (304, False),
        (200, True),
    ]


def test_rate_limit_runs_out_and_resets(make_forge: ForgeFactory) -> None:
    forge = make_forge(rate_limit=3, rate_window=3600)
    forge.seed(WORLD)
    url = f"{forge.api_url}/repos/alice/demo"
    answers = [requests.get(url, headers=headers("bob"), timeout=10) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    assert [remaining(a) for a in answers] == [2, 1, 0, 0]
    assert [a.headers["X-RateLimit-Used"] for a in answers] == ["1", "2", "3", "3"]
    assert answers[3].json()["message"].startswith("API rate limit exceeded for user ID")
    assert answers[3].headers["X-RateLimit-Limit"] == "3"
    with pytest.raises(github.RateLimitExceededException):
        gh(forge, "bob", retry=None).get_repo("alice/demo")
    assert requests.get(url, headers=headers("alice"), timeout=10).status_code == 200  # per token

    forge.exhaust_rate_limit("alice", reset_in=1.0)
    asked = time.time()
    spent = requests.get(url, headers=headers("alice"), timeout=10)
    assert (spent.status_code, remaining(spent)) == (403, 0)
    assert asked <= int(spent.headers["X-RateLimit-Reset"]) <= asked + 2
    wait_for(
        lambda: requests.get(url, headers=headers("alice"), timeout=10).status_code == 200,
        5,
        "alice's budget to come back after its reset",
    )


def test_secondary_limits_and_server_errors(forge: LocalForge) -> None:
    url = f"{forge.api_url}/repos/alice/demo"

    def get() -> requests.Response:
        return requests.get(url, headers=headers("bob"), timeout=10)

    forge.add_fault(Fault("secondary_rate_limit", retry_after=7, count=1))
    forge.add_fault(Fault("secondary_rate_limit", count=1))
    forge.add_fault(Fault("too_many_requests", retry_after=3, count=1))
    forge.add_fault(Fault("too_many_requests", count=1))
    forge.add_fault(Fault("server_error", status=503, count=2))
    answers = [get() for _ in range(7)]
    assert [a.status_code for a in answers] == [403, 403, 429, 429, 503, 503, 200]
    assert answers[0].json()["message"].startswith("You have exceeded a secondary rate limit")
    assert answers[0].headers["Retry-After"] == "7"
    assert "Retry-After" not in answers[1].headers
    assert answers[2].headers["Retry-After"] == "3"
    assert "Retry-After" not in answers[3].headers
    assert all("X-RateLimit-Remaining" in a.headers for a in answers)
    assert [r.fault for r in forge.requests()][-7:] == [
        "secondary_rate_limit",
        "secondary_rate_limit",
        "too_many_requests",
        "too_many_requests",
        "server_error",
        "server_error",
        None,
    ]

    # PyGithub retries 5xx by itself, but not a 429 without Retry-After
    forge.add_fault(Fault("server_error", status=502, count=2, path="/api/v3/repos/*"))
    assert gh(forge, "bob").get_repo("alice/demo").name == "demo"
    forge.add_fault(Fault("too_many_requests", count=1))
    with pytest.raises(github.GithubException) as limited:
        gh(forge, "bob").get_repo("alice/demo")
    assert limited.value.status == 429


def test_faults_match_method_path_user_and_fraction(make_forge: ForgeFactory) -> None:
    forge = make_forge(fault_seed=7)
    forge.seed(WORLD)
    comments = f"{forge.api_url}/repos/alice/demo/issues/1/comments"
    forge.add_fault(
        Fault("server_error", method="POST", path="/api/v3/repos/*/comments", user="bob")
    )
    assert requests.get(comments, headers=headers("bob"), timeout=10).status_code == 200

    def post(login: str) -> int:
        return requests.post(
            comments, json={"body": "hi"}, headers=headers(login), timeout=10
        ).status_code

    assert post("alice") == 201
    assert post("bob") == 500
    forge.clear_faults()
    assert forge.faults() == []

    forge.add_fault(Fault("server_error", fraction=0.5))
    statuses = [requests.get(comments, timeout=10).status_code for _ in range(40)]
    assert 5 < statuses.count(500) < 35
    assert statuses.count(200) == 40 - statuses.count(500)
    with pytest.raises(FaultError):
        Fault("server_error", status=404)


def test_lost_write_reply_makes_naive_clients_write_twice(forge: LocalForge) -> None:
    comments = f"{forge.api_url}/repos/alice/demo/issues/1/comments"
    forge.add_fault(Fault("lost_reply", method="POST", count=1))
    with pytest.raises(requests.ConnectionError):
        requests.post(comments, json={"body": "one"}, headers=headers("bob"), timeout=10)
    forge.add_fault(Fault("lost_reply", method="POST", status=502, count=1))
    lost = requests.post(comments, json={"body": "two"}, headers=headers("bob"), timeout=10)
    assert lost.status_code == 502
    bodies = [c["body"] for c in requests.get(comments, timeout=10).json()]
    assert bodies == ["one", "two"]  # both writes happened

    forge.add_fault(Fault("lost_reply", method="POST", count=1))
    issue = gh(forge, "bob").get_repo("alice/demo").get_issue(1)
    issue.create_comment("claimed")  # PyGithub retries the POST after the dropped reply
    assert [c.body for c in issue.get_comments()].count("claimed") == 2


def test_admin_endpoint(forge: LocalForge, make_forge: ForgeFactory) -> None:
    admin = {"Authorization": f"token {ADMIN}"}
    faults = f"{forge.url}/_forge/faults"
    assert requests.get(faults, timeout=10).status_code == 401
    assert requests.get(faults, headers=headers("alice"), timeout=10).status_code == 401
    added = requests.post(
        faults, json={"kind": "server_error", "status": 502, "count": 1}, headers=admin, timeout=10
    )
    assert added.status_code == 201
    assert requests.get(faults, headers=admin, timeout=10).json() == [added.json()]
    assert (
        requests.get(f"{forge.api_url}/user", headers=headers("bob"), timeout=10).status_code == 502
    )
    assert requests.get(faults, headers=admin, timeout=10).json() == []  # its count is spent

    bad = requests.post(faults, json={"kind": "meteor"}, headers=admin, timeout=10)
    assert bad.status_code == 422
    requests.post(
        faults,
        json={"kind": "rate_limit", "user": "bob", "reset_in": 60},
        headers=admin,
        timeout=10,
    )
    assert (
        requests.get(f"{forge.api_url}/user", headers=headers("bob"), timeout=10).status_code == 403
    )
    assert requests.delete(faults, headers=admin, timeout=10).status_code == 204
    assert (
        requests.get(f"{forge.api_url}/user", headers=headers("bob"), timeout=10).status_code == 200
    )

    log = requests.get(f"{forge.url}/_forge/requests", headers=admin, timeout=10).json()
    assert {"method", "path", "query", "user", "status", "counted", "time"} <= set(log[-1])
    assert [e["status"] for e in log if e["path"] == "/api/v3/user"] == [502, 403, 200]
    after = log[-1]["seq"]
    newer = requests.get(f"{forge.url}/_forge/requests?after={after}", headers=admin, timeout=10)
    assert [e["seq"] for e in newer.json()] == [after + 1]  # the previous call to this endpoint

    closed = make_forge("no-admin", admin_token=None)
    assert requests.get(f"{closed.url}/_forge/faults", headers=admin, timeout=10).status_code == 404
    assert requests.get(f"{closed.url}/_forge/health", timeout=10).json() == {"ok": True}


def test_request_log_and_files_hold_no_tokens(forge: LocalForge, tmp_dir: Path) -> None:
    alice = gh(forge, "alice")
    alice.get_repo("alice/demo").get_issue(2).create_comment("looking")
    requests.get(f"{forge.api_url}/user?access_token={TOKENS['bob']}", timeout=10)
    requests.get(
        f"{forge.api_url}/user", headers={"Authorization": "token guessed-token"}, timeout=10
    )
    from tests.lab.forge.conftest import clone, commit_file, push  # noqa: PLC0415

    work = clone(forge.git_url("alice", "demo"), tmp_dir / "client")
    commit_file(work, "logged", "f.txt", "f\n")
    push(work, "alice", "logged")

    entries = forge.requests()
    assert {e.user for e in entries} >= {"alice", None}
    assert any(
        e.path == "/git/alice/demo.git/git-receive-pack" and e.user == "alice" for e in entries
    )
    lines = (forge.root / "requests.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["seq"] for line in lines) == [e.seq for e in entries]
    secrets = [*TOKENS.values(), "guessed-token", ADMIN]
    for path in forge.root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            leaked = [s for s in secrets if s.encode() in content]
            assert not leaked, f"{path} holds a token"

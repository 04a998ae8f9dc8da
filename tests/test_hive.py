"""Hive: the contract's pure parts, the client against the lab's stand-in on loopback, and
the repository source that merges Hive's listing with the config's."""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given

from bzzz.hive import (
    HiveClient,
    HiveError,
    HiveRepo,
    claim_body,
    enabled_repositories,
    parse_active_repos,
    status_body,
)
from bzzz.lab.hive import LabHive
from bzzz.lab.processes import free_port
from bzzz.tasks.sources import HiveRepositories, StaticRepositories
from tests.strategies import json_values

KEY = "hive-key-4f9c2e7d1b"

HiveFactory = Callable[..., LabHive]
ClientFactory = Callable[..., HiveClient]


def entry(**overrides: Any) -> dict[str, Any]:
    """An active-repos entry as the real Hive lists it."""
    return {
        "project_id": 7,
        "name": "demo",
        "git_url": "https://github.com/alice/demo.git",
        "owner": "alice",
        "repository": "demo",
        "branch": "main",
        "bzzz_enabled": True,
        "ready_to_claim": True,
        "private_repo": False,
        "github_token_required": False,
    } | overrides


def repo(owner: str, repository: str, project_id: int = 1, *, enabled: bool = True) -> HiveRepo:
    fields = entry(owner=owner, repository=repository, project_id=project_id, bzzz_enabled=enabled)
    return HiveRepo(**fields)


@pytest.fixture
def serve() -> Iterator[HiveFactory]:
    """Start a LabHive (with `key`, if given); stopped after the test, whatever happens."""
    servers: list[LabHive] = []

    def start(key: str | None = None) -> LabHive:
        server = LabHive(key=key)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def connect() -> Iterator[ClientFactory]:
    """A HiveClient (short timeout), closed after the test."""
    clients: list[HiveClient] = []

    def client(url: str, key: str | None = None, **kwargs: Any) -> HiveClient:
        made = HiveClient(url, key, timeout=kwargs.pop("timeout", 5.0), **kwargs)
        clients.append(made)
        return made

    yield client
    for made in clients:
        made.close()


def mocked(
    connect: ClientFactory, handler: Callable[[httpx.Request], httpx.Response]
) -> HiveClient:
    return connect("http://hive.test:8000", KEY, transport=httpx.MockTransport(handler))


def failure(call: Callable[[], object]) -> HiveError:
    with pytest.raises(HiveError) as caught:
        call()
    return caught.value


def all_text(error: BaseException) -> str:
    """Everything an error shows: message, repr, args and the formatted traceback."""
    shown = "".join(traceback.format_exception(error))
    return f"{error}\n{error!r}\n{error.args!r}\n{shown}"


# ---- api.py: the listing ----


def test_a_listing_is_parsed_in_hives_order() -> None:
    repos = parse_active_repos(
        {"repositories": [entry(), entry(project_id=8, owner="bob", repository="tool")]}
    )
    assert repos == [
        HiveRepo(**entry()),
        HiveRepo(**entry(project_id=8, owner="bob", repository="tool")),
    ]
    assert repos[1].full_name == "bob/tool"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        "repositories",
        {},
        {"repositories": None},
        {"repositories": {"0": entry()}},
        {"repos": [entry()]},
    ],
)
def test_a_reply_that_is_not_a_listing_is_a_clear_error(bad: object) -> None:
    error = failure(lambda: parse_active_repos(bad))
    assert error.retry is False
    assert "repositories" in str(error)


@pytest.mark.parametrize(
    "bad",
    [
        "not an entry",
        None,
        [entry()],
        entry(project_id="7"),
        entry(project_id=True),
        entry(project_id=7.0),
        entry(project_id=-1),
        entry(project_id=2**63),
        entry(owner=None),
        entry(repository=42),
        entry(name=["demo"]),
        entry(git_url="https://x\n.git"),
        entry(branch="main\x1b[31m"),
        entry(name="x" * 5000),
        entry(bzzz_enabled="true"),
        entry(private_repo=1),
        {k: v for k, v in entry().items() if k != "git_url"},
    ],
)
def test_malformed_entries_are_skipped_and_the_rest_kept(bad: object) -> None:
    good = entry(project_id=9, repository="kept")
    assert [r.project_id for r in parse_active_repos({"repositories": [bad, good]})] == [9]


def test_null_flags_are_false_as_in_hives_database() -> None:
    (parsed,) = parse_active_repos(
        {"repositories": [entry(private_repo=None, github_token_required=None)]}
    )
    assert parsed.private_repo is False
    assert parsed.github_token_required is False


@given(json_values)
def test_hostile_listings_never_raise_anything_but_hive_error(data: object) -> None:
    for shaped in (data, {"repositories": data}, {"repositories": [data, data]}):
        with contextlib.suppress(HiveError):
            parse_active_repos(shaped)


def test_only_enabled_repositories_with_github_names_count() -> None:
    repos = [
        repo("alice", "demo", 1),
        repo("alice", "off", 2, enabled=False),
        repo("Alice", "DEMO", 3),  # the same repository in another case: the first keeps it
        repo("-alice", "demo", 4),
        repo("alice", "..", 5),
        repo("alice", "demo.git", 6),
        repo("al/ice", "demo", 7),
        repo("alice", "", 8),
        repo("a" * 40, "demo", 9),
        repo("bob", "tool.v2_x-y", 10),
    ]
    assert enabled_repositories(repos) == {"alice/demo": 1, "bob/tool.v2_x-y": 10}


# ---- api.py: the bodies ----


def test_a_claim_body_has_unix_seconds() -> None:
    assert claim_body(42, "node-a", 1_700_000_000.9) == {
        "task_number": 42,
        "agent_id": "node-a",
        "claimed_at": 1_700_000_000,
    }


@pytest.mark.parametrize(("number", "agent"), [(0, "node-a"), (-3, "a"), (True, "a"), (1, " ")])
def test_a_claim_hive_would_refuse_is_not_built(number: int, agent: str) -> None:
    with pytest.raises(ValueError, match=r"task_number|agent_id"):
        claim_body(number, agent, 0.0)


def test_a_status_body_is_the_union_both_hives_accept() -> None:
    results = {"pull_request_url": "https://github.com/alice/demo/pull/3"}
    moment = datetime(2025, 1, 14, 14, 0, 5, 999, tzinfo=timezone(timedelta(hours=2)))
    body = status_body(42, "completed", results, {"by": "node-a"}, moment)
    assert body == {
        "task_number": 42,
        "status": "completed",
        "updated_at": "2025-01-14T12:00:05Z",
        "results": results,
        "metadata": {"by": "node-a"},
    }
    results["pull_request_url"] = "changed later"
    assert body["results"] == {"pull_request_url": "https://github.com/alice/demo/pull/3"}


@pytest.mark.parametrize(
    "change",
    [
        {"status": "done"},
        {"updated_at": datetime(2025, 1, 14, 12, 0)},  # naive: its zone would be a guess
        {"results": {"x": object()}},
        {"metadata": {"x": float("nan")}},
        {"metadata": {1: "x"}},
        {"task_number": 0},
    ],
)
def test_a_status_body_refuses_what_hive_cannot_read(change: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "task_number": 1,
        "status": "failed",
        "results": {},
        "metadata": {},
        "updated_at": datetime.now(UTC),
    } | change
    with pytest.raises(ValueError, match=r"status|updated_at|results|metadata|task_number"):
        status_body(**arguments)


# ---- the client against the lab's Hive ----


def test_repositories_come_and_go_at_run_time(serve: HiveFactory, connect: ClientFactory) -> None:
    hive = serve(key=KEY)
    client = connect(hive.url, KEY)
    assert client.health()
    assert client.active_repos() == []
    demo = hive.add_repo("alice", "demo")
    hive.add_repo("alice", "hidden", enabled=False)
    assert [(r.project_id, r.full_name) for r in client.active_repos()] == [(demo, "alice/demo")]
    tool = hive.add_repo("bob", "tool", branch="trunk")
    listed = client.active_repos()
    assert enabled_repositories(listed) == {"alice/demo": demo, "bob/tool": tool}
    assert listed[1].branch == "trunk"
    assert hive.remove_repo(demo)
    assert enabled_repositories(client.active_repos()) == {"bob/tool": tool}
    assert hive.add_repo("alice", "demo") not in (demo, tool)  # ids are never given twice


def test_claims_and_statuses_arrive_as_documented(
    serve: HiveFactory, connect: ClientFactory
) -> None:
    hive = serve(key=KEY)
    project = hive.add_repo("alice", "demo")
    client = connect(hive.url, KEY)
    reply = client.claim(project, claim_body(42, "node-a", 1_700_000_000.5))
    assert reply == {"success": True, "claim_id": f"{project}-42-node-a"}
    again = client.claim(project, claim_body(42, "node-b", 1_700_000_001))  # no conflict check
    assert again["success"] is True
    results = {"pull_request_url": "https://github.com/alice/demo/pull/3"}
    moment = datetime(2025, 1, 14, 12, 0, tzinfo=UTC)
    assert client.status(project, status_body(42, "completed", results, {}, moment)) == {
        "success": True
    }
    assert hive.claims() == [
        {"task_number": 42, "agent_id": "node-a", "claimed_at": 1_700_000_000, "project_id": 1},
        {"task_number": 42, "agent_id": "node-b", "claimed_at": 1_700_000_001, "project_id": 1},
    ]
    assert hive.statuses() == [
        {
            "task_number": 42,
            "status": "completed",
            "updated_at": "2025-01-14T12:00:00Z",
            "results": results,
            "metadata": {},
            "project_id": project,
        }
    ]
    sent = [r for r in hive.requests() if r.path.startswith("/api/bzzz/projects/")]
    assert [(r.method, r.status) for r in sent] == [("POST", 200), ("POST", 200), ("PUT", 200)]


def test_the_go_clients_status_body_meets_hives_wrapped_400_and_is_not_retried(
    serve: HiveFactory, connect: ClientFactory
) -> None:
    hive = serve()
    project = hive.add_repo("alice", "demo")
    client = connect(hive.url)
    go_shape = {"status": "completed", "updated_at": 1_700_000_000, "results": {}}
    error = failure(lambda: client.status(project, go_shape))
    assert (error.status, error.retry) == (500, False)
    assert "400: task_number and status are required" in str(error)
    claim = failure(lambda: client.claim(project, {"task_number": 0, "agent_id": "a"}))
    assert (claim.status, claim.retry) == (500, False)
    assert [r.status for r in hive.requests()] == [500, 500]
    assert hive.statuses() == hive.claims() == []


def test_an_unknown_project_is_not_found_and_not_retryable(
    serve: HiveFactory, connect: ClientFactory
) -> None:
    hive = serve()
    client = connect(hive.url)
    error = failure(lambda: client.claim(99, claim_body(1, "node-a", 0)))
    assert (error.status, error.retry) == (404, False)
    assert "Project not found" in str(error)


def test_an_outage_is_retryable_and_ends(serve: HiveFactory, connect: ClientFactory) -> None:
    hive = serve(key=KEY)
    project = hive.add_repo("alice", "demo")
    client = connect(hive.url, KEY)
    assert client.active_repos()  # a kept-alive connection is open now
    hive.down(True)
    for call in (
        client.active_repos,
        lambda: client.claim(project, claim_body(1, "node-a", 0)),
        lambda: client.status(project, status_body(1, "failed", {}, {}, datetime.now(UTC))),
    ):
        error = failure(call)
        assert (error.retry, error.status) == (True, None)
        assert KEY not in all_text(error)
    assert not client.health()
    assert hive.claims() == hive.statuses() == []
    hive.down(False)
    assert client.health()
    assert [r.full_name for r in client.active_repos()] == ["alice/demo"]


def test_a_hive_that_is_not_there_is_retryable(connect: ClientFactory) -> None:
    client = connect(f"http://127.0.0.1:{free_port()}", KEY)
    error = failure(client.active_repos)
    assert error.retry is True
    assert "cannot connect" in str(error)
    assert not client.health()


def test_the_key_is_required_when_hive_has_one(serve: HiveFactory, connect: ClientFactory) -> None:
    hive = serve(key=KEY)
    project = hive.add_repo("alice", "demo")
    assert connect(hive.url).health()  # /health needs no key
    for client in (connect(hive.url), connect(hive.url, "wrong-key-0000")):
        for call in (client.active_repos, lambda c=client: c.claim(project, claim_body(1, "a", 0))):
            error = failure(call)
            assert (error.status, error.retry) == (401, False)
    assert hive.claims() == []


def test_the_key_never_shows_in_errors_logs_or_reprs(
    serve: HiveFactory, connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hive = serve(key="another-key-of-hive")
    url = hive.url
    client = connect(url, KEY)
    errors = [failure(client.active_repos)]  # 401: Hive has another key
    hive.down(True)
    errors.append(failure(client.active_repos))
    hive.stop()
    errors.append(failure(client.active_repos))

    def echo(request: httpx.Request) -> httpx.Response:
        said = request.headers["Authorization"]  # a hostile Hive quotes the key back
        return httpx.Response(500, json={"detail": f"no thanks, {said}"})

    echoing = mocked(connect, echo)
    errors.append(failure(echoing.active_repos))
    assert not echoing.health()
    assert "***" in str(errors[-1])
    for error in errors:
        assert KEY not in all_text(error)
        assert error.__cause__ is None
    assert KEY not in caplog.text
    assert KEY not in repr(client)
    assert repr(client) == f"HiveClient({url!r}, key=set)"


def test_only_a_set_key_is_sent(connect: ClientFactory) -> None:
    seen: list[httpx.Headers] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"repositories": []})

    transport = httpx.MockTransport(record)
    for key in (None, "", KEY):
        connect("http://hive.test", key, transport=transport).active_repos()
    assert [h.get("Authorization") for h in seen] == [None, None, f"Bearer {KEY}"]
    assert all(h["Content-Type"] == "application/json" for h in seen)
    assert seen[0].get("Accept") == "application/json"


@pytest.mark.parametrize(
    ("status", "body", "retry"),
    [
        (500, {"detail": "database is down"}, True),
        (500, {"detail": "404: Project not found"}, False),
        (502, "<html>Bad Gateway</html>", True),
        (503, {"detail": "busy"}, True),
        (429, {"detail": "slow down"}, True),
        (400, {"error": "task_number is required"}, False),
        (403, {"detail": "Not authenticated"}, False),
        (409, {"error": "Task already claimed"}, False),
        (422, {"detail": [{"type": "missing", "loc": ["body"]}]}, False),
        (301, "", False),
    ],
)
def test_what_is_worth_retrying(
    connect: ClientFactory, status: int, body: object, retry: bool
) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    error = failure(mocked(connect, reply).active_repos)
    assert (error.status, error.retry) == (status, retry)


@pytest.mark.parametrize(
    "problem",
    [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.RemoteProtocolError("eh")],
)
def test_timeouts_and_broken_connections_are_retryable(
    connect: ClientFactory, problem: httpx.TransportError
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise problem

    error = failure(mocked(connect, fail).active_repos)
    assert (error.retry, error.status) == (True, None)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>a login page</html>"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, content=b"[" * 100_000),
        httpx.Response(200, content=b" " * (5 * 1024 * 1024)),
    ],
)
def test_a_reply_that_is_not_hives_is_an_error(
    connect: ClientFactory, reply: httpx.Response
) -> None:
    error = failure(mocked(connect, lambda request: reply).active_repos)
    assert error.retry is False


def test_malformed_entries_from_a_server_are_skipped_and_logged(
    connect: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    listing = {"repositories": [entry(), entry(project_id="x"), 3]}
    client = mocked(connect, lambda request: httpx.Response(200, json=listing))
    assert [r.project_id for r in client.active_repos()] == [7]
    assert "2 malformed" in caplog.text


@pytest.mark.parametrize(
    "url", ["hive:8000", "ftp://hive", "http://", "http://user:secret@hive:8000", ""]
)
def test_a_bad_base_url_is_refused_at_once(url: str) -> None:
    error = failure(lambda: HiveClient(url, None))
    assert error.retry is False
    assert "secret" not in str(error)


def test_a_key_that_cannot_be_a_header_is_refused_without_showing_it() -> None:
    error = failure(lambda: HiveClient("http://hive", "two words\r\nX-Evil: 1"))
    assert "words" not in str(error)


# ---- the lab's Hive, as the real one answers ----


def test_the_lab_hive_answers_as_the_real_one(serve: HiveFactory) -> None:
    hive = serve(key=KEY)
    project = hive.add_repo("alice", "demo")
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=hive.url, timeout=5.0) as http:
        assert http.get("/health").status_code == 200
        missing = http.get("/api/bzzz/active-repos")
        assert (missing.status_code, missing.json()) == (401, {"detail": "Not authenticated"})
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert http.get(f"/api/bzzz/projects/{project}/tasks", headers=auth).json() == []
        path = f"/api/bzzz/projects/{project}/claim"
        assert http.get(path, headers=auth).status_code == 405
        assert http.get("/api/other", headers=auth).json() == {"detail": "Not Found"}
        bad_json = http.post(path, content=b"{nope", headers=auth)
        assert bad_json.status_code == 422
        assert bad_json.json()["detail"][0]["type"] == "json_invalid"
        assert http.post(path, json=[1], headers=auth).status_code == 422
        no_agent = http.post(path, json={"task_number": 3}, headers=auth)
        assert no_agent.status_code == 500
        assert no_agent.json() == {"detail": "400: task_number and agent_id are required"}
        unknown = http.put("/api/bzzz/projects/abc/status", json={}, headers=auth)
        assert (unknown.status_code, unknown.json()) == (404, {"detail": "Project not found"})
    assert hive.claims() == []


def test_the_lab_hive_serves_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LabHive("0.0.0.0")  # noqa: S104 - the address refused
    LabHive("::1")
    LabHive("localhost")


def test_the_lab_hive_keeps_its_projects_across_a_restart(
    serve: HiveFactory, connect: ClientFactory
) -> None:
    hive = serve()
    project = hive.add_repo("alice", "demo")
    hive.stop()
    hive.start()
    assert [r.project_id for r in connect(hive.url).active_repos()] == [project]


# ---- the repository source ----


def test_the_static_source_is_unchanged() -> None:
    assert StaticRepositories(["b/x", "a/y", "b/x"]).repositories() == ("b/x", "a/y")


def test_hive_repositories_put_the_config_first_and_hives_in_name_order() -> None:
    source = HiveRepositories(["zed/first", "Alice/Demo", "zed/first"])
    assert source.repositories() == ("zed/first", "Alice/Demo")
    assert source.project_id("zed/first") is None
    source.update({"carol/b": 3, "alice/demo": 1, "bob/a": 2, "../evil": 9})
    assert source.repositories() == ("zed/first", "Alice/Demo", "bob/a", "carol/b")
    assert source.project_id("Alice/Demo") == 1  # the config's spelling finds Hive's project
    assert source.project_id("carol/b") == 3
    assert source.project_id("../evil") is None
    source.update({"bob/a": 2})
    assert source.repositories() == ("zed/first", "Alice/Demo", "bob/a")
    assert source.project_id("carol/b") is None
    source.update({})
    assert source.repositories() == ("zed/first", "Alice/Demo")


def test_hive_repositories_are_read_whole_while_they_change() -> None:
    """A reader on another thread sees one listing or the next, never a mix."""
    source = HiveRepositories(["config/repo"])
    listings = [{f"owner{n}/repo{i}": n for i in range(n % 5)} for n in range(1, 200)]
    expected = {("config/repo", *sorted(listing)) for listing in listings} | {("config/repo",)}
    seen: list[tuple[str, ...]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(source.repositories())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for listing in listings:
            source.update(listing)
    finally:
        done.set()
        reader.join(10)
    assert not reader.is_alive()
    assert seen
    assert set(seen) <= expected


def test_hive_repositories_follow_the_lab_hive(serve: HiveFactory, connect: ClientFactory) -> None:
    hive = serve()
    client = connect(hive.url)
    source = HiveRepositories(["alice/config"])
    demo = hive.add_repo("alice", "demo")
    source.update(enabled_repositories(client.active_repos()))
    assert source.repositories() == ("alice/config", "alice/demo")
    assert source.project_id("alice/demo") == demo
    hive.remove_repo(demo)
    source.update(enabled_repositories(client.active_repos()))
    assert source.repositories() == ("alice/config",)

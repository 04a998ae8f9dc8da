"""The compose lab cluster (compose/): its entry points, its compose file, and the whole
lab brought up with three peers on a private Docker engine.

The compose file is checked with a real compose implementation (`docker compose`, or
Debian's `docker-compose` v1, which scripts/setup installs). The lab test starts a
private dockerd (its own socket, state and bridge networks), builds the images with
compose/build (a Debian base image from mmdebstrap, the tarball cached in pytest's
cache; wheels from this repository), runs `up --scale peer=3`, waits for the peers to
find each other and turn the seeded issues into pull requests, and tears it all down,
pass or fail. It skips only where dockerd, mmdebstrap or compose are missing or not
root, and never in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from github import Auth, Github

from bzzz.config import load_settings
from bzzz.lab import compose
from bzzz.lab.compose.reverse_dns import (
    DnsError,
    decode_answers,
    encode_query,
    lookup_ptr,
    nameservers,
    read_name,
    replica_number,
)
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import wait_for
from bzzz.lab.sample import EXPECTED_TASKS, SAMPLE_REPO
from workers.sandbox.dockerd import PrivateDockerd, dockerd_path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ROLES = {"forge", "model", "peer"}  # always up; `ollama` only with --profile ollama


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where scripts/setup installs it all."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the compose tests)")
    pytest.skip(reason)


# ----- reverse DNS: how a replica learns its name ----------------------------------------


def ptr_response(query: bytes, names: list[str], rcode: int = 0) -> bytes:
    """A name server's answer to `query`: each name a PTR record, the owner name
    compressed as a pointer to the question (offset 12), as real servers do."""
    query_id = struct.unpack_from("!H", query)[0]
    header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, len(names), 0, 0)
    records = b""
    for name in names:
        rdata = encode_query(0, name)[12:-4]  # the encoded name alone
        records += b"\xc0\x0c" + struct.pack("!HHIH", 12, 1, 600, len(rdata)) + rdata
    return header + query[12:] + records


def test_a_ptr_answer_is_decoded_with_compressed_names() -> None:
    query = encode_query(0x1234, "3.0.20.172.in-addr.arpa")
    assert query[:2] == b"\x12\x34"
    answer = ptr_response(query, ["bzzz-lab_peer_3.bzzz-lab_lab."])
    assert decode_answers(answer, 0x1234) == ["bzzz-lab_peer_3.bzzz-lab_lab."]
    # A name that ends in a pointer: "peer_1" then the rest of the question's name.
    data = b"\x00" * 12 + b"\x04arpa\x00" + b"\x06peer_1\xc0\x0c"
    assert read_name(data, 18) == ("peer_1.arpa.", len(data))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda a: a[:8], "shorter than a header"),
        (lambda a: b"\x99\x99" + a[2:], "not a response"),
        (lambda a: a[:2] + b"\x81\x83" + a[4:], "error code 3"),
        (lambda a: a[:-3], "truncated"),
    ],
)
def test_bad_ptr_answers_are_refused(mangle: Any, message: str) -> None:
    query = encode_query(7, "1.0.0.127.in-addr.arpa")
    with pytest.raises(DnsError, match=message):
        decode_answers(mangle(ptr_response(query, ["a.b."])), 7)


def test_a_pointer_loop_is_refused() -> None:
    with pytest.raises(DnsError, match="pointers"):
        read_name(b"\x00" * 12 + b"\xc0\x0c", 12)


def test_lookup_asks_a_name_server_over_udp(tmp_path: Path) -> None:
    """A real UDP exchange with a small name server on loopback."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    asked: list[str] = []

    def serve() -> None:
        data, client = server.recvfrom(512)
        asked.append(read_name(data, 12)[0])
        server.sendto(ptr_response(data, ["proj-peer-2.proj_lab."]), client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert lookup_ptr("172.20.0.9", "127.0.0.1", port=port) == ["proj-peer-2.proj_lab."]
    finally:
        thread.join(5)
        server.close()
    assert asked == ["9.0.20.172.in-addr.arpa."]
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search x\nnameserver 127.0.0.11\noptions ndots:0\nnameserver ::1\n")
    assert nameservers(resolv) == ["127.0.0.11", "::1"]
    assert nameservers(tmp_path / "absent") == []


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("bzzz-lab_peer_3.bzzz-lab_lab.", 3),  # compose v1
        ("bzzz-lab-peer-12.bzzz-lab_lab.", 12),  # compose v2
        ("my_lab_peer_1", 1),
        ("bzzz-lab_forge_1.bzzz-lab_lab.", None),
        ("bzzz-lab_peer.x.", None),
        ("d670ff26f9e0", None),
    ],
)
def test_the_replica_number_comes_from_the_container_name(name: str, number: int | None) -> None:
    assert replica_number(name, "peer") == number


def test_a_replica_takes_the_account_of_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bzzz.lab.compose.peer.own_addresses", lambda: ["172.20.0.5"])
    answers = {"172.20.0.5": ["lab_peer_2.lab_lab."]}
    assert compose.replica_account(answers.__getitem__) == "peer-2"

    def no_answer(ip: str) -> list[str]:
        raise DnsError("timed out")

    with pytest.raises(compose.LabError, match="BZZZ_LAB_PEER=peer-K"):
        compose.replica_account(no_answer)
    assert compose.account_number("peer-8") == 8
    for bad in ("peer-0", "peer-x", "node-1", "peer-1 "):
        with pytest.raises(compose.LabError, match="not a lab account"):
            compose.account_number(bad)
    compose.check_account("peer-2", {"accounts": 2})
    with pytest.raises(compose.LabError, match="BZZZ_LAB_ACCOUNTS=3 or more"):
        compose.check_account("peer-3", {"accounts": 2})


# ----- settings, seeding, a peer's home, the supervisor ------------------------------


def test_lab_settings_come_from_the_environment() -> None:
    default = compose.LabSettings.from_env({})
    assert (default.accounts, default.lab_model) == (8, True)
    assert default.model_url == "http://model:11434"
    assert compose.node_sections(default, "peer-1")["agent"]["model"] == "lab"
    real = compose.LabSettings.from_env(
        {"OLLAMA_HOST": "http://ollama:11434", "BZZZ_LAB_MODEL": "qwen2.5-coder", "X": "1"}
    )
    assert (real.lab_model, real.model_url) == (False, "http://ollama:11434")
    assert compose.node_sections(real, "peer-1")["agent"]["model"] == "qwen2.5-coder"
    assert compose.LabSettings.from_env({"BZZZ_LAB_BOOTSTRAP": " /a  /b "}).bootstrap == (
        "/a",
        "/b",
    )
    for bad in ("many", "0", "1001"):
        with pytest.raises(compose.LabError, match="BZZZ_LAB_ACCOUNTS"):
            compose.LabSettings.from_env({"BZZZ_LAB_ACCOUNTS": bad})


def test_the_forge_is_seeded_once_and_a_peer_home_works_against_it(tmp_path: Path) -> None:
    forge_root, accounts = tmp_path / "forge", tmp_path / "accounts"
    said: list[str] = []
    seeded = compose.seed_once(forge_root, accounts, 3, say=said.append)
    assert seeded["logins"] == ["peer-1", "peer-2", "peer-3"]
    token_file = accounts / "peer-2.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o640  # the group bzzz reads it
    assert stat.S_IMODE((forge_root / "lab.token").stat().st_mode) == 0o600
    assert compose.seed_once(forge_root, accounts, 5, say=said.append) == seeded  # kept
    assert "not 5" in said[-1]

    with LocalForge(forge_root) as forge:
        gh = Github(base_url=forge.api_url, auth=Auth.Token(token_file.read_text()))
        assert gh.get_user().login == "peer-2"
        repo = gh.get_repo(SAMPLE_REPO)
        assert {f"{SAMPLE_REPO}#{i.number}" for i in repo.get_issues()} >= EXPECTED_TASKS
        settings = compose.LabSettings(forge_url=forge.url, ollama_host="http://127.0.0.1:9")
        home = tmp_path / "home"
        peer_id = compose.prepare_peer(settings, home, accounts, "peer-2")
        api_url = forge.api_url
    loaded = load_settings(home, environ={})
    assert loaded.node.name == "peer-2"
    assert str(peer_id).startswith("12D3KooW")
    assert loaded.forge.api_url == api_url
    assert loaded.tasks.repositories == (SAMPLE_REPO,)
    assert loaded.network.listen == ("/ip4/0.0.0.0/tcp/4001",)
    assert loaded.network.mdns
    assert loaded.capabilities.ollama_host == "http://127.0.0.1:9"
    assert loaded.agent.model == ""  # a real ollama: its first model
    assert stat.S_IMODE((home / "forge.token").stat().st_mode) == 0o600
    assert (home / "forge.token").read_text() == token_file.read_text()


def test_a_peer_waits_for_the_forge_and_says_what_is_missing(tmp_path: Path) -> None:
    settings = compose.LabSettings(forge_url="http://127.0.0.1:9")
    with pytest.raises(compose.LabError, match=r"no .*peer-1.token yet"):
        compose.wait_for_forge(settings, tmp_path, "peer-1", within=0.5)
    (tmp_path / "seeded.json").write_text('{"accounts": 2}')
    (tmp_path / "peer-1.token").write_text("bzf_x")
    with pytest.raises(compose.LabError, match="_forge/health"):
        compose.wait_for_forge(settings, tmp_path, "peer-1", within=0.5)
    started = time.monotonic()
    with pytest.raises(compose.LabError, match="accounts for 2 peers only"):
        compose.wait_for_forge(settings, tmp_path, "peer-3", within=30)
    assert time.monotonic() - started < 5  # at once, not after waiting


def sleeper(seconds: float, started: Path | None = None) -> list[str]:
    """A child that sleeps, exits 0 on SIGTERM, and says (a file) that it has started."""
    script = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))"
    if started is not None:
        script += f"; open({str(started)!r}, 'w').close()"
    return [sys.executable, "-c", f"{script}; time.sleep({seconds})"]


def test_the_supervisor_stops_both_when_one_ends() -> None:
    handler = signal.getsignal(signal.SIGTERM)
    supervisor = compose.Supervisor([sleeper(60), [sys.executable, "-c", "exit(3)"]], os.environ)
    started = time.monotonic()
    assert supervisor.run() == 3
    assert time.monotonic() - started < 20
    assert all(p.poll() is not None for p in supervisor.processes)
    assert signal.getsignal(signal.SIGTERM) == handler  # given back


def test_the_supervisor_passes_sigterm_on(tmp_path: Path) -> None:
    """In a child process of its own: the supervisor installs signal handlers."""
    marks = [tmp_path / "one", tmp_path / "two"]
    code = (
        "import os, sys\n"
        "from bzzz.lab.compose import Supervisor\n"
        f"s = Supervisor([{sleeper(60, marks[0])!r}, {sleeper(60, marks[1])!r}], os.environ)\n"
        "sys.exit(s.run())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        wait_for(lambda: all(mark.exists() for mark in marks), 30, "both children to start")
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        process.kill()
        process.wait()


def test_the_entry_point_names_its_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert compose.main(["nonsense"]) == 2
    assert "forge|peer" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BZZZ_LAB_PEER", "node-9")
        assert compose.main(["peer"]) == 2
    assert "not a lab account" in capsys.readouterr().err
    if os.geteuid() == 0:  # outside the lab's image, root never gets to mount /proc
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("BZZZ_LAB_PEER", "peer-1")
            patch.delenv("BZZZ_LAB_IMAGE", raising=False)
            assert compose.main(["peer"]) == 2
        assert "only in the lab's image" in capsys.readouterr().err


# ----- the compose file ------------------------------------------------------------------


def compose_command() -> tuple[list[str], int] | None:
    """The compose implementation here and its major version: `docker compose` (v2),
    else `docker-compose` (v1 on Debian bookworm, or a v2 binary)."""
    docker = shutil.which("docker")
    candidates = [[docker, "compose"]] if docker else []
    if shutil.which("docker-compose"):
        candidates.append([str(shutil.which("docker-compose"))])
    for command in candidates:
        result = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, check=False
        )
        found = re.search(r"(\d+)\.\d+", result.stdout)
        if result.returncode == 0 and found:
            return command, int(found[1])
    return None


@pytest.fixture(scope="module")
def compose_cli() -> tuple[list[str], int]:
    found = compose_command()
    if found is None:
        unavailable("no compose: apt-get install docker-compose (scripts/setup does)")
    return found


def compose_env(**extra: str) -> dict[str, str]:
    """The environment without the lab's variables: the defaults are under test."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("BZZZ_", "OLLAMA", "COMPOSE"))}
    return {**keep, **extra}


def compose_config(cli: tuple[list[str], int], *files: Path, **env: str) -> dict[str, Any]:
    """`compose config`, as data: v2 prints JSON; v1 prints YAML, read with the YAML
    library v1 itself runs on (its interpreter's)."""
    command, major = cli
    args = [*command, *(f"--file={f}" for f in (files or (COMPOSE_FILE,))), "config"]
    if major >= 2:
        args.append("--format=json")
    result = subprocess.run(
        args, capture_output=True, text=True, env=compose_env(**env), cwd=COMPOSE_DIR, check=False
    )
    assert result.returncode == 0, result.stderr
    if major >= 2:
        data: dict[str, Any] = json.loads(result.stdout)
        return data
    interpreter = Path(command[0]).read_text(errors="replace").splitlines()[0][2:].split()
    to_json = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    parsed = subprocess.run(
        [*interpreter, "-c", to_json],
        input=result.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    converted: dict[str, Any] = json.loads(parsed.stdout)
    return converted


def test_the_compose_file_is_valid_and_has_the_documented_roles(
    compose_cli: tuple[list[str], int],
) -> None:
    config = compose_config(compose_cli)
    services = config["services"]
    assert set(services) - {"ollama"} == ROLES
    if "ollama" in services:  # v1 lists it; v2 leaves out services of inactive profiles
        assert services["ollama"]["profiles"] == ["ollama"]
    for role in ROLES:
        service = services[role]
        assert service["image"] == "bzzz-lab:latest"
        assert Path(service["build"]["context"]).resolve() == COMPOSE_DIR
        assert service["networks"] == {"lab": None} or list(service["networks"]) == ["lab"]
        assert not service.get("ports"), "the lab publishes no port"
        assert service["init"] is True
    assert services["forge"]["command"] == ["python3", "-m", "bzzz.lab.compose", "forge"]
    assert services["forge"]["healthcheck"]["test"][0] == "CMD"
    assert services["model"]["command"][:4] == ["bzzz", "lab", "model", "serve"]
    peer = services["peer"]
    assert peer["command"] == ["python3", "-m", "bzzz.lab.compose", "peer"]
    assert peer["depends_on"]["forge"]["condition"] == "service_healthy"
    assert peer["cap_add"] == ["SYS_ADMIN"]
    assert "privileged" not in peer
    assert {"seccomp=unconfined", "no-new-privileges:true"} <= set(peer["security_opt"])
    assert peer["environment"]["OLLAMA_HOST"] == ""
    assert config["networks"]["lab"]["internal"] is True
    assert "docker.sock" not in json.dumps(config), "no engine socket by default"


def test_the_environment_chooses_ollama_and_accounts(compose_cli: tuple[list[str], int]) -> None:
    config = compose_config(compose_cli, OLLAMA_HOST="http://ollama:11434", BZZZ_LAB_ACCOUNTS="12")
    assert config["services"]["peer"]["environment"]["OLLAMA_HOST"] == "http://ollama:11434"
    assert str(config["services"]["forge"]["environment"]["BZZZ_LAB_ACCOUNTS"]) == "12"
    outside = compose_config(compose_cli, COMPOSE_FILE, COMPOSE_DIR / "outside.yml")
    assert set(outside["services"]["peer"]["networks"]) == {"lab", "outside"}
    assert not outside["networks"]["outside"].get("internal")


def test_the_readme_says_how_to_build_start_scale_watch_and_stop() -> None:
    readme = (COMPOSE_DIR / "README.md").read_text()
    for text in (
        "compose/build",
        "docker compose up -d --scale peer=3",
        "docker compose logs -f peer",
        "docker compose exec peer bzzz tasks",
        "docker compose down",
        "BZZZ_LAB_ACCOUNTS",
        "OLLAMA_HOST",
        "SYS_ADMIN",
        "mDNS",
        *(f"`{role}`" for role in ROLES),
    ):
        assert text in readme, text
    build = COMPOSE_DIR / "build"
    assert os.access(build, os.X_OK)
    assert subprocess.run(["bash", "-n", str(build)], check=False).returncode == 0
    assert "FROM $BASE" in (COMPOSE_DIR / "Dockerfile").read_text()


# ----- the lab, up -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[PrivateDockerd]:
    if dockerd_path() is None:
        unavailable("dockerd is not installed (apt-get install docker.io, or scripts/setup)")
    if os.geteuid() != 0:
        unavailable("a private dockerd needs root")
    if shutil.which("mmdebstrap") is None:
        unavailable("mmdebstrap is not installed (scripts/setup installs it)")
    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed (apt-get install docker.io)")
    root = Path(tempfile.mkdtemp(prefix="bzzz-c-"))  # short: the socket path is limited
    dockerd = PrivateDockerd(root)
    try:
        yield dockerd.start()
    finally:
        dockerd.stop()
        shutil.rmtree(root, ignore_errors=True)


def cached_base_rootfs(request: pytest.FixtureRequest) -> Path:
    """The base image's root file system tarball, kept in pytest's cache between runs
    and named after the packages compose/build puts in it."""
    build = (COMPOSE_DIR / "build").read_text()
    packages = re.search(r"^packages=(.*)$", build, re.MULTILINE)
    assert packages is not None
    key = hashlib.sha256(packages[1].encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    directory = cache.mkdir("bzzz-compose") if cache is not None else Path(tempfile.mkdtemp())
    return Path(directory) / f"base-{key}.tar"


def status_of(cli: list[str], index: int, env: dict[str, str]) -> dict[str, Any] | None:
    result = subprocess.run(
        [*cli, "exec", "-T", f"--index={index}", "peer", "bzzz", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=COMPOSE_DIR,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return None
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return None
    return report


@pytest.mark.timeout(900)
def test_three_peers_find_each_other_and_turn_issues_into_pull_requests(
    engine: PrivateDockerd, compose_cli: tuple[list[str], int], request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    env = compose_env(DOCKER_HOST=engine.host, COMPOSE_PROJECT_NAME=f"bzzzt{secrets.token_hex(3)}")
    build = subprocess.run(
        [str(COMPOSE_DIR / "build"), "--rootfs", str(cached_base_rootfs(request))],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    built = time.monotonic()
    cli = [*compose_cli[0], f"--file={COMPOSE_FILE}"]

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=COMPOSE_DIR,
            timeout=timeout,
            check=False,
        )

    reports: list[dict[str, Any] | None] = []
    try:
        up = run("up", "-d", "--scale", "peer=3")
        assert up.returncode == 0, up.stderr

        def formed() -> bool:
            reports[:] = [status_of(cli, index, env) for index in (1, 2, 3)]
            return all(
                r is not None and {p["node_id"] for p in r["peers"] if p["alive"]} >= others(r)
                for r in reports
            )

        wait_for(formed, 120, "the three peers to hear each other", interval=1.0)
        names = sorted(r["node_id"] for r in reports if r is not None)
        assert names == ["peer-1", "peer-2", "peer-3"]

        def finished() -> bool:
            reports[:] = [status_of(cli, index, env) for index in (1, 2, 3)]
            return all(r is not None and results(r) >= EXPECTED_TASKS for r in reports)

        wait_for(finished, 180, "every peer to know each task's pull request", interval=2.0)
        first = reports[0]
        assert first is not None
        holders = {t["task_id"]: t["holder"] for t in first["tasks"]}
        urls = {t["task_id"]: t["result_url"] for t in first["tasks"] if t.get("result_url")}
        for task in EXPECTED_TASKS:
            assert re.fullmatch(r"http://forge:8080/lab/hello/pull/\d+", urls[task]), urls[task]
            assert holders[task] in names
        pulls = {p["number"]: p for p in forge_pulls(run)}
        for task, url in urls.items():  # the forge names itself as it is addressed
            pull = pulls[int(url.rsplit("/", 1)[1])]
            assert pull["user"]["login"] == holders[task]
            assert pull["head"]["repo"]["full_name"] == f"{holders[task]}/hello"  # its fork
            assert f"#{task.rsplit('#', 1)[1]}" in (pull["body"] or "") + pull["title"]
        print(
            f"compose lab: images built in {built - started:.0f} s, mesh and three pull"
            f" requests {time.monotonic() - built:.0f} s later"
        )
    except BaseException:
        logs = run("logs", "--no-color", "--tail=60")
        print(f"----- compose logs -----\n{logs.stdout[-12000:]}\n{logs.stderr[-2000:]}")
        raise
    finally:
        down = run("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=180)
        assert down.returncode == 0, down.stderr


def others(report: dict[str, Any]) -> set[str]:
    return {"peer-1", "peer-2", "peer-3"} - {report["node_id"]}


def results(report: dict[str, Any]) -> set[str]:
    return {t["task_id"] for t in report["tasks"] if "/pull/" in (t.get("result_url") or "")}


def forge_pulls(run: Any) -> list[dict[str, Any]]:
    """The sample repository's pull requests, as the forge lists them (from inside the
    lab: its network has no route out, and no port is published)."""
    script = (
        "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen("
        f"'http://127.0.0.1:8080/api/v3/repos/{SAMPLE_REPO}/pulls?state=all').read().decode())"
    )
    result = run("exec", "-T", "forge", "python3", "-c", script)
    assert result.returncode == 0, result.stderr
    pulls: list[dict[str, Any]] = json.loads(result.stdout)
    return pulls

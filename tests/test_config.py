"""`bzzz init`, the identity key, and settings: TOML, environment overrides, clear errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bzzz.cli import main
from bzzz.config import ConfigError, Settings, load_settings, render_config_docs, resolve_home
from bzzz.errors import BzzzError, ExitCode
from bzzz.home import init_home
from bzzz.identity import IdentityError, load_identity, peer_id_of

PEER = "12D3KooWJ2tQNhW1YpTLoiWLjMZg4wzA8TwfTLnn4NJcFMEegbtV"


def bzzz(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bzzz", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_init_writes_commented_config_and_a_private_key(tmp_path: Path) -> None:
    home = tmp_path / "n1"
    result = bzzz(
        "init", "--home", str(home), "--name", "pi-node-1",
        "--listen", "/ip4/127.0.0.1/tcp/4100",
        "--bootstrap", f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    peer_id = result.stdout.strip()
    assert peer_id.startswith("12D3KooW")

    text = (home / "config.toml").read_text()
    assert text.count("\n# ") > 20  # every setting is documented
    assert "# mdns = true" in text  # defaults shown commented out
    parsed = tomllib.loads(text)
    assert parsed["node"]["name"] == "pi-node-1"
    assert parsed["network"]["listen"] == ["/ip4/127.0.0.1/tcp/4100"]
    assert parsed["network"]["bootstrap"] == [f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"]

    key = home / "identity.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert str(peer_id_of(load_identity(key))) == peer_id


def test_reinit_keeps_the_identity(tmp_path: Path) -> None:
    first = init_home(tmp_path, "a")
    with pytest.raises(ConfigError, match="--force"):
        init_home(tmp_path, "a")
    assert init_home(tmp_path, "b", force=True) == first
    assert load_settings(tmp_path, environ={}).node.name == "b"


def test_init_refuses_a_bad_value_and_writes_nothing(tmp_path: Path) -> None:
    result = bzzz("init", "--home", str(tmp_path), "--name", "a", "--listen", "/ip4/1.2.3.4/udp/9")
    assert result.returncode == 2
    assert "network.listen" in result.stderr
    assert "Fix:" in result.stderr
    assert not (tmp_path / "config.toml").exists()


def test_identity_with_loose_permissions_is_refused(tmp_path: Path) -> None:
    init_home(tmp_path, "a")
    (tmp_path / "identity.key").chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        load_identity(tmp_path / "identity.key")


def test_defaults(tmp_path: Path) -> None:
    init_home(tmp_path, "a")
    settings = load_settings(tmp_path, environ={})
    assert isinstance(settings, Settings)
    assert settings.network.listen == ("/ip4/0.0.0.0/tcp/4001",)
    assert settings.network.mdns is True
    assert settings.network.psk_file == ""
    assert settings.gossip.heartbeat_interval == 1
    assert settings.capabilities.max_interval == 30.0
    assert settings.control_socket == tmp_path / "control.sock"
    with pytest.raises(AttributeError):
        settings.node.name = "b"  # type: ignore[misc]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    init_home(tmp_path, "a", listen=["/ip4/127.0.0.1/tcp/4100"])
    settings = load_settings(
        tmp_path,
        environ={
            "BZZZ_NODE_NAME": "from-env",
            "BZZZ_NETWORK_LISTEN": "/ip4/127.0.0.1/tcp/5000, /ip4/127.0.0.1/tcp/5001",
            "BZZZ_NETWORK_MDNS": "off",
            "BZZZ_CAPABILITIES_PEER_TIMEOUT": "42",
            "BZZZ_GOSSIP_DEGREE": "5",
        },
    )
    assert settings.node.name == "from-env"
    assert settings.network.listen == ("/ip4/127.0.0.1/tcp/5000", "/ip4/127.0.0.1/tcp/5001")
    assert settings.network.mdns is False
    assert settings.capabilities.peer_timeout == 42.0
    assert settings.gossip.degree == 5


def test_home_comes_from_flag_then_environment_then_default(tmp_path: Path) -> None:
    assert resolve_home(tmp_path / "x", {"BZZZ_HOME": "/elsewhere"}) == tmp_path / "x"
    assert resolve_home(None, {"BZZZ_HOME": str(tmp_path)}) == tmp_path
    assert resolve_home(None, {}) == Path("~/.bzzz").expanduser()


@pytest.mark.parametrize(
    ("toml", "environ", "key", "fix"),
    [
        ('[node]\nname = "bad name"', {}, "node.name", "letters, digits"),
        (
            '[node]\nname = "a"\n[network]\nlisten = "/ip4/0.0.0.0/tcp/1"',
            {},
            "network.listen",
            "list of strings",
        ),
        (
            '[node]\nname = "a"\n[network]\nbootstrap = ["/ip4/1.2.3.4/tcp/1"]',
            {},
            "network.bootstrap",
            "PEER_ID",
        ),
        (
            '[node]\nname = "a"\n[network]\nallow_peers = ["nope"]',
            {},
            "network.allow_peers",
            "peer ID",
        ),
        (
            '[node]\nname = "a"\n[network]\npsk_file = "missing.key"',
            {},
            "network.psk_file",
            "bzzz psk",
        ),
        ('[node]\nname = "a"\n[network]\nlistn = []', {}, "network.listn", "did you mean `listen`"),
        ('[node]\nname = "a"\n[netwrk]', {}, "[netwrk]", "did you mean `network`"),
        (
            '[node]\nname = "a"\n[gossip]\ndegree = 2\ndegree_low = 4',
            {},
            "gossip.degree",
            "degree_low <= degree",
        ),
        (
            '[node]\nname = "a"\n[gossip]\nheartbeat_interval = 0.5',
            {},
            "gossip.heartbeat_interval",
            "integer",
        ),
        (
            '[node]\nname = "a"',
            {"BZZZ_CAPABILITIES_PEER_TIMEOUT": "soon"},
            "capabilities.peer_timeout",
            "number",
        ),
        (
            '[node]\nname = "a"',
            {"BZZZ_CAPABILITIES_PEER_TIMEOUT": "2"},
            "capabilities.peer_timeout",
            "twice",
        ),
        ('[node]\nname = "a"', {"BZZZ_NETWORK_DHT": "maybe"}, "network.dht", "true or false"),
        ('[node]\nname = "a"', {"BZZZ_LOG_LEVEL": "loud"}, "log.level", "debug, info"),
        (
            '[node]\nname = "a"',
            {"BZZZ_CAPABILITIES_OLLAMA_HOST": "ollama"},
            "capabilities.ollama_host",
            "http://",
        ),
        ("[node]", {}, "node.name", "is required"),
        ("[node", {}, "config.toml", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(
    tmp_path: Path, toml: str, environ: dict[str, str], key: str, fix: str
) -> None:
    (tmp_path / "config.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ=environ)
    message = str(caught.value)
    assert key in message
    assert fix in message
    assert "Fix:" in message


def test_bad_config_stops_the_node_at_start_with_a_clear_line(tmp_path: Path) -> None:
    init_home(tmp_path, "a")
    result = bzzz("node", "--home", str(tmp_path), env={"BZZZ_GOSSIP_DEGREE": "0"})
    assert result.returncode == 2
    assert result.stderr.startswith("bzzz: error: gossip.degree")
    assert "Traceback" not in result.stderr


def test_missing_home_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["node", "--home", str(tmp_path / "nowhere")]) == 2
    assert "bzzz init" in capsys.readouterr().err


def test_status_without_a_running_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_home(tmp_path, "a")
    assert main(["status", "--home", str(tmp_path)]) == 2
    assert "no node is running" in capsys.readouterr().err


def test_psk_command_writes_a_private_key_once(tmp_path: Path) -> None:
    key = tmp_path / "swarm.key"
    assert main(["psk", str(key)]) == 0
    assert key.stat().st_mode & 0o777 == 0o600
    lines = key.read_text().split()
    assert lines[:2] == ["/key/swarm/psk/1.0.0/", "/base16/"]
    assert len(lines[2]) == 64
    assert main(["psk", str(key)]) == 2


def test_a_listen_address_in_use_stops_the_node_with_a_clear_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        init_home(
            tmp_path, "a", listen=[f"/ip4/127.0.0.1/tcp/{port}"], extra={"network": {"mdns": False}}
        )
        result = bzzz("node", "--home", str(tmp_path))
    assert result.returncode == 2
    assert f"network.listen: cannot listen on /ip4/127.0.0.1/tcp/{port}" in result.stderr
    assert "Fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_configuration_docs_are_generated_from_the_code() -> None:
    docs = Path(__file__).parent.parent / "docs" / "configuration.md"
    assert docs.read_text() == render_config_docs(), (
        "run: python -m bzzz.config > docs/configuration.md"
    )


def test_python_m_bzzz_config_prints_the_docs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bzzz.config"], capture_output=True, text=True, check=True
    )
    assert result.stdout == render_config_docs()


def test_configuration_errors_are_bzzz_errors_with_the_usage_exit_code(tmp_path: Path) -> None:
    with pytest.raises(BzzzError) as caught:
        load_settings(tmp_path, environ={})
    assert isinstance(caught.value, ConfigError)
    assert caught.value.exit_code is ExitCode.CONFIG
    assert int(ExitCode.CONFIG) == 2
    assert issubclass(IdentityError, BzzzError)
    assert IdentityError.exit_code == 2
    assert BzzzError.exit_code is ExitCode.FAILURE
    assert int(ExitCode.FAILURE) == 1

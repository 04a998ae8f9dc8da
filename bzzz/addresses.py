"""Parsing and checking multiaddrs and peer IDs given by people (config, CLI)."""

from __future__ import annotations

import ipaddress
import socket

import psutil
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from multiaddr import Multiaddr

from bzzz.errors import BzzzError, ExitCode

WILDCARDS = {"0.0.0.0", "::"}  # noqa: S104 - names, not binds


class AddressError(BzzzError, ValueError):
    exit_code = ExitCode.CONFIG


def _parse(text: str) -> Multiaddr:
    try:
        return Multiaddr(text)
    except Exception as exc:  # multiaddr raises several unrelated types
        raise AddressError(f"not a multiaddr ({exc})") from None


def _protocol_names(addr: Multiaddr) -> list[str]:
    return [protocol.name for protocol in addr.protocols()]


def parse_listen(text: str) -> Multiaddr:
    """A TCP listen address: /ip4/HOST/tcp/PORT or /ip6/HOST/tcp/PORT."""
    addr = _parse(text)
    names = _protocol_names(addr)
    if len(names) != 2 or names[0] not in ("ip4", "ip6") or names[1] != "tcp":
        raise AddressError("expected /ip4/HOST/tcp/PORT or /ip6/HOST/tcp/PORT")
    return addr


def parse_bootstrap(text: str) -> PeerInfo:
    """A dialable peer: /ip4/HOST/tcp/PORT/p2p/PEER_ID (also ip6 and dns)."""
    addr = _parse(text)
    names = _protocol_names(addr)
    if "p2p" not in names or "tcp" not in names:
        raise AddressError("expected /ip4/HOST/tcp/PORT/p2p/PEER_ID")
    try:
        return info_from_p2p_addr(addr)
    except Exception as exc:
        raise AddressError(f"bad peer address ({exc})") from None


def parse_peer_id(text: str) -> ID:
    """A base58 peer ID: a multihash, identity-hashed (12D3KooW...) or SHA-256 (Qm...)."""
    try:
        peer_id = ID.from_base58(text)
    except Exception:
        raise AddressError("not a base58 peer ID") from None
    raw = peer_id.to_bytes()
    identity = len(raw) > 2 and raw[0] == 0x00 and raw[1] == len(raw) - 2
    sha256 = len(raw) == 34 and raw[:2] == b"\x12\x20"
    if not (identity or sha256) or peer_id.to_base58() != text:
        raise AddressError("not a peer ID (expected 12D3KooW... or Qm...)")
    return peer_id


def check_bindable(addr: Multiaddr) -> None:
    """Bind a TCP socket as the listener would, to report why a listen address is unusable
    (py-libp2p itself carries on silently without the listener)."""
    family = socket.AF_INET6 if _protocol_names(addr)[0] == "ip6" else socket.AF_INET
    host = addr.value_for_protocol("ip6" if family == socket.AF_INET6 else "ip4")
    port = int(addr.value_for_protocol("tcp"))
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise AddressError(f"cannot listen on {addr}: {exc.strerror or exc}") from None


def dialable(addrs: list[Multiaddr]) -> list[Multiaddr]:
    """Replace wildcard hosts (0.0.0.0, ::) by this machine's interface addresses."""
    result: list[Multiaddr] = []
    for addr in addrs:
        text = str(addr)
        parts = text.split("/")
        if len(parts) > 2 and parts[2] in WILDCARDS:
            family = parts[1]
            for ip in _interface_ips(family):
                result.append(Multiaddr("/".join([*parts[:2], ip, *parts[3:]])))
        else:
            result.append(addr)
    return result


def _interface_ips(family: str) -> list[str]:
    ips: list[str] = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            try:
                ip = ipaddress.ip_address(entry.address.split("%")[0])
            except ValueError:
                continue
            if (family == "ip4" and ip.version == 4) or (
                family == "ip6" and ip.version == 6 and not ip.is_link_local
            ):
                ips.append(str(ip))
    return sorted(set(ips), key=lambda ip: (ipaddress.ip_address(ip).is_loopback, ip))

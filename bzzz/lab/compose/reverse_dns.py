"""Reverse DNS (PTR) lookups straight from a name server, for the compose lab.

A compose replica learns its own container name (`PROJECT_peer_3`, `PROJECT-peer-3`) by
asking Docker's embedded DNS server for the name of its address: the C library would
answer from /etc/hosts, where Docker writes only the container's ID. Standard library
only: one UDP query, the answer parsed here (RFC 1035, with name compression).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import struct
from pathlib import Path

PTR = 12
IN = 1
HEADER = struct.Struct("!HHHHHH")
MAX_POINTERS = 32  # a hostile answer could loop its compression pointers


class DnsError(Exception):
    pass


def nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The name servers of resolv.conf, in order."""
    try:
        lines = resolv_conf.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    servers = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def encode_query(query_id: int, name: str, qtype: int = PTR) -> bytes:
    """A standard query, recursion desired, for one name."""
    header = HEADER.pack(query_id, 0x0100, 1, 0, 0, 0)
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".") if label]
    if any(len(label) > 63 for label in labels):
        raise DnsError(f"a label of {name!r} is longer than 63 bytes")
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return header + qname + struct.pack("!HH", qtype, IN)


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` and the offset just past it (past the first pointer, if any)."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(MAX_POINTERS):
        while True:
            if offset >= len(data):
                raise DnsError("truncated name")
            length = data[offset]
            if length & 0xC0 == 0xC0:  # a pointer to the rest of the name
                if offset + 1 >= len(data):
                    raise DnsError("truncated pointer")
                if end is None:
                    end = offset + 2
                offset = ((length & 0x3F) << 8) | data[offset + 1]
                break
            if length & 0xC0:
                raise DnsError("bad label type")
            offset += 1
            if length == 0:
                return ".".join(labels) + ".", end if end is not None else offset
            if offset + length > len(data):
                raise DnsError("truncated label")
            labels.append(data[offset : offset + length].decode("ascii", errors="replace"))
            offset += length
    raise DnsError("too many compression pointers")


def decode_answers(data: bytes, query_id: int, qtype: int = PTR) -> list[str]:
    """The names answered for `qtype` in a response to query `query_id`."""
    if len(data) < HEADER.size:
        raise DnsError("response shorter than a header")
    answer_id, flags, questions, answers, _, _ = HEADER.unpack_from(data)
    if answer_id != query_id or not flags & 0x8000:
        raise DnsError("not a response to this query")
    if flags & 0x000F:
        raise DnsError(f"name server answered with error code {flags & 0x000F}")
    offset = HEADER.size
    for _ in range(questions):
        _, offset = read_name(data, offset)
        offset += 4
    names = []
    for _ in range(answers):
        _, offset = read_name(data, offset)
        if offset + 10 > len(data):
            raise DnsError("truncated record")
        rtype, _, _, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if offset + length > len(data):
            raise DnsError("truncated record data")
        if rtype == qtype:
            names.append(read_name(data, offset)[0])
        offset += length
    return names


def lookup_ptr(
    ip: str, server: str, *, port: int = 53, timeout: float = 2.0, tries: int = 3
) -> list[str]:
    """The PTR names of `ip` from name server `server` (UDP)."""
    name = ipaddress.ip_address(ip).reverse_pointer
    family = socket.AF_INET6 if ipaddress.ip_address(server).version == 6 else socket.AF_INET
    problem = "no answer"
    for _ in range(tries):
        query_id = secrets.randbelow(0x10000)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.sendto(encode_query(query_id, name), (server, port))
                data = sock.recv(4096)
                return decode_answers(data, query_id)
            except (OSError, DnsError) as exc:
                problem = str(exc) or type(exc).__name__
    raise DnsError(f"no PTR answer for {ip} from {server}: {problem}")


REPLICA = re.compile(r"^(?P<project>.+?)[_-](?P<service>[^_.-]+)[_-](?P<number>[0-9]+)$")


def replica_number(name: str, service: str) -> int | None:
    """The replica number in a compose container name (`lab_peer_3.lab_default.` -> 3,
    compose v1 and v2 spellings), when the name belongs to `service`."""
    first = name.rstrip(".").split(".")[0]
    match = REPLICA.match(first)
    if match is None or match["service"] != service:
        return None
    return int(match["number"])

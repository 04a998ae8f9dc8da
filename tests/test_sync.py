"""Task-table sync, pure: digests of what peers agree on, the wire, and the hints."""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from bzzz.tasks.sync import (
    Shared,
    SyncError,
    decode_reply,
    decode_request,
    digest,
    encode_reply,
    encode_request,
    hints,
    to_synced,
)
from bzzz.tasks.table import TaskRecord


def record(number: int, state: str = "seen", holder: str = "", url: str = "") -> TaskRecord:
    return TaskRecord(
        task_id=f"lab/app#{number}",
        repo="lab/app",
        issue_url=f"http://forge/lab/app/issues/{number}",
        model="ollama",
        title=f"Task {number}",
        branch_prefix=f"bzzz/task-{number}-",
        announced_by="a",
        announced_at="2026-12-06T12:00:00Z",
        seen_at="2026-12-06T12:00:01.000+00:00",
        state=state,
        holder=holder,
        result_url=url,
    )


def test_tables_that_agree_have_one_digest_whatever_each_node_s_own_phases() -> None:
    mine = [record(1, "waiting"), record(2, "running", "b", ""), record(3, "done", "c", "u")]
    theirs = [record(3, "done", "c", "u"), record(1, "checking"), record(2, "held", "b")]
    assert digest(mine) == digest(theirs)
    assert digest(mine) != digest([*theirs[:2], record(2, "held", "c")])  # another holder
    assert digest(mine) != digest(mine[:2])


def test_an_unchanged_table_costs_a_few_bytes_and_a_changed_one_travels_whole() -> None:
    table = [record(n) for n in range(1, 101)]
    same = encode_reply(table, digest(table))
    assert len(same) < 120
    assert decode_reply(same).tasks is None
    whole = decode_reply(encode_reply(table, "another"))
    assert whole.tasks is not None
    assert [t.task_id for t in whole.tasks] == [r.task_id for r in table]
    assert decode_request(encode_request("abc")) == "abc"


@pytest.mark.parametrize(
    "data",
    [
        b"not zlib",
        zlib.compress(b'{"digest": "x", "tasks": [{"task_id": 1}]}'),
        zlib.compress(b"[]"),
        zlib.compress(b"x" * (17 * 1024 * 1024)),  # too big once inflated
    ],
)
def test_a_malformed_reply_is_refused(data: bytes) -> None:
    with pytest.raises(SyncError):
        decode_reply(data)


def test_hints_say_what_a_node_did_not_know() -> None:
    known = {r.task_id: r for r in (record(1), record(2, "held", "b"), record(3, "done", "c"))}
    theirs = [
        to_synced(record(1, "running", "d")),  # held by a node it has not heard of
        to_synced(record(2, "held", "b")),  # known as such
        to_synced(record(3, "seen")),  # it knows the end already
        to_synced(record(4, "quarantined")),  # new to it
        to_synced(record(5)),
    ]
    found = {(h.task.task_id, h.new, h.state) for h in hints(known, theirs)}
    assert found == {
        ("lab/app#1", False, Shared.HELD),
        ("lab/app#4", True, Shared.QUARANTINED),
        ("lab/app#5", True, Shared.OPEN),
    }
    assert to_synced(replace(record(6), lease_s=12.0)).lease_s == 0.0  # only a holder's lease

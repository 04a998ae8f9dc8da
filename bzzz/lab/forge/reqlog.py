"""The request log: every request the forge answered, in memory and in `DIR/requests.jsonl`.

Tests read it to prove who polled what and that unchanged polls were free 304s. It holds
the caller's login, never a token; query parameters that could carry one are masked.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SECRET_PARAMS = {"access_token", "token", "client_secret", "password"}
MEMORY_LIMIT = 100_000


@dataclass(frozen=True)
class LoggedRequest:
    seq: int
    time: float  # epoch seconds
    method: str
    path: str
    query: str
    user: str | None  # the authenticated login; None when anonymous or not authenticated
    status: int
    counted: bool  # spent one request of the caller's rate-limit budget
    fault: str | None  # the injected fault that answered, if any
    client: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def mask_query(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        return query
    masked = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs]
    return urllib.parse.urlencode(masked)


class RequestLog:
    """Entries are numbered when their request begins and written when it is answered.

    A client may hold its reply before the entry is written, so `entries()` first waits
    (briefly) for the requests begun before the call: what a test has seen answered is
    in the log it reads next.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = threading.Condition()
        self._entries: list[LoggedRequest] = []
        self._pending: set[int] = set()
        self._seq = _last_seq(path)
        self._file = path.open("a", encoding="utf-8")

    def begin(self) -> int:
        with self._changed:
            self._seq += 1
            self._pending.add(self._seq)
            return self._seq

    def record(
        self,
        seq: int,
        *,
        time: float,
        method: str,
        path: str,
        query: str,
        user: str | None,
        status: int,
        counted: bool,
        fault: str | None,
        client: str,
    ) -> LoggedRequest:
        entry = LoggedRequest(
            seq, time, method, path, mask_query(query), user, status, counted, fault, client
        )
        with self._changed:
            self._pending.discard(seq)
            self._entries.append(entry)
            if len(self._entries) > MEMORY_LIMIT:
                del self._entries[: MEMORY_LIMIT // 10]
            if not self._file.closed:
                self._file.write(json.dumps(entry.as_json()) + "\n")
                self._file.flush()
            self._changed.notify_all()
        return entry

    def entries(
        self, after: int = 0, *, settle: float = 2.0, ignore: int | None = None
    ) -> list[LoggedRequest]:
        """This run's entries with `seq` above `after`, in the order requests began.

        Waits up to `settle` seconds for requests begun earlier (but not `ignore`: the
        request asking) to be answered. The file keeps earlier runs' entries too.
        """
        with self._changed:
            horizon = self._seq

            def settled() -> bool:
                return not any(s <= horizon and s != ignore for s in self._pending)

            self._changed.wait_for(settled, timeout=settle)
            return sorted((e for e in self._entries if e.seq > after), key=lambda e: e.seq)

    def close(self) -> None:
        with self._changed:
            self._file.close()


def _last_seq(path: Path) -> int:
    """The last `seq` in an existing log, so a restarted forge numbers on from it."""
    if not path.exists():
        return 0
    last = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                last = max(last, int(json.loads(line)["seq"]))
            except (ValueError, KeyError, TypeError):
                continue
    return last

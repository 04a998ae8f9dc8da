"""Faults a test can switch on at run time, to see how clients cope with GitHub misbehaving.

Kinds:
- `rate_limit`: the primary budget is spent now (of `user`, or everyone's) and comes back
  in `reset_in` seconds; requests answer 403 "API rate limit exceeded" meanwhile.
- `secondary_rate_limit`: 403 "You have exceeded a secondary rate limit", with
  `Retry-After: retry_after` when given.
- `too_many_requests`: 429, with `Retry-After` when given.
- `server_error`: `status` (500, 502 or 503; 500 by default).
- `lost_reply`: the request is carried out but its reply is lost: the connection is dropped
  (`status` None) or a 502 is sent (`status` 502). A client that retries blindly writes twice.
  Without a `method` it hits writes only (not GET or HEAD).

A fault hits requests matching `method`, `path` (a shell-style pattern on the path,
`/api/v3/repos/*/issues/*/comments`) and `user` (the caller's login); `count` of them
(None: until cleared), each with probability `fraction`.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

KINDS = ("rate_limit", "secondary_rate_limit", "too_many_requests", "server_error", "lost_reply")
ERROR_STATUSES = (500, 502, 503, 504)


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    kind: str
    method: str | None = None
    path: str | None = None
    user: str | None = None
    count: int | None = None
    fraction: float = 1.0
    status: int | None = None
    retry_after: int | None = None
    reset_in: float = 60.0
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultError(f"unknown fault kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.count is not None and self.count < 1:
            raise FaultError("count must be at least 1 (or null: until cleared)")
        if not 0.0 < self.fraction <= 1.0:
            raise FaultError("fraction must be in (0, 1]")
        if self.kind == "server_error" and self.status not in (None, *ERROR_STATUSES):
            raise FaultError(f"server_error status must be one of {ERROR_STATUSES}")
        if self.kind == "lost_reply" and self.status not in (None, 502):
            raise FaultError("lost_reply status must be 502, or null to drop the connection")
        if self.retry_after is not None and self.retry_after < 0:
            raise FaultError("retry_after must not be negative")
        if self.reset_in <= 0:
            raise FaultError("reset_in must be positive")

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        if not isinstance(data, dict) or "kind" not in data:
            raise FaultError('send a JSON object with at least "kind"')
        known = {f.name for f in fields(cls)} - {"id"}
        unknown = set(data) - known
        if unknown:
            raise FaultError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise FaultError(str(exc)) from None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, method: str, path: str, user: str | None) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.method is None and self.kind == "lost_reply" and method in ("GET", "HEAD"):
            return False
        if self.path is not None and not fnmatch.fnmatchcase(path, self.path):
            return False
        return self.user is None or (user is not None and self.user.lower() == user.lower())


class Faults:
    """The faults in force. Thread-safe; `seed` makes `fraction` repeatable."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._left: dict[int, int | None] = {}
        self._next_id = 1
        self._random = random.Random(seed)  # noqa: S311 - chance of a test fault, not security

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            stored = replace(fault, id=self._next_id)
            self._next_id += 1
            self._faults.append(stored)
            self._left[stored.id] = fault.count
            return stored

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            self._left.pop(fault_id, None)
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._left.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def hit(self, method: str, path: str, user: str | None) -> Fault | None:
        """The first fault this request triggers, spending one of its `count`."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path, user):
                    continue
                if fault.fraction < 1.0 and self._random.random() >= fault.fraction:
                    continue
                left = self._left[fault.id]
                if left is not None:
                    if left <= 1:
                        self._faults.remove(fault)
                        del self._left[fault.id]
                    else:
                        self._left[fault.id] = left - 1
                return fault
            return None

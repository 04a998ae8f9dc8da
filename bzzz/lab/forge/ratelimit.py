"""GitHub's primary rate limit: a budget of requests per caller per window.

A caller is a user (by login: the forge gives each user one token) or, anonymous, a client
IP. A window opens with the caller's first counted request and closes `window` seconds
later. `exhaust()` empties budgets now, for tests of clients that must wait for the reset.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    used: int
    reset: int  # epoch seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-RateLimit-Used": str(self.used),
            "X-RateLimit-Resource": "core",
        }

    def as_json(self) -> dict[str, int]:
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "reset": self.reset,
            "used": self.used,
        }


@dataclass
class _Window:
    used: int
    reset: float


class RateLimiter:
    def __init__(
        self,
        limit: int = 5000,
        anonymous_limit: int = 60,
        window: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.anonymous_limit = anonymous_limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._forced: dict[str | None, float] = {}  # key (None: everyone) -> exhausted until

    def take(self, key: str, anonymous: bool) -> tuple[bool, Quota]:
        """Count one request if the budget allows; the quota as it stands afterwards."""
        with self._lock:
            now = self._clock()
            limit = self.anonymous_limit if anonymous else self.limit
            window = self._window(key, now)
            forced = self._forced_until(key, now)
            if forced is not None:
                return False, Quota(limit, 0, window.used, math.ceil(forced))
            if window.used >= limit:
                return False, Quota(limit, 0, window.used, math.ceil(window.reset))
            window.used += 1
            return True, Quota(limit, limit - window.used, window.used, math.ceil(window.reset))

    def refund(self, key: str) -> None:
        """Give back a request that turned out free (a 304)."""
        with self._lock:
            window = self._windows.get(key)
            if window is not None and window.used > 0:
                window.used -= 1

    def peek(self, key: str, anonymous: bool) -> Quota:
        with self._lock:
            now = self._clock()
            limit = self.anonymous_limit if anonymous else self.limit
            window = self._window(key, now)
            forced = self._forced_until(key, now)
            if forced is not None:
                return Quota(limit, 0, window.used, math.ceil(forced))
            remaining = max(0, limit - window.used)
            return Quota(limit, remaining, window.used, math.ceil(window.reset))

    def exhaust(self, key: str | None, reset_in: float) -> None:
        """Empty `key`'s budget (everyone's if None) until `reset_in` seconds from now."""
        with self._lock:
            self._forced[key] = self._clock() + reset_in

    def clear(self) -> None:
        """Forget forced exhaustion (budgets already spent stay spent)."""
        with self._lock:
            self._forced.clear()

    def _window(self, key: str, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None or now >= window.reset:
            window = _Window(0, now + self.window)
            self._windows[key] = window
        return window

    def _forced_until(self, key: str, now: float) -> float | None:
        until = max(self._forced.get(key, 0.0), self._forced.get(None, 0.0))
        return until if until > now else None

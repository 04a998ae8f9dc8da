"""Who delivers each kind of report: the forge (a comment, a label on the issue), an N8N
webhook, Hive. Each deliverer is blocking (it runs in the sender's thread) and turns its
target's answer into a `Tried`: delivered, or why not and whether that lasts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bzzz.forge.api import ErrorKind, Forge, ForgeError
from bzzz.forge.token import Token
from bzzz.reports.outbox import Report
from bzzz.reports.sender import Deliver, Tried
from bzzz.reports.webhook import post_webhook

PASSING = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE})


def to_forge(forge: Forge) -> Deliver:
    def deliver(report: Report) -> Tried:
        body = report.body
        repo, number = str(body["repo"]), int(body["number"])
        try:
            if body.get("op") == "label":
                forge.add_labels(repo, number, [str(body["label"])])
            else:
                forge.comment(repo, number, str(body["text"]))
        except ForgeError as exc:
            return Tried(False, str(exc), lasting=exc.kind not in PASSING)
        return Tried(True)

    return deliver


def to_webhook(url: str, header: tuple[str, Token] | None, timeout: float) -> Deliver:
    def deliver(report: Report) -> Tried:
        return post_webhook(url, report.body, header=header, timeout=timeout)

    return deliver


def to_hive(send: Callable[[dict[str, Any]], Tried]) -> Deliver:
    """Hive's reports go through `send` (bzzz/node/hive.py knows the projects)."""

    def deliver(report: Report) -> Tried:
        return send(report.body)

    return deliver

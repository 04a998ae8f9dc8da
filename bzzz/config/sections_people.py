"""Where people and the lab's other services come in: [escalation] (a task that needs a
person: tasks.hold_label on the issue, and an N8N webhook) and [hive] (the Hive API: repositories
to watch, claims and status reported)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bzzz.config.base import Invalid, doc, positive

HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def _http_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(key, f"is {url!r}", 'use an http(s) URL, or "" for none')


@dataclass(frozen=True)
class EscalationSettings:
    webhook_url: str = doc(
        "An N8N webhook's production URL (https://n8n.example/webhook/human-escalation) that"
        ' each escalation is POSTed to; "" for none. (n8n\'s /webhook-test/ URLs only'
        " answer while its editor listens.)",
        default="",
    )
    header_name: str = doc(
        'The header that authenticates the webhook POST (n8n\'s "Header Auth"); "" for none.',
        default="",
    )
    header_file: str = doc(
        "The file, relative to the home, holding that header's value (one word, chmod 600);"
        " or the systemd credential `webhook-header`.",
        default="",
    )
    timeout: float = doc("Seconds one webhook POST may take.", default=10.0)
    max_backoff: float = doc(
        "Seconds at most between two tries of an undelivered report (webhook, Hive): the"
        " wait doubles from 5 s up to this.",
        default=600.0,
    )

    def check(self) -> None:
        if self.webhook_url:
            _http_url("escalation.webhook_url", self.webhook_url)
        if self.header_name and not HEADER_NAME.match(self.header_name):
            raise Invalid("escalation.header_name", f"is {self.header_name!r}", "use a header name")
        if bool(self.header_name) != bool(self.header_file):
            raise Invalid(
                "escalation.header_file" if self.header_name else "escalation.header_name",
                "is empty while the other is set",
                "set both escalation.header_name and escalation.header_file, or neither",
            )
        positive("escalation.timeout", self.timeout)
        positive("escalation.max_backoff", self.max_backoff)


@dataclass(frozen=True)
class HiveSettings:
    url: str = doc(
        'The Hive API\'s base URL (http://hive.lab:8000); "" for none. Hive lists the'
        " repositories to watch (beside tasks.repositories) and hears claims and status.",
        default="",
    )
    key_file: str = doc(
        "The file, relative to the home, holding Hive's API key (chmod 600); or the"
        ' systemd credential `hive-key`; "" sends none.',
        default="",
    )
    refresh: float = doc("Seconds between readings of Hive's active repositories.", default=300.0)
    timeout: float = doc("Seconds one Hive request may take.", default=30.0)

    def check(self) -> None:
        if self.url:
            _http_url("hive.url", self.url)
        positive("hive.refresh", self.refresh)
        positive("hive.timeout", self.timeout)

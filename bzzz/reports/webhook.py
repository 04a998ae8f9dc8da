"""POSTing an escalation to an N8N webhook, as n8n answers it: a production webhook of an
active workflow answers 2xx; an unregistered path (workflow inactive, wrong URL, a
/webhook-test/ URL nobody listens on) answers 404 "... is not registered"; wrong header
auth 403. Those do not pass by themselves: a misconfiguration. A connection error, a
timeout, 429 or a 5xx may pass: retried.

The header's secret goes only into the request: never into an error, a log or the outbox.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bzzz.forge.token import Token
from bzzz.reports.sender import Tried

MESSAGE_CHARS = 200


def post_webhook(
    url: str, body: dict[str, Any], *, header: tuple[str, Token] | None, timeout: float
) -> Tried:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[header[0]] = header[1].reveal()
    try:
        response = httpx.post(url, content=json.dumps(body), headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        return Tried(False, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return Tried(False, f"cannot reach the webhook: {type(exc).__name__}")
    if response.is_success:
        return Tried(True)
    said = _message(response)
    if response.status_code == 429 or response.status_code >= 500:
        return Tried(False, f"the webhook answered {response.status_code}{said}")
    fix = {
        404: " (is the workflow active, and is this its production URL?)",
        401: " (check escalation.header_name and header_file)",
        403: " (check escalation.header_name and header_file)",
    }.get(response.status_code, "")
    return Tried(False, f"the webhook answered {response.status_code}{said}{fix}", lasting=True)


def _message(response: httpx.Response) -> str:
    """n8n's own words: its JSON `message`, bounded."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {' '.join(str(message).split())[:MESSAGE_CHARS]}" if message else ""

"""Running the node process: logging, identity, the trio loop."""

from __future__ import annotations

import logging
import os
import signal

import trio

from bzzz import logs
from bzzz.config import ConfigError, Settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import TOKEN_ENV, TokenError, load_token
from bzzz.identity import load_identity
from bzzz.network.psk import read_psk
from bzzz.node import Node, run_until_signalled
from bzzz.work import open_broker

log = logging.getLogger(__name__)


def run_node(settings: Settings) -> int:
    key_pair = load_identity(settings.identity_path)
    psk = read_psk(settings.psk_path) if settings.psk_path is not None else None
    try:
        token = load_token(settings.token_path)
    except TokenError as exc:
        raise ConfigError(
            f"{exc}. Fix: correct forge.token_file or set BZZZ_FORGE_TOKEN."
        ) from None
    # Nothing this process starts (later: sandboxes) inherits the token.
    os.environ.pop(TOKEN_ENV, None)
    secrets = [secret for secret in (psk, token.reveal() if token else None) if secret]
    logs.setup(settings.log.level, settings.log_path, secrets=secrets, label=settings.node.name)
    forge = None
    if settings.tasks.repositories:
        if token is None:
            log.warning(
                "no forge token: polling %s anonymously (60 requests an hour on github.com)",
                settings.forge.api_url,
            )
        forge = GitHubForge(
            settings.forge.api_url,
            token,
            timeout=settings.forge.timeout,
            seconds_between_writes=settings.forge.seconds_between_writes,
        )
    broker = open_broker(settings) if forge is not None else None
    node = Node(settings, key_pair, psk=psk, forge=forge, broker=broker)
    try:
        trio.run(run_until_signalled, node)
    except* ConfigError as group:  # found only at start, e.g. a listen address in use
        raise _first(group) from None
    # Shut down already: a late SIGTERM must not turn a clean exit into "killed".
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error

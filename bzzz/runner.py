"""Running the node process: logging, identity, the trio loop."""

from __future__ import annotations

import logging
import signal

import trio

from bzzz import logs
from bzzz.config import ConfigError, Settings
from bzzz.identity import load_identity
from bzzz.network.psk import read_psk
from bzzz.node import Node, run_until_signalled

log = logging.getLogger(__name__)


def run_node(settings: Settings) -> int:
    key_pair = load_identity(settings.identity_path)
    psk = read_psk(settings.psk_path) if settings.psk_path is not None else None
    logs.setup(
        settings.log.level,
        settings.log_path,
        secrets=[psk] if psk else [],
        label=settings.node.name,
    )
    node = Node(settings, key_pair, psk)
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

"""Moved to bzzz.addresses. This re-export only serves importers not yet switched
(bzzz/node.py); delete it once none imports bzzz.network.addresses."""

from bzzz.addresses import (
    WILDCARDS,
    AddressError,
    check_bindable,
    dialable,
    parse_bootstrap,
    parse_listen,
    parse_peer_id,
)

__all__ = [
    "WILDCARDS",
    "AddressError",
    "check_bindable",
    "dialable",
    "parse_bootstrap",
    "parse_listen",
    "parse_peer_id",
]

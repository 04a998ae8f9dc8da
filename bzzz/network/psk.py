"""Moved to bzzz.psk. This re-export only serves importers not yet switched
(bzzz/runner.py, bzzz/cli.py); delete it once none imports bzzz.network.psk."""

from bzzz.psk import HEADER, PskError, read_psk, write_psk

__all__ = ["HEADER", "PskError", "read_psk", "write_psk"]

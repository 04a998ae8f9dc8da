"""The root of Bzzz's exceptions, and the exit codes of the `bzzz` command.

Every error that Bzzz raises on purpose is a BzzzError, whose message is meant for
the person at the terminal; `exit_code` is what the command returns when one stops
it. Families (forge, sandbox, workspace, model) have their own base class in their
module.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    OK = 0
    # The command ran and the outcome is bad: a doctor or sandbox check failed, a lab
    # run did not finish cleanly. Also Python's code for an uncaught exception.
    FAILURE = 1
    # The command could not do what was asked: bad configuration or arguments, a
    # missing home, identity, node or sandbox; the message says the fix. (argparse
    # exits with 2 for bad arguments too.)
    CONFIG = 2
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT


class BzzzError(Exception):
    """An error Bzzz raised on purpose, its message written for people."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILURE


class ConfigError(BzzzError):
    """Bad configuration: the message names the key, where it came from, and the fix."""

    exit_code = ExitCode.CONFIG

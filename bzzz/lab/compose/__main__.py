"""`python -m bzzz.lab.compose forge|peer`: the compose lab's entry point."""

import contextlib
import sys

from bzzz.lab.compose import main

with contextlib.suppress(BrokenPipeError):
    sys.exit(main())

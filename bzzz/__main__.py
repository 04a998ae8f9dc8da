import sys

from bzzz.cli import main

sys.exit(main())

"""A Hive stand-in for the lab and the tests: the real Hive's Bzzz endpoints, in memory.

- `server`: `LabHive`, the server and its Python API (repositories, what was reported,
  outages);
- `app`: what each request is answered, as the real Hive answers it;
- `state`: the projects and the claims and statuses received, behind one lock;
- `httpd`: the HTTP transport.

See docs/hive.md for the contract and where this stand-in differs from the real Hive.
"""

from bzzz.lab.hive.server import LabHive
from bzzz.lab.hive.state import LoggedRequest

__all__ = ["LabHive", "LoggedRequest"]

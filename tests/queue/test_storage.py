"""The SQLite broker's connections: one per thread, none left behind by ended threads."""

from __future__ import annotations

import threading
from pathlib import Path

from bzzz.queue.storage import Connections


def test_a_thread_s_connection_is_closed_once_the_thread_has_ended(tmp_path: Path) -> None:
    """Threads that come and go (trio's worker threads in the node) leave no connection
    (and no file descriptor) behind."""
    connections = Connections(tmp_path / "q.db", busy_timeout=1.0)

    def use() -> None:
        connections.get().execute("SELECT 1")

    for _ in range(20):
        thread = threading.Thread(target=use)
        thread.start()
        thread.join()
    use()  # this thread's, opened after the others ended
    assert len(connections._opened) == 1
    connections.close_all()

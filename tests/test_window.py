"""The operator's window of real nodes: the page shows the mesh as the node sees it and
works as plain HTML, the live stream sends its sections and sends them again when a peer
dies, /metrics parses with Prometheus' own parser, and a token keeps others out."""

from __future__ import annotations

import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bzzz.lab.processes import wait_for
from tests.conftest import NodeFactory, start_all, wait_alive


def first_event(url: str, wanted: str, timeout: float = 30.0) -> dict[str, str]:
    """The first server-sent event on `url` whose sections contain `wanted`."""
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", url) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                sections: dict[str, str] = json.loads(line[6:])
                if any(wanted in html for html in sections.values()):
                    return sections
    raise AssertionError(f"no event with {wanted!r}")


def test_the_window_shows_the_mesh_live_and_counts_in_prometheus_format(
    make_node: NodeFactory,
) -> None:
    fast = {"peer_timeout": 4.0, "presence_interval": 1.0}
    a = make_node("node-a", capabilities=fast, dashboard={"token_file": "window.token"})
    b = make_node("node-b", [a.addr], capabilities=fast)
    (a.home / "window.token").write_text("s3cret-window\n")
    (a.home / "window.token").chmod(0o600)
    start_all(a, b)
    wait_alive(a, {"node-b"})
    report = a.status()
    assert report is not None
    assert report.dashboard == a.dashboard_url

    with httpx.Client(timeout=10) as client:
        assert client.get(a.dashboard_url).status_code == 401
        page = client.get(a.dashboard_url, params={"token": "s3cret-window"})
        assert page.status_code == 200
        assert "node-a" in page.text
        assert "node-b" in page.text
        assert "<svg" in page.text  # the picture of the mesh, drawn on the server
        assert client.get(f"{a.dashboard_url}static/window.js").status_code == 200  # cookie
        scraped = client.get(
            f"{a.dashboard_url}metrics", headers={"Authorization": "Bearer s3cret-window"}
        )
    families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
    assert families["bzzz_peers_alive"].samples[0].value == 1
    received = families["bzzz_messages_received"].samples
    assert any(s.labels["topic"] == "capabilities" and s.value > 0 for s in received)

    # Live: the stream's sections show node-b alive, then dead once it is killed.
    stream = f"{a.dashboard_url}events?token=s3cret-window"
    alive = first_event(stream, 'data-node="node-b"')
    assert "node-b" in alive["nodes"]
    b.kill()
    dead = first_event(stream, "node-b (dead)", timeout=30)
    assert 'class="node dead"' in dead["mesh"]

    def counted_dead() -> bool:
        text = httpx.get(f"{a.dashboard_url}metrics?token=s3cret-window", timeout=10).text
        (alive,) = [f for f in text_string_to_metric_families(text) if f.name == "bzzz_peers_alive"]
        return alive.samples[0].value == 0

    wait_for(counted_dead, 20, "the metrics to count node-b dead")

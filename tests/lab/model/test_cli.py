"""`bzzz lab model serve`: the lab model and a script file's models, until SIGTERM."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import ollama

DEADLINE = 30.0


def bzzz_model_serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bzzz", "lab", "model", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def first_line(process: subprocess.Popen[str]) -> str:
    """The first line it prints, or a failure once the deadline passes."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=DEADLINE):
            raise AssertionError(f"nothing printed within {DEADLINE} s")
    return process.stdout.readline()


def test_serve_a_script_file_until_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "models.json"
    script.write_text(json.dumps({"coder": ["first", {"done": "all done"}]}))
    server = bzzz_model_serve("--script", str(script))
    try:
        line = first_line(server)
        assert "not an LLM" in line
        assert "lab:latest" in line
        assert "coder:latest" in line
        url = line.split(" at ", 1)[1].split(";", 1)[0]
        with ollama.Client(host=url, timeout=10) as client:
            assert {m.model for m in client.list().models} == {"lab:latest", "coder:latest"}
            said = client.chat("coder", messages=[{"role": "user", "content": "hi"}])
            assert said.message.content == "first"
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=DEADLINE) == 0
        assert time.monotonic() - began < 5
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=DEADLINE)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()


def test_a_bad_script_file_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text(json.dumps({"coder": [{"error": "x", "status": 99}]}))
    done = subprocess.run(
        [sys.executable, "-m", "bzzz", "lab", "model", "serve", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 2
    assert "model 'coder'" in done.stderr
    assert "400-599" in done.stderr

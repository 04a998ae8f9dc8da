"""Bzzz's lab: what runs Bzzz locally and in tests, and never in a deployed node.

- `processes`: `bzzz node` and `bzzz worker` as OS processes (NodeProcess, WorkerPool),
  the handles the tests and `bzzz lab run` share;
- `run`: `bzzz lab run`, N nodes with their workers on loopback, a seeded local forge
  and the lab model server, from issues to pull requests;
- `forge`: the local GitHub-compatible forge (`bzzz lab forge serve|seed`);
- `model`: the lab model server, ollama's API answered from scripts (`bzzz lab model serve`);
- `sample`: the sample repository, its issues and the playbook that solves them;
- `compose`: the compose lab cluster's entry points (`python -m bzzz.lab.compose`);
- `httpserver`: the start/stop lifecycle the forge and the model server share;
- `cli`: the `bzzz lab` subcommands.

The daemon (`bzzz node`, `bzzz worker` and what they import) never imports this package;
`lint-imports` (the contract in pyproject.toml, run by scripts/test) keeps it so.
"""

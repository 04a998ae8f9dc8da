"""Agent CLIs (Claude Code, Codex, ...) as executors: their drivers, the relay that is
their only way to the model, and the run in the sandbox."""

"""Tasks: GitHub issues found by one poller per repository and announced on task_broadcast."""

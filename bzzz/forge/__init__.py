"""Forges: where Bzzz's tasks come from (GitHub issues) and where its results go.

`api` is the small interface Bzzz needs of a forge, `github` implements it on PyGithub
(github.com, GitHub Enterprise, or the lab's local forge, `bzzz.lab.forge`).
"""

"""Bzzz: a peer-to-peer coordinator for AI coding agents."""

__version__ = "0.1.0"

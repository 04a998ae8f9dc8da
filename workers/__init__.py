"""Dramatiq actors and what they run: the worker side of a Bzzz node.

Workers arrive with the task flow (claims, queue, sandbox); the network process
never imports this package.
"""

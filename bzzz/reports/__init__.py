"""Reports to people and services outside the mesh, which must not be lost.

outbox   reports kept in SQLite until their target takes them (idempotent by key)
sender   the trio loop that delivers them, with back-off, across restarts
webhook  an escalation POSTed to an N8N webhook, as n8n answers
"""

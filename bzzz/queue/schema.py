"""The table of `SQLiteBroker` and the statements that claim, settle and lease its rows.

One table holds every message, ready (0), claimed (1) or dead-lettered (2); each row is
one delivery with an id of its own. Times are milliseconds since the epoch.
docs/queue.md describes the table and the life of a message.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS bzzz_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the delivery id: never reused
    queue TEXT NOT NULL,
    state INTEGER NOT NULL,                -- 0 ready, 1 claimed, 2 dead letter
    ready_at INTEGER NOT NULL,             -- ms since the epoch: claimable from then on
    owner TEXT,                            -- the claiming process
    lease_until INTEGER,                   -- ms: a claim not renewed by then is ready again
    dead_until INTEGER,                    -- ms: when a dead letter is purged
    deliveries INTEGER NOT NULL DEFAULT 0,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS bzzz_messages_ready ON bzzz_messages (queue, state, ready_at, id);
CREATE INDEX IF NOT EXISTS bzzz_messages_lease ON bzzz_messages (lease_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS bzzz_messages_dead ON bzzz_messages (dead_until) WHERE state = 2;
"""

CLAIM = """
UPDATE bzzz_messages
SET state = 1, owner = :owner, lease_until = :lease_until, deliveries = deliveries + 1
WHERE id IN (
    SELECT id FROM bzzz_messages
    WHERE queue = :queue AND state = 0 AND ready_at <= :now
    ORDER BY ready_at, id LIMIT :limit
)
RETURNING ready_at, id, deliveries, body
"""
# A delivery is ours to settle while we own it, or once it is back to ready (reaped).
MINE = "id = :id AND (owner = :owner OR state = 0)"
ACK = f"DELETE FROM bzzz_messages WHERE {MINE}"  # noqa: S608 (constant text)
NACK = f"""
UPDATE bzzz_messages
SET state = 2, owner = NULL, lease_until = NULL, dead_until = :dead_until,
    body = coalesce(:body, body)
WHERE {MINE}
"""  # noqa: S608 (constant text)
# Requeued messages were never started, so their delivery does not count.
REQUEUE = """
UPDATE bzzz_messages
SET state = 0, owner = NULL, lease_until = NULL, deliveries = max(deliveries - 1, 0)
WHERE owner = :owner AND id IN (SELECT value FROM json_each(:ids))
"""
RENEW = """
UPDATE bzzz_messages SET lease_until = :lease_until
WHERE owner = :owner AND id IN (SELECT value FROM json_each(:ids))
"""
EXPIRED = "SELECT EXISTS (SELECT 1 FROM bzzz_messages WHERE state = 1 AND lease_until < ?)"
REAP = """
UPDATE bzzz_messages SET state = 0, owner = NULL, lease_until = NULL
WHERE state = 1 AND lease_until < ?
"""

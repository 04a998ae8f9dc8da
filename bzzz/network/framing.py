"""Length-prefixed messages on a libp2p stream: a 4-byte big-endian size, then the bytes.
For the direct streams between nodes (task sync, help); gossip carries only small
messages, and anything bulky moves this way."""

from __future__ import annotations

import logging

from libp2p.abc import INetStream

log = logging.getLogger(__name__)

CHUNK = 65536


class FramingError(ValueError):
    """The stream ended early, or a message was over its limit."""


async def send_message(stream: INetStream, data: bytes) -> None:
    await stream.write(len(data).to_bytes(4, "big") + data)


async def receive_message(stream: INetStream, limit: int) -> bytes:
    """One length-prefixed message of at most `limit` bytes."""
    size = int.from_bytes(await _exactly(stream, 4), "big")
    if size > limit:
        raise FramingError(f"a message of {size} bytes, over the limit of {limit}")
    return await _exactly(stream, size)


async def _exactly(stream: INetStream, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        try:
            chunk = await stream.read(min(CHUNK, size - len(buffer)))
        except EOFError:
            chunk = b""
        if not chunk:
            raise FramingError(f"the stream ended after {len(buffer)} of {size} bytes")
        buffer += chunk
    return bytes(buffer)


async def close(stream: INetStream) -> None:
    """Close `stream` (the other side reads to its end), if it is still there."""
    try:
        await stream.close()
    except Exception:  # already gone
        log.debug("closing a stream failed", exc_info=True)


async def reset(stream: INetStream) -> None:
    """Reset `stream` (the other side sees it cut off), if it is still there."""
    try:
        await stream.reset()
    except Exception:  # already gone
        log.debug("resetting a stream failed", exc_info=True)

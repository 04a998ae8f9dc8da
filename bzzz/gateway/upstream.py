"""This machine's model server (`capabilities.ollama_host`), called on trio through httpx.

A reply's body comes as an async iterator of chunks, relayed as they arrive; a gap of
more than `idle` seconds between two chunks ends it with an error line rather than a
hang. Leaving the iterator early (the caller went away) closes the request, which the
model server sees as a dropped connection and stops generating.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import trio

from bzzz.gateway.api import NDJSON, error_line

CONNECT_TIMEOUT = 5.0


class Unreachable(Exception):
    """The model server could not be reached, or did not start answering in time."""


@dataclass
class Reply:
    status: int
    content_type: str
    chunks: AsyncGenerator[bytes, None]  # close it (contextlib.aclosing) when done


class Upstream:
    def __init__(self, base_url: str, *, idle: float) -> None:
        self._base = base_url.rstrip("/")
        self._idle = idle
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT, read=None, write=idle, pool=idle)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, method: str, path: str, body: bytes, *, first_byte: float) -> Reply:
        """Start the request; returns once the status is in (within `first_byte` s)."""
        stack = AsyncExitStack()
        request = self._client.build_request(
            method, self._base + path, content=body or None, headers=_headers(body)
        )
        try:
            with trio.fail_after(first_byte):
                response = await stack.enter_async_context(_streaming(self._client, request))
        except (httpx.HTTPError, trio.TooSlowError) as exc:
            await stack.aclose()
            raise Unreachable(f"{self._base}: {type(exc).__name__}: {exc}") from None
        content_type = response.headers.get("content-type", NDJSON)
        return Reply(response.status_code, content_type, self._relay(response, stack, path))

    async def _relay(
        self, response: httpx.Response, stack: AsyncExitStack, path: str
    ) -> AsyncGenerator[bytes, None]:
        try:
            chunks = response.aiter_raw().__aiter__()
            while True:
                try:
                    with trio.fail_after(self._idle):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                except trio.TooSlowError:
                    yield error_line(f"the model server went silent for {self._idle:g} s", path)
                    return
                except httpx.HTTPError as exc:
                    yield error_line(f"the model server failed: {type(exc).__name__}", path)
                    return
                yield chunk
        finally:
            with trio.CancelScope(shield=True):  # the connection closes even when cut short
                await stack.aclose()


def _headers(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json"} if body else {}


class _streaming:
    """`client.send(request, stream=True)` as an async context manager."""

    def __init__(self, client: httpx.AsyncClient, request: httpx.Request) -> None:
        self._client = client
        self._request = request
        self._response: httpx.Response | None = None

    async def __aenter__(self) -> httpx.Response:
        self._response = await self._client.send(self._request, stream=True)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            await self._response.aclose()

"""Protections of the web app: a Host check, body caps, a bounded work queue, bounded caches."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["LOOPBACK_HOSTS", "Busy", "HostCheck", "LRUCache", "UploadLimit", "WorkLimiter", "short"]

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
"""Host names a server bound to this machine answers to by default."""


def short(text: str, limit: int = 1000) -> str:
    """``text`` cut to ``limit`` characters (with a note of how much was left out)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _host_name(header: bytes) -> str:
    """The name in a Host header, without its port (``[::1]:8000`` -> ``::1``)."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class HostCheck:
    """ASGI middleware: answer only requests whose ``Host`` is one of ``allowed`` (``*`` allows any).

    A page on another site that points its own name at 127.0.0.1 (DNS rebinding) sends its
    own name as Host, so it is refused with 400 before any route runs.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], allowed: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"host", b"")
        name = _host_name(header)
        if name in self.allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": f"host {short(name, 100)!r} is not served here; allowed: "
                                    f"{', '.join(sorted(self.allowed))} (start the server with --allowed-host NAME "
                                    "to add a name)"}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

K = TypeVar("K")
V = TypeVar("V")


class UploadLimit:
    """ASGI middleware: request bodies over the cap get 413 and a JSON error, at once.

    Uploads (``multipart/form-data``) may have ``max_bytes``; every other body (JSON)
    ``max_json_bytes``. A declared ``Content-Length`` over the cap is refused before any of
    the body is read; a body without one (chunked) is counted as it arrives and refused the
    moment it passes the cap, so an oversized body is never spooled whole.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int, max_json_bytes: int = 64 * 1024) -> None:
        self.app, self.max_upload_bytes, self.max_json_bytes = app, max_bytes, max_json_bytes

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        upload = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        limit = self.max_upload_bytes if upload else self.max_json_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, int(declared), limit, upload)
            return
        seen = 0
        refused = False
        answered = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True  # stop reading: the app sees a disconnected client
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal answered
            if not refused:
                await send(message)
            elif not answered:  # whatever the app answers to the cut-off body, the client gets 413
                answered = True
                await self._refuse(send, seen, limit, upload)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not answered:
            await self._refuse(send, seen, limit, upload)

    async def _refuse(self, send: Callable, size: int, limit: int, upload: bool) -> None:
        what = (f"upload too large: more than {limit:,} bytes ({size:,} seen); the limit is "
                f"{limit / (1024 * 1024):g} MB" if upload else
                f"request body too large: more than {limit:,} bytes ({size:,} seen); JSON requests are small")
        body = json.dumps({"error": what}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class Busy(Exception):
    """The work queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


class WorkLimiter:
    """At most ``concurrency`` model jobs at once and ``queue`` waiting; more is refused (503)."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency, self.queue = concurrency, queue
        self._semaphore: asyncio.Semaphore | None = None
        self._waiting = 0
        self._running = 0

    @property
    def load(self) -> dict[str, int]:
        return {"running": self._running, "waiting": self._waiting, "concurrency": self.concurrency,
                "queue": self.queue}

    async def run(self, work: Callable[[], V]) -> V:
        """Run blocking ``work`` in a thread once a slot is free."""
        from starlette.concurrency import run_in_threadpool

        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        if self._semaphore.locked() and self._waiting >= self.queue:
            raise Busy(retry_after=1)
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            return await run_in_threadpool(work)
        finally:
            self._running -= 1
            self._semaphore.release()


class LRUCache(Generic[K, V]):
    """A thread-safe mapping that keeps the ``capacity`` most recently used entries."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = create()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._items)

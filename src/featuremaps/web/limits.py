"""Protections of the web app: a Host check, body caps, a bounded work queue, bounded caches."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from featuremaps.files import JsonRefused, parse_json

__all__ = ["LOOPBACK_HOSTS", "Busy", "HostCheck", "JsonBodyCheck", "LRUCache",
           "UploadLimit", "WorkLimiter", "json_problem", "parse_authority", "short"]

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
"""Host names a server bound to this machine answers to by default."""


def short(text: str, limit: int = 1000) -> str:
    """``text`` cut to ``limit`` characters (with a note of how much was left out)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


_AUTHORITY = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]{2,45})\]|(?P<name>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?))"
                        r"(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?P<authority>[^/?#]*)")


def parse_authority(text: str) -> tuple[str, str] | None:
    """``(name, port)`` of a ``host[:port]`` (``[::1]:8000`` -> ``("::1", "8000")``; port ``""`` when absent),
    or None when the text is anything else (``[::1]evil.example``, ``127.0.0.1:80@evil.example``, spaces)."""
    found = _AUTHORITY.fullmatch(text.strip().lower())
    if found is None:
        return None
    return found.group("v6") or found.group("name"), found.group("port") or ""


class HostCheck:
    """ASGI middleware: the ``Host`` and ``Origin`` checks, before any route runs.

    - ``Host`` must be exactly ``name[:port]`` with a name in ``allowed`` (``*`` allows any): a
      page on another site that points its own name at 127.0.0.1 (DNS rebinding) sends its own
      name, and is refused with 400.
    - ``Origin``, when a browser sends one (every cross-site request that can change state, and
      this server's own pages' requests), must be this server itself: the same host and port
      as ``Host``, over http(s). Anything else, ``Origin: null`` included (a sandboxed frame, a
      file:// page), is refused with 403, so another site cannot make a visitor's browser post
      to the explorer (CSRF), even a form or a multipart upload that needs no preflight.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], allowed: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.allowed = {name.strip("[]").lower() for name in allowed}

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_host = headers.get(b"host", b"").decode("latin-1")
        host = parse_authority(raw_host)
        if host is None or not (self.any or host[0] in self.allowed):
            shown = short(raw_host.strip(), 100)
            await _answer(send, 400, f"host {shown!r} is not served here; allowed: {', '.join(sorted(self.allowed))} "
                                     "(start the server with --allowed-host NAME to add a name)")
            return
        origin = headers.get(b"origin")
        if origin is not None:
            problem = self._origin_problem(origin.decode("latin-1").strip(), host, scope)
            if problem is not None:
                await _answer(send, 403, problem)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _origin_problem(origin: str, host: tuple[str, str], scope: dict[str, Any]) -> str | None:
        found = _ORIGIN.fullmatch(origin.lower())
        authority = parse_authority(found.group("authority")) if found else None
        if found is not None and authority is not None:
            default = "443" if found.group("scheme") == "https" else "80"
            own_port = host[1] or ("443" if scope.get("scheme") == "https" else "80")
            if authority[0] == host[0] and (authority[1] or default) == own_port:
                return None
        own = f"{host[0] if ':' not in host[0] else f'[{host[0]}]'}{':' + host[1] if host[1] else ''}"
        return (f"origin {short(origin, 100)!r} may not use this server: requests must come from its own pages "
                f"(http://{own}) or from a program that sends no Origin")


async def _answer(send: Callable, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
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


def json_problem(body: bytes) -> str | None:
    """What makes a request body unfit to parse (not UTF-8, nested too deep, a huge number), or None; JSON
    syntax errors are left to the parser, which names their place (and FastAPI reports them as 422)."""
    try:
        parse_json(body)
    except JsonRefused as error:
        if str(error).startswith("not valid JSON"):
            return None
        return f"the body: {error}"
    return None


class JsonBodyCheck:
    """ASGI middleware: a JSON body that is not UTF-8, nests too deep or holds a huge number gets 422 with
    that reason, before the parser (which would only say "There was an error parsing the body"). The body
    is read whole (:class:`UploadLimit`, outside it, caps its size) and passed on unchanged."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH") or not (
                kind == b"application/json" or kind.endswith(b"+json")):
            await self.app(scope, receive, send)
            return
        chunks, messages = [], []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        problem = json_problem(b"".join(chunks)) if messages[-1]["type"] == "http.request" else None
        if problem is not None:
            await _answer(send, 422, problem)
            return
        replay = iter(messages)

        async def replayed() -> dict[str, Any]:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


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
    """A thread-safe mapping that keeps the ``capacity`` most recently used entries; an entry that several
    threads ask for at once is created once (the others wait for it)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._creating: dict[K, threading.Lock] = {}

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
        if value is not None:
            return value
        with self._lock:
            creating = self._creating.setdefault(key, threading.Lock())
        with creating:
            value = self.get(key)  # made by the thread this one waited for
            if value is None:
                try:
                    value = create()
                    self.put(key, value)
                finally:
                    with self._lock:
                        self._creating.pop(key, None)
        return value

    def __len__(self) -> int:
        return len(self._items)

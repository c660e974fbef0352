"""Running the explorer: uvicorn, with a deadline on every request's head.

uvicorn closes a keep-alive connection that stays idle, but a client that opens a connection and
sends its request head a byte at a time (a slow-loris) is never closed: each byte restarts no
timer, and enough such connections use up the server. Here a connection must deliver a complete
request head (request line and headers) within ``head_timeout`` seconds of opening, and again
within that time of each response; otherwise it is closed. The body, and the work, are bounded
elsewhere (:mod:`featuremaps.web.limits`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEAD_TIMEOUT", "server_config"]

HEAD_TIMEOUT = 10.0
"""Seconds a connection has to send a whole request head."""


class _HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive in time."""

    head_timeout = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._waiting_for = self.cycle
        self._deadline = self.loop.call_later(self.head_timeout, self._too_slow)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is self._waiting_for and not self.transport.is_closing():  # still no new request
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._deadline is not None and self.cycle is not self._waiting_for:  # a whole head arrived
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_config(app: Any, host: str = "127.0.0.1", port: int = 8000, *, head_timeout: float = HEAD_TIMEOUT,
                  log_level: str = "warning") -> uvicorn.Config:
    """The uvicorn configuration of the explorer (h11 with the request-head deadline)."""
    protocol = type("ExplorerProtocol", (_HeadDeadline,), {"head_timeout": float(head_timeout)})
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=protocol, timeout_keep_alive=5)

"""A real explorer server on a free loopback port (the browser fixture is in tests/conftest.py)."""

from __future__ import annotations

import socket
import threading
import time

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from featuremaps.web import ExplorerSettings, create_app
    from featuremaps.web.server import server_config

    port = _free_port()
    config = server_config(create_app(ExplorerSettings(concurrency=2, queue=64)), "127.0.0.1", port)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    assert instance.started, "the explorer did not start"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)

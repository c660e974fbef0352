"""Every request gets its own correct answer whatever runs beside it: requests of every kind, fired at once at
a real server on loopback (models not yet loaded, so first loads and FX traces overlap other work), each
answer equal to the same request answered alone; and a cheap request does not wait behind heavy ones."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from featuremaps.web import ExplorerSettings, create_app
from featuremaps.web.server import server_config

pytestmark = pytest.mark.slow

REQUESTS = [
    ("POST", "/api/maps", {"model": "resnet18", "layer": "layer2", "max_maps": 4}),
    ("POST", "/api/overlay", {"model": "resnet18", "layer": "layer1", "channel": 3}),
    ("POST", "/api/lineage", {"model": "resnet18", "layer": "layer2", "channel": 5, "levels": 1, "top": 3}),
    ("POST", "/api/visualize", {"model": "resnet18", "layer": "layer1", "channel": 2, "steps": 4}),
    ("GET", "/api/models/resnet34/layers", None),
    ("POST", "/api/maps", {"model": "resnet34", "layer": "layer4", "max_maps": 2}),
    ("POST", "/api/lineage", {"model": "resnet34", "layer": "layer3", "channel": 1, "levels": 1, "top": 2}),
    ("POST", "/api/maps", {"model": "builtin:shapes", "layer": "pool2", "max_maps": 4}),
    ("POST", "/api/lineage", {"model": "builtin:shapes", "layer": "relu2_2", "channel": 1, "levels": 2, "top": 2}),
    ("POST", "/api/predict", {"model": "builtin:objects"}),
    ("POST", "/api/segment", {"method": "head"}),
    ("POST", "/api/conv", {"filters": "sobel", "stride": 2}),
    ("GET", "/api/models/tinyvgg/layers", None),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    def __init__(self, **settings):
        self.port = _free_port()
        self.app = create_app(ExplorerSettings(**settings))
        self.server = __import__("uvicorn").Server(server_config(self.app, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def ask(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def _essence(path: str, answer) -> object:
    """What must be equal: every number and picture of the answer (the visualisation's to 1e-4)."""
    if path == "/api/visualize":
        return (answer["label"], round(answer["start"], 4), round(answer["value"], 4))
    return answer


@pytest.mark.timeout(900)
def test_every_request_gets_its_own_answer_whatever_runs_beside_it():
    with _Server(concurrency=2, queue=64) as alone:
        expected = [alone.ask(*request) for request in REQUESTS]
    assert all(status == 200 for status, _ in expected), [e for e in expected if e[0] != 200]
    with _Server(concurrency=6, queue=64) as busy:  # a new server: nothing loaded, nothing traced yet
        with ThreadPoolExecutor(max_workers=len(REQUESTS) * 2) as pool:
            futures = [pool.submit(busy.ask, *request) for request in REQUESTS * 2]
            answers = [future.result() for future in futures]
    for index, (status, answer) in enumerate(answers):
        method, path, body = REQUESTS[index % len(REQUESTS)]
        assert status == 200, (path, body, answer)
        assert _essence(path, answer) == _essence(path, expected[index % len(REQUESTS)][1]), (path, body)


@pytest.mark.timeout(600)
def test_a_cheap_request_does_not_wait_behind_heavy_ones():
    with _Server(concurrency=1, queue=64) as server:
        server.ask("POST", "/api/conv", {})  # warm: the sample loaded
        server.ask("POST", "/api/visualize", {"model": "resnet18", "layer": "layer3", "channel": 0, "steps": 1})
        heavy = {"model": "resnet18", "layer": "layer3", "channel": 0, "steps": 48}
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = time.perf_counter()
            slow = [pool.submit(server.ask, "POST", "/api/visualize", {**heavy, "channel": c}) for c in range(6)]
            deadline = time.perf_counter() + 60
            while time.perf_counter() < deadline:  # until the server says the heavy ones run and wait (no sleep guess)
                load = server.ask("GET", "/api/health", None)[1]["load"]["heavy"]
                if load["running"] == 1 and load["waiting"] >= 4:
                    break
            else:
                raise AssertionError(f"the heavy requests never queued: {load}")
            light_started = time.perf_counter()
            status, _ = server.ask("POST", "/api/conv", {"filters": "sobel"})
            light = time.perf_counter() - light_started
            statuses = [future.result()[0] for future in slow]
            heavy_total = time.perf_counter() - started
    assert status == 200 and statuses == [200] * 6
    assert light < heavy_total / 4, f"the cheap request took {light:.1f} s beside {heavy_total:.1f} s of heavy work"


def test_slow_request_heads_are_cut_off_and_others_are_served():
    with _Server() as server:
        server.server.config.http.head_timeout = 1.0  # the protocol class of this server only
        loris = []
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /api/conv HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes its head
            loris.append(sock)
        status, _ = server.ask("GET", "/api/health", None)
        assert status == 200
        time.sleep(2.0)
        closed = 0
        for sock in loris:
            sock.settimeout(2)
            try:
                closed += sock.recv(100) == b""
            except OSError:
                closed += 1
            sock.close()
        assert closed == 50, f"{50 - closed} slow connections were left open"
        assert server.ask("GET", "/api/health", None)[0] == 200

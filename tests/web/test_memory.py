"""The memory a request may cost, measured on a real ``featuremaps serve`` process.

The bound the README states: an upload costs at most Pillow's decoding buffer (4 bytes per
pixel, 5 for palette images) plus the upload's bytes, and ``--concurrency`` uploads decode at
once; the explorer keeps only a copy shrunk to 512 px.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from featuremaps.images import MAX_PIXELS

pytestmark = pytest.mark.slow

PER_PIXEL = 4  # bytes of Pillow's RGB/RGBA buffer
SLACK_MB = 120  # allocator and interpreter noise around the two requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "featuremaps-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(url: str, data: bytes, results: list) -> None:
    body, content_type = _multipart("big.png", data)
    request = urllib.request.Request(url + "/api/images", data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        results.append(response.status)


@pytest.fixture()
def server_process():
    script = shutil.which("featuremaps", path=str(Path(sys.executable).parent))
    assert script, "the featuremaps console script is not installed next to this Python"
    port = _free_port()
    process = subprocess.Popen([script, "serve", "--port", str(port), "--concurrency", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "CI": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2):
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("featuremaps serve did not start: " + process.stdout.read().decode()[-2000:])
    yield process, url
    process.terminate()
    process.wait(timeout=30)


def test_two_uploads_of_the_largest_image_stay_within_the_stated_bound(server_process):
    process, url = server_process
    side = int(MAX_PIXELS**0.5) - 1  # 7999 x 7999: just under the pixel limit
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (40, 120, 200)).save(buffer, format="PNG")
    data = buffer.getvalue()  # about 200 KB of PNG for 64 megapixels
    warm: list[int] = []
    small = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(small, format="PNG")
    _upload(url, small.getvalue(), warm)  # loads the decoders once
    idle = _status_mb(process.pid, "VmRSS")
    results: list[int] = []
    threads = [threading.Thread(target=_upload, args=(url, data, results)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200]
    peak = _status_mb(process.pid, "VmHWM")
    bound = 2 * (PER_PIXEL * side * side + len(data)) / 2**20 + SLACK_MB
    print(f"idle {idle:.0f} MB, peak {peak:.0f} MB, growth {peak - idle:.0f} MB, bound {bound:.0f} MB")
    assert peak - idle < bound


_CATALOGUE_PROBE = """
import json, resource, sys, time
from fastapi.testclient import TestClient
from featuremaps.web import ExplorerSettings, create_app
client = TestClient(create_app(ExplorerSettings()), base_url="http://localhost")
client.get("/api/models/tinyvgg/layers")  # warm: torch and the app loaded
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
layers = client.get("/api/models/regnet_y_128gf/layers")
seconds = time.perf_counter() - started
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
maps = client.post("/api/maps", json={"model": "regnet_y_128gf", "layer": "trunk_output"})
print(json.dumps({"status": layers.status_code, "rows": len(layers.json()), "seconds": seconds, "grown_mb": grown,
                  "maps": maps.status_code, "error": maps.json().get("error"),
                  "after_maps_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def test_a_models_layers_cost_no_weights_and_a_huge_model_is_refused_before_it_is_built():
    """regnet_y_128gf (645 M parameters, 2.6 GB of float32) lists its layers from its architecture alone; maps
    of it are refused with the bound before any weight is made."""
    import json

    result = subprocess.run([sys.executable, "-c", _CATALOGUE_PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["status"] == 200 and found["rows"] > 100, found
    assert found["grown_mb"] < 300, found  # the weights alone would be 2,460 MB
    assert found["seconds"] < 20, found
    assert found["maps"] == 400 and "regnet_y_128gf has 644,812,894 parameters; the explorer builds models of up " \
                                   "to 150,000,000" in found["error"], found
    assert found["after_maps_mb"] < 300, found

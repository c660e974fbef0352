"""Hostile web requests: each gets a 4xx whose ``error`` names the problem, never a traceback or a 5xx, a small
answer, quickly; nothing on the server's disk is read through them."""

from __future__ import annotations

import struct
import time
import zlib

import pytest
from fastapi.testclient import TestClient

from featuremaps.web import ExplorerSettings, create_app


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


BOMB = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _chunk(b"IEND", b""))

CASES = [
    # (method, path, request keywords, status, what the error must say)
    ("post", "/api/conv", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 422,
     "the body is not valid JSON"),
    ("post", "/api/conv", {"json": [1, 2, 3]}, 422, "body: Input should be a valid dictionary"),
    ("post", "/api/conv", {"json": {"stride": "two"}}, 422, "stride: Input should be a valid integer"),
    ("post", "/api/conv", {"json": {"kernel_size": 10**30}}, 422, "kernel_size: Input should be less than or equal"),
    ("post", "/api/conv", {"json": {"dilation": 0}}, 422, "dilation: Input should be greater than or equal to 1"),
    ("post", "/api/conv", {"json": {"padding_mode": "wrap"}}, 422, "padding_mode: Input should be 'zeros'"),
    ("post", "/api/conv", {"json": {"padding": 200}}, 422, "padding: must be an integer from 0 to 32, 'same' or"),
    ("post", "/api/conv", {"json": {"image": "../../etc/passwd"}}, 422, "image: String should match pattern"),
    ("post", "/api/conv", {"json": {"image": "0123456789abcdef"}}, 400, "unknown image id '0123456789abcdef'"),
    ("post", "/api/conv", {"json": {"filters": "nosuchbank"}}, 400, "unknown filter bank 'nosuchbank'"),
    ("post", "/api/conv", {"json": {"filters": "/etc/passwd.npy"}}, 422, "filters: String should match pattern"),
    ("post", "/api/conv", {"json": {"unknown_field": 1}}, 422, "unknown_field: Extra inputs are not permitted"),
    ("post", "/api/conv", {"json": {"filters": "x" * 100_000}}, 413, "request body too large"),
    ("post", "/api/conv", {"json": {"stride": 0}}, 422, "stride: Input should be greater than or equal to 1"),
    ("post", "/api/conv", {"json": {}, "headers": {"Host": "attacker.example"}}, 400,
     "host 'attacker.example' is not served here"),
    ("delete", "/api/conv", {}, 405, "this route does not take DELETE /api/conv"),
    ("post", "/api/scene", {"json": {"height": 100}}, 422, "height: Input should be less than or equal to 12"),
    ("post", "/api/scene", {"json": {"transposed": True, "padding": 3, "kernel_size": 1, "height": 2}}, 400,
     "the padding 3 + 3 removes every row of the transposed output"),
    ("post", "/api/scene", {"json": {"output_padding": 1}}, 400, "output_padding applies only to a transposed"),
    ("get", "/api/models/nosuchmodel/layers", {}, 400, "unknown model 'nosuchmodel'"),
    ("get", "/api/models/..%2F..%2Fetc/layers", {}, 404, "no such route"),
    ("post", "/api/maps", {"json": {"model": "resnet18", "layer": "nolayer"}}, 400,
     "layer 'nolayer' not found in resnet18"),
    ("post", "/api/maps", {"json": {"model": "/etc/passwd", "layer": "x"}}, 400, "unknown model '/etc/passwd'"),
    ("post", "/api/overlay", {"json": {"model": "tinyvgg", "layer": "conv1_1", "channel": 999}}, 400,
     "channel must be from 0 to 9 for conv1_1; got 999"),
    ("post", "/api/lineage", {"json": {"model": "tinyvgg", "layer": "conv1_1", "channel": 999}}, 400,
     "channel 999 is out of range for layer conv1_1"),
    ("post", "/api/visualize", {"json": {"model": "tinyvgg", "layer": "conv1_1", "steps": 10_000}}, 422,
     "steps: Input should be less than or equal to 128"),
    ("post", "/api/predict", {"json": {"model": "tinyvgg", "image": "sample:nosuch"}}, 400,
     "sample:nosuch: no such sample"),
    ("post", "/api/segment", {"json": {"method": "nosuch"}}, 422, "method: Input should be 'clusters' or 'head'"),
    ("post", "/api/images", {"files": {"file": ("x.png", b"not an image", "image/png")}}, 400,
     "the upload 'x.png' (12 bytes): not an image"),
    ("post", "/api/images", {"files": {"file": ("e.png", b"", "image/png")}}, 400, "file is empty"),
    ("post", "/api/images", {"files": {"file": ("bomb.png", BOMB, "image/png")}}, 400,
     "10,000,000,000 pixels is over the limit"),
    ("post", "/api/images", {"files": {"file": ("t.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 40, "image/jpeg")}}, 400,
     "the upload 't.jpg'"),
    ("post", "/api/images", {"data": {"nofile": "1"}}, 422, "file: Field required"),
    ("get", "/api/images/nosuch.png", {}, 400, "unknown image id 'nosuch'"),
    ("get", "/api/images/..%2F..%2Fsecret.png", {}, 404, "no such route"),
    # issue 21
    ("post", "/api/conv", {"content": b'{"stride": ' + b"9" * 5000 + b"}",
                           "headers": {"Content-Type": "application/json"}}, 422,
     "the body: a number of 5,000 digits; at most 100"),
    ("post", "/api/conv", {"content": b"[" * 5000 + b"]" * 5000, "headers": {"Content-Type": "application/json"}},
     422, "the body: JSON nested 5000 levels deep; at most 32"),
    ("post", "/api/conv", {"content": b'{"filters": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}},
     422, "the body: not UTF-8 text (byte 13 is 0xff)"),
    ("post", "/api/lineage", {"json": {"model": "tinyvgg", "layer": "conv2_2:1", "channel": 0}}, 400,
     "layer 'conv2_2:1' not found in tinyvgg"),
    ("post", "/api/lineage", {"json": {"model": "tinyvgg", "layer": "Conv2d", "channel": 0}}, 400,
     "layer 'Conv2d' not found in tinyvgg"),
    ("post", "/api/maps", {"json": {"model": "regnet_y_128gf", "layer": "trunk_output"}}, 400,
     "regnet_y_128gf has 644,812,894 parameters; the explorer builds models of up to 150,000,000"),
    ("post", "/api/images", {"files": {"file": ("x.png", b"x", "image/png")}, "headers": {"Origin": "null"}}, 403,
     "origin 'null' may not use this server"),
    ("post", "/api/conv", {"json": {}, "headers": {"Host": "[::1]evil.example"}}, 400,
     "host '[::1]evil.example' is not served here"),
]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ExplorerSettings()), base_url="http://localhost") as test_client:
        yield test_client


@pytest.mark.parametrize("method, path, request_kwargs, status, message", CASES,
                         ids=[f"{c[0]} {c[1]} {i}" for i, c in enumerate(CASES)])
def test_hostile_requests(client, method, path, request_kwargs, status, message):
    started = time.perf_counter()
    if method == "delete":
        response = client.delete(path, **request_kwargs)
    else:
        response = getattr(client, method)(path, **request_kwargs)
    seconds = time.perf_counter() - started
    body = response.json()
    assert response.status_code == status, body
    assert message in body["error"], body["error"]
    assert "Traceback" not in response.text and "unexpected" not in response.text and 'File "' not in response.text
    assert len(response.content) < 2_048, len(response.content)  # a short error, never an echo of the request
    assert seconds < 30, f"took {seconds:.0f} s"


def test_a_call_that_does_not_exist_is_not_blamed_on_a_later_layer(client):
    """tinyvgg at the explorer's 96 px stops at fc (a fixed-size classifier); conv1_1 ran once, so conv1_1:3 is
    simply not a layer (it is not 'not reached because fc fails')."""
    response = client.post("/api/lineage", json={"model": "tinyvgg", "layer": "conv1_1:3", "channel": 0})
    assert response.status_code == 400 and "fc" not in response.json()["error"].split(". Valid:")[0]
    from featuremaps.features import catalogue_for, select_layers
    from featuremaps.models import load_model

    model = load_model("tinyvgg")
    catalogue = catalogue_for(model, (3, 96, 96))
    assert catalogue.stopped_at is not None and catalogue.stopped_at[0] == "fc"
    with pytest.raises(Exception, match=r"layer 'conv1_1:3' not found in tinyvgg \(did you mean"):
        select_layers(catalogue, ["conv1_1:3"], model_name="tinyvgg")
    with pytest.raises(Exception, match="layer 'fc' is not reached: the forward pass of tinyvgg fails at fc"):
        select_layers(catalogue, ["fc"], model_name="tinyvgg")

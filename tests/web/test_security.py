"""What a hostile client can and cannot make the explorer do: no file read, bounded work, no echo, no rebinding."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from featuremaps.conv import ConvLayer
from featuremaps.errors import SettingsError
from featuremaps.images import sample_path
from featuremaps.web import ExplorerSettings, create_app


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ExplorerSettings()), base_url="http://localhost") as test_client:
        yield test_client


def test_filters_never_name_a_file_on_the_server(client, tmp_path, monkeypatch):
    secret = tmp_path / "secret.npy"
    np.save(secret, np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3))
    loads = []
    monkeypatch.setattr(np, "load", lambda *args, **kwargs: loads.append(args))
    answers = []
    for filters in (str(secret), str(tmp_path / "missing.npy"), "../secret.npy", "sobel,/etc/x.npy"):
        response = client.post("/api/conv", json={"image": "sample:cat", "filters": filters})
        assert response.status_code == 422 and response.json()["error"].startswith("filters: String should match")
        answers.append(response.json()["error"].rsplit("; got", 1)[0])
    assert loads == []  # nothing was opened
    assert len(set(answers)) == 1  # an existing and a missing file get the same answer: nothing to learn


def test_a_long_list_of_banks_is_refused_before_any_work(client):
    response = client.post("/api/conv", json={"image": "sample:cat", "filters": ",".join(["classic"] * 300)})
    assert response.status_code == 422 and "at most 200 characters" in response.json()["error"]
    started = time.perf_counter()
    response = client.post("/api/conv", json={"image": "sample:cat", "filters": ",".join(["classic"] * 25)})
    assert response.status_code == 400
    assert response.json()["error"] == ("filters 'classic,classic,classic,classic,classic,classic,classic,classic,"
                                        "classic,classic,classic,classic,classic,classic,classic,classic,classic,"
                                        "classic,classic,classic,classic,classic,classic,classic,classic' make 150 "
                                        "maps; the explorer shows at most 64")
    assert time.perf_counter() - started < 5


def test_work_over_the_budget_is_refused_before_computing(client, monkeypatch):
    calls = []
    original = ConvLayer.forward
    monkeypatch.setattr(ConvLayer, "forward", lambda self, x: calls.append(1) or original(self, x))
    response = client.post("/api/conv", json={"image": "sample:astronaut", "filters": "random", "depth": 64,
                                              "kernel_size": 15, "padding": "same"})
    assert response.status_code == 400
    assert "11,324,620,800 multiply-adds, over the limit of 8,000,000,000" in response.json()["error"]
    assert calls == []
    fine = client.post("/api/conv", json={"image": "sample:astronaut", "filters": "random", "depth": 64,
                                          "kernel_size": 7})
    assert fine.status_code == 200 and fine.json()["output_shape"] == [64, 506, 506] and calls == [1]


def test_cost_check_names_the_limit():
    cost = ConvLayer(3, "random", depth=8).cost((3, 100, 100))
    assert (cost.output_values, cost.multiply_adds) == (8 * 98 * 98, 8 * 98 * 98 * 27)
    with pytest.raises(SettingsError, match=r"76,832 map values \(0 MiB\), over the limit of 1,000"):
        cost.check(max_output_values=1000, max_multiply_adds=10**12)


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "127.0.0.1.nip.io", "[::2]:80", ""])
def test_other_host_names_are_refused(client, host):
    response = client.get("/api/health", headers={"host": host})
    assert response.status_code == 400 and "is not served here" in response.json()["error"]
    assert client.post("/api/conv", json={}, headers={"host": host}).status_code == 400


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:9", "[::1]:8000", "LOCALHOST"])
def test_loopback_names_are_served(client, host):
    assert client.get("/api/health", headers={"host": host}).status_code == 200


def test_allowed_hosts_can_be_widened():
    app = create_app(ExplorerSettings(allowed_hosts=("explorer.lab",)))
    with TestClient(app, base_url="http://explorer.lab") as other:
        assert other.get("/api/health").status_code == 200
        assert other.get("/api/health", headers={"host": "localhost"}).status_code == 400
    with TestClient(create_app(ExplorerSettings(allowed_hosts=("*",))), base_url="http://any.example") as anyhost:
        assert anyhost.get("/api/health").status_code == 200


def test_a_huge_field_is_refused_and_never_echoed(client):
    response = client.post("/api/conv", json={"image": "sample:cat", "filters": "x" * 19_000_000})
    assert response.status_code == 413 and len(response.content) < 300
    assert "request body too large" in response.json()["error"]
    response = client.post("/api/conv", json={"image": "sample:cat", "filters": "y" * 60_000})
    assert response.status_code == 422 and len(response.content) < 400 and "yyyy..." in response.json()["error"]


def test_an_internal_bug_is_a_500_with_a_short_message_and_a_logged_traceback(client, monkeypatch, caplog):
    def broken(request):
        raise KeyError("an internal bug")

    monkeypatch.setattr(client.app.state.explorer, "conv", broken)
    with caplog.at_level(logging.ERROR, logger="featuremaps.web"):
        response = client.post("/api/conv", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (KeyError); the server log has the details"}
    assert any(record.exc_info and "an internal bug" in str(record.exc_info[1]) for record in caplog.records)

    def wrong_value(request):
        raise ValueError("not a featuremaps error")

    monkeypatch.setattr(client.app.state.explorer, "conv", wrong_value)
    assert client.post("/api/conv", json={}).status_code == 500  # a plain ValueError is a bug, not bad input


@pytest.mark.parametrize("settings, message", [
    ({"concurrency": 0}, "concurrency must be an integer >= 1; got 0"),
    ({"concurrency": -1}, "concurrency must be an integer >= 1; got -1"),
    ({"queue": -1}, "queue must be an integer >= 0; got -1"),
    ({"max_upload_bytes": 0}, "max_upload_bytes must be an integer >= 1; got 0"),
    ({"allowed_hosts": ()}, "allowed_hosts must name at least one host"),
])
def test_server_settings_are_checked(settings, message):
    with pytest.raises(SettingsError, match=message):
        ExplorerSettings(**settings)


@pytest.mark.parametrize("host", ["[::1]evil.example", "127.0.0.1:80@evil.example", "localhost evil", "[::1",
                                  "127.0.0.1:80:80", "localhost:", "localhost:http"])
def test_host_headers_that_only_start_like_loopback_are_refused(client, host):
    response = client.get("/api/health", headers={"host": host})
    assert response.status_code == 400 and "is not served here" in response.json()["error"], response.text


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example",
                                    "http://localhost:9999", "https://localhost", "file://", "http://localhost@evil",
                                    "chrome-extension://abc"])
def test_posts_from_another_origin_are_refused_before_any_route(client, origin, monkeypatch):
    calls = []
    monkeypatch.setattr(client.app.state.explorer, "add_image", lambda data: calls.append(data))
    upload = client.post("/api/images", files={"file": ("cat.jpg", sample_path("cat").read_bytes(), "image/jpeg")},
                         headers={"Origin": origin})
    assert upload.status_code == 403, upload.text
    assert f"origin {origin!r} may not use this server: requests must come from its own pages" in \
        upload.json()["error"]
    assert client.post("/api/conv", json={}, headers={"Origin": origin}).status_code == 403
    assert calls == []  # the upload never reached the explorer


def test_own_pages_and_programs_without_an_origin_are_served(client):
    assert client.post("/api/conv", json={"filters": "sobel"}, headers={"Origin": "http://localhost"}).status_code \
        == 200
    assert client.post("/api/conv", json={"filters": "sobel"}).status_code == 200  # curl, scripts: no Origin
    served = client.post("/api/conv", json={"filters": "sobel"},
                         headers={"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000"})
    assert served.status_code == 200


def test_a_vit_is_visualised_at_the_only_size_it_takes(client):
    response = client.post("/api/visualize", json={"model": "vit_b_16", "layer": "conv_proj", "channel": 3,
                                                   "steps": 2})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == "conv_proj:3"
    width = int.from_bytes(__import__("base64").b64decode(response.json()["image"].split(",", 1)[1])[16:20], "big")
    assert width == 224  # the model's own input size (96 px would fail: "Expected 224 but got 96")
    too_much = client.post("/api/visualize", json={"model": "resnet18", "layer": "layer1", "size": 256,
                                                   "steps": 128})
    assert too_much.status_code == 400 and "more work than the explorer does at once" in too_much.json()["error"]

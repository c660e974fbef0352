"""The explorer's JSON API: routes, limits and safety."""

from __future__ import annotations

import asyncio
import io
import math

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from featuremaps.web import ExplorerSettings, create_app
from featuremaps.web.limits import Busy, LRUCache, WorkLimiter


def _png(size=(64, 48), colour=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ExplorerSettings(max_upload_bytes=200_000, max_pixels=4_000_000)),
                    base_url="http://localhost") as test_client:
        yield test_client


def test_health_and_openapi(client):
    assert client.get("/api/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/health", "/api/images", "/api/conv", "/api/maps", "/api/predict", "/api/segment"} <= set(paths)
    docs = client.get("/docs").text
    assert "/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/swagger/swagger-ui-bundle.js").status_code == 200


def test_upload_then_use_the_image(client):
    response = client.post("/api/images", files={"file": ("g.png", _png(), "image/png")})
    assert response.status_code == 200
    body = response.json()
    assert body["width"] == 64 and body["height"] == 48 and len(body["id"]) == 16
    picture = client.get(f"/api/images/{body['id']}.png")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    conv = client.post("/api/conv", json={"image": body["id"], "filters": "sobel", "stride": 2, "padding": 1}).json()
    assert conv["output_shape"] == [2, 24, 32] and len(conv["maps"]) == 2
    assert conv["maps"][0]["png"].startswith("data:image/png;base64,")


def test_conv_shape_follows_the_controls_and_errors_are_400(client):
    result = client.post("/api/conv", json={"image": "sample:cat", "filters": "random", "depth": 5, "kernel_size": 5,
                                            "stride": 3, "padding": "same"}).json()
    assert result["output_shape"] == [5, 100, 151]  # ceil(300 / 3), ceil(451 / 3)
    bad = client.post("/api/conv", json={"image": "sample:cat", "stride": 0})
    assert bad.status_code == 422 and "stride: Input should be greater than or equal to 1; got 0" in bad.json()["error"]
    bad = client.post("/api/conv", json={"image": "sample:cat", "padding": "abc"})
    assert bad.json()["error"] == "padding: must be an integer from 0 to 32, 'same' or 'valid'; got 'abc'"


def test_upload_cap_answers_413_before_reading_the_body(client):
    big = b"\0" * 300_000
    response = client.post("/api/images", files={"file": ("big.png", big, "image/png")})
    assert response.status_code == 413 and "upload too large" in response.json()["error"]

    def chunks():  # a valid multipart body without Content-Length: counted as it streams
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
        for _ in range(100):
            yield b"x" * 10_000
        yield b"\r\n--x--\r\n"

    chunked = client.post("/api/images", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert chunked.status_code == 413 and "upload too large" in chunked.json()["error"]


def test_bad_images_get_400_with_the_reason(client):
    response = client.post("/api/images", files={"file": ("notes.png", b"just text, no pixels", "image/png")})
    assert response.status_code == 400 and "not an image" in response.json()["error"]
    huge = io.BytesIO()
    Image.new("1", (3000, 3000)).save(huge, format="PNG")
    response = client.post("/api/images", files={"file": ("bomb.png", huge.getvalue(), "image/png")})
    assert response.status_code == 400 and "over the limit of 4,000,000" in response.json()["error"]


@pytest.mark.parametrize("model", ["../../etc/passwd", "/tmp/evil.pt", "timm:../../x", "resnet81"])
def test_client_paths_never_reach_the_file_system(client, model):
    response = client.get(f"/api/models/{model}/layers")
    assert response.status_code in (400, 404)
    response = client.post("/api/maps", json={"image": "sample:cat", "model": model, "layer": "layer1"})
    assert response.status_code == 400 and "unknown model" in response.json()["error"]


def test_image_ids_are_only_server_ids_or_samples(client):
    for image in ("../secret", "/etc/hosts", "sample:../../etc/hosts"):
        response = client.post("/api/conv", json={"image": image})
        assert response.status_code == 422 and response.json()["error"].startswith("image: String should match")


def test_layers_maps_and_overlay(client):
    layers = {row["name"]: row for row in client.get("/api/models/resnet18/layers").json()}
    assert layers["layer2"]["stride"] == [8, 8] and layers["layer2"]["receptive_field"] == [99, 99]
    maps = client.post("/api/maps", json={"image": "sample:cat", "model": "resnet18", "layer": "layer2",
                                          "max_maps": 16}).json()
    assert len(maps["maps"]) == 16 and maps["channels"] == 128 and maps["input_size"] == [224, 224]
    overlay = client.post("/api/overlay", json={"image": "sample:cat", "model": "resnet18", "layer": "layer2",
                                                "channel": maps["maps"][0]["channel"]}).json()
    assert overlay["png"].startswith("data:image/png") and overlay["map_size"] == [28, 28]


def test_visualize_route(client):
    response = client.post("/api/visualize", json={"model": "builtin:shapes", "layer": "relu2_2", "channel": 3,
                                                   "steps": 12, "size": 64})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["label"] == "relu2_2:3" and data["image"].startswith("data:image/png;base64,")
    assert data["value"] > data["start"] and data["weights"] == "trained weights (bundled with featuremaps)"
    assert data["patches"] == [] and data["microscope"] is None  # no --store
    too_much = client.post("/api/visualize", json={"model": "builtin:shapes", "layer": "relu2_2", "steps": 1000})
    assert too_much.status_code == 422 and "steps" in too_much.json()["error"]
    no_channel = client.post("/api/visualize", json={"model": "builtin:shapes", "layer": "relu2_2", "channel": 99,
                                                     "steps": 2})
    assert no_channel.status_code == 400 and "relu2_2 has 32 maps" in no_channel.json()["error"]


def test_visualize_route_with_a_store_shows_its_top_patches(tmp_path):
    from featuremaps.batch import ExtractConfig, run_extract

    from ..batch.conftest import write_photos

    write_photos(tmp_path / "photos", 6, size=(80, 60), seed=2)
    run_extract(tmp_path / "photos", tmp_path / "store", ExtractConfig(model="tinyvgg", layers=("relu2_2",),
                                                                       batch_size=6, workers=0, top_k=3))
    settings = ExplorerSettings(store=str(tmp_path / "store"))
    with TestClient(create_app(settings), base_url="http://localhost") as local:
        data = local.post("/api/visualize", json={"model": "tinyvgg", "layer": "relu2_2", "channel": 1,
                                                  "steps": 2, "size": 32}).json()
        assert len(data["patches"]) == 3 and all(p.startswith("data:image/png") for p in data["patches"])
        assert data["microscope"] == "/microscope/relu2_2/index.html#1"
        assert data["weights"] == "untrained (random) weights"
        assert local.get(data["microscope"].split("#")[0]).status_code == 200


def test_lineage_route(client):
    response = client.post("/api/lineage", json={"image": "sample:cat", "model": "builtin:shapes", "layer": "relu2_2",
                                                 "channel": 3, "levels": 2, "top": 3})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["exact"] and data["weights"] == "trained weights (bundled with featuremaps)"
    assert data["nodes"][0]["layer"] == "relu2_2" and data["nodes"][0]["share"] is None
    children = [n for n in data["nodes"] if n["parent"] == 0]
    assert len(children) == 3 and all(n["map"].startswith("data:image/png") for n in children)
    assert sum(abs(n["share"]) for n in children) <= 1.0
    too_deep = client.post("/api/lineage", json={"image": "sample:cat", "model": "builtin:shapes",
                                                 "layer": "relu2_2", "channel": 3, "levels": 9})
    assert too_deep.status_code == 422 and "levels" in too_deep.json()["error"]
    missing = client.post("/api/lineage", json={"image": "sample:cat", "model": "builtin:shapes", "layer": "nope",
                                                "channel": 0})
    assert missing.status_code == 400 and "relu2_2" in missing.json()["error"]


def test_prediction_and_segmentation(client):
    image = Image.new("RGB", (96, 96), "white")
    r = 34
    ImageDraw.Draw(image).polygon([(48 + (r if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
                                    48 + (r if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5))
                                   for k in range(10)], fill=(200, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    image_id = client.post("/api/images", files={"file": ("star.png", buffer.getvalue(), "image/png")}).json()["id"]
    prediction = client.post("/api/predict", json={"image": image_id, "model": "builtin:objects"}).json()
    assert prediction["predictions"][0]["label"] == "star" and prediction["classes"][3] == "star"
    assert prediction["familiar"] is True and prediction["weights"] == "trained weights (bundled with featuremaps)"
    photo = client.post("/api/predict", json={"image": "sample:astronaut", "model": "builtin:objects"}).json()
    assert photo["familiar"] is False and "unfamiliar" in photo["note"]
    coffee = client.post("/api/predict", json={"image": "sample:coffee"}).json()  # photos: builtin:imagenet
    assert coffee["model"] == "builtin:imagenet" and coffee["predictions"][0]["label"] == "espresso"
    assert coffee["weights"] == "trained on ImageNet-1k" and coffee["familiar"] is None
    segments = client.post("/api/segment", json={"image": image_id, "method": "clusters", "clusters": 2}).json()
    assert segments["png"].startswith("data:image/png") and len(segments["segments"]) == 2
    head = client.post("/api/segment", json={"image": image_id, "method": "head"}).json()
    assert "star" in {s["name"] for s in head["segments"]}


def test_work_limiter_refuses_beyond_the_queue():
    import threading

    started = threading.Event()

    async def scenario() -> None:
        limiter = WorkLimiter(concurrency=1, queue=0)
        gate = asyncio.Event()

        def work() -> None:
            started.set()
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result()

        first = asyncio.create_task(limiter.run(work))
        assert await asyncio.to_thread(started.wait, 30)  # the first job holds the only slot: an event, no sleep
        with pytest.raises(Busy):
            await limiter.run(lambda: None)
        gate.set()
        await first

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


def test_busy_server_answers_503_with_retry_after(monkeypatch):
    import threading

    app = create_app(ExplorerSettings(concurrency=1, queue=0))
    explorer = app.state.explorer
    real = explorer.scene
    entered, release = threading.Event(), threading.Event()

    def held(request):  # the first request holds the only slot until the others have been answered
        entered.set()
        assert release.wait(60)
        return real(request)

    monkeypatch.setattr(explorer, "scene", held)
    with TestClient(app, base_url="http://localhost") as test_client:
        results = []
        first = threading.Thread(target=lambda: results.append(test_client.post("/api/scene", json={})))
        first.start()
        assert entered.wait(60)
        results += [test_client.post("/api/scene", json={}) for _ in range(2)]  # no slot, no queue: 503 at once
        release.set()
        first.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 503, 503]
    busy = next(r for r in results if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]


def test_lru_cache_is_bounded():
    cache: LRUCache[int, int] = LRUCache(2)
    for k in range(5):
        cache.put(k, k)
    assert len(cache) == 2 and cache.get(0) is None and cache.get(4) == 4


@pytest.mark.parametrize("model, message", [("fasterrcnn_resnet50_fpn", "is not a classifier: it gives list"),
                                            ("builtin:shapes-seg", "it scores every pixel")])
def test_predict_with_a_model_that_is_no_classifier_is_a_400(client, model, message):
    response = client.post("/api/predict", json={"image": "sample:cat", "model": model})
    assert response.status_code == 400 and message in response.json()["error"]


def test_transposed_convolution_in_the_playground(client):
    result = client.post("/api/conv", json={"image": "sample:cat", "filters": "sobel", "stride": 2, "padding": 1,
                                            "transposed": True, "output_padding": 1}).json()
    assert result["output_shape"] == [2, 600, 902]  # (300 - 1) * 2 - 2 + 2 + 1 + 1
    assert result["formula"][0] == "H' = (300 - 1)*2 - 1 - 1 + 1*(3 - 1) + 1 + 1 = 600"
    scene = client.post("/api/scene", json={"height": 4, "width": 4, "stride": 2, "padding": 1, "transposed": True,
                                            "output_padding": 1}).json()
    assert scene["layer"]["transposed"] and scene["output"]["shape"] == [2, 8, 8]
    assert sum(map(sum, scene["padded"]["is_inserted"])) == 49 - 16
    cropped = client.post("/api/conv", json={"image": "sample:cat", "transposed": True, "padding": 5}).json()
    assert cropped["output_shape"][1] == (300 - 1) - 5 - 5 + 2 + 1  # padding above dilation*(k-1) = 2 crops (torch)

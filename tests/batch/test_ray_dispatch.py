"""The Ray engine's dispatcher on a private Ray (127.0.0.1 only): a lost actor's batches go to the others, each
batch comes back once, and an actor that cannot start stops the run with its own error."""

from __future__ import annotations

import numpy as np
import pytest

from featuremaps.errors import SettingsError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ray_on_loopback():
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from featuremaps.batch.ray_cluster import _private_ray

    with _private_ray(True):
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
        try:
            addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
            if addresses != {"127.0.0.1"}:  # never send work to a Ray reachable from elsewhere
                pytest.fail(f"the private Ray is not on the loopback interface: {addresses}")
            yield ray
        finally:
            ray.shutdown()


def _batches(count: int, size: int) -> list[np.ndarray]:
    order = np.arange(count * size, dtype=np.int64)
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_a_lost_actor_s_batches_go_to_the_others(ray_on_loopback):
    from featuremaps.batch.ray_engine import _Dispatcher

    ray = ray_on_loopback

    class Echo:  # defined here: Ray ships it by value
        def compute(self, batch):
            import time

            time.sleep(0.05)
            return {"index": batch["index"], "path": batch["path"]}

    echo = ray.remote(Echo).options(num_cpus=1, max_restarts=0, max_task_retries=0)
    actors = [echo.remote() for _ in range(2)]
    batches = _batches(24, 2)
    sources = [f"/photos/{i}.jpg" for i in range(48)]
    dispatcher = _Dispatcher(actors, [], batches, sources, ahead=2)
    seen: list[int] = []
    for number, result in enumerate(dispatcher.results()):
        assert [sources[i] for i in result["index"]] == list(result["path"])
        seen += [int(i) for i in result["index"]]
        if number == 3:
            ray.kill(actors[0])  # as when its node dies: its queued batches fail with ActorDiedError
    assert sorted(seen) == list(range(48)), "a batch was lost or came back twice"
    assert list(dispatcher.actors.values()) == [actors[1]]


def test_an_actor_that_cannot_start_stops_the_run_with_its_error(ray_on_loopback):
    from featuremaps.batch.ray_engine import _Dispatcher

    ray = ray_on_loopback

    class Broken:
        def __init__(self):
            raise FileNotFoundError("weights file /models/mine.safetensors not found on this node")

        def compute(self, batch):
            return batch

    broken = ray.remote(Broken).options(num_cpus=1, max_restarts=0, max_task_retries=0)
    dispatcher = _Dispatcher([broken.remote()], [], _batches(3, 2), [f"/p/{i}.jpg" for i in range(6)], ahead=2)
    with pytest.raises(SettingsError, match=r"a Ray actor could not start: .*mine\.safetensors not found"):
        list(dispatcher.results())


def test_losing_every_actor_is_an_error(ray_on_loopback):
    from featuremaps.batch.ray_engine import _Dispatcher

    ray = ray_on_loopback

    class Slow:
        def compute(self, batch):
            import time

            time.sleep(0.2)
            return {"index": batch["index"]}

    actor = ray.remote(Slow).options(num_cpus=1, max_restarts=0, max_task_retries=0).remote()
    dispatcher = _Dispatcher([actor], [], _batches(10, 1), [f"/p/{i}.jpg" for i in range(10)], ahead=2)
    results = dispatcher.results()
    next(results)
    ray.kill(actor)
    with pytest.raises(RuntimeError, match="every forward actor of the run was lost"):
        list(results)


def test_cuda_is_checked_against_the_cluster_s_gpus(ray_on_loopback):
    """On Ray the cluster's GPUs count, not the driver's: a driver without a GPU may drive GPU nodes, and
    --device cuda on a cluster without one is one clear error before any work."""
    from featuremaps.batch import ExtractConfig
    from featuremaps.batch.ray_cluster import RayCluster

    config = ExtractConfig(model="resnet18", layers=("layer2",), engine="ray", device="cuda")  # no GPU here: fine
    with pytest.raises(SettingsError, match=r"--device cuda: the Ray cluster has no GPU \(2 CPUs\); use --device cpu"):
        with RayCluster(config):
            pass
    assert ray_on_loopback.is_initialized()  # a Ray that the run did not start is left running


_START_ORDER = """
import json, sys
from pathlib import Path

from PIL import Image

from featuremaps.batch import ExtractConfig, run_extract
from featuremaps.batch.ray_cluster import RayCluster

folder = Path(sys.argv[1]) / "photos"
folder.mkdir()
for number in range(5):
    Image.new("RGB", (40, 30), (50 * number, 90, 160)).save(folder / f"{number}.jpg")
seen = {}
start = RayCluster._start_actors


def recorded(self, ray):
    seen["torch when the actors started"] = "torch" in sys.modules
    start(self, ray)
    seen["actors"] = len(self.actors)


RayCluster._start_actors = recorded
config = ExtractConfig(model="builtin:tinyvgg", layers=("conv1_1",), engine="ray", batch_size=2)
summary = run_extract(folder, Path(sys.argv[1]) / "store", config)
print(json.dumps({**seen, "readable": summary.readable, "nodes": summary.nodes}))
"""


def test_the_actors_start_before_the_driver_imports_torch(tmp_path):
    """The driver joins Ray and starts the actors first: they import torch and build the model on their nodes
    while the driver imports torch and checks the model (the Ray engine's start-up, overlapped)."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("ray", reason="the ray extra is not installed")
    done = subprocess.run([sys.executable, "-c", _START_ORDER, str(tmp_path)], capture_output=True, text=True,
                          timeout=240, check=False, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["torch when the actors started"] is False
    assert result["actors"] == os.cpu_count() and result["readable"] == 5
    assert sum(node["rows"] for node in result["nodes"]) == 5
    # a private Ray starts quietly: Ray's own notes on starting it and on its token are not shown
    assert "Started a local Ray instance" not in done.stderr and "Token authentication" not in done.stderr

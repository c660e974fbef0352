"""The Ray engine on a real three-node cluster (head + 2 workers, 1 CPU each, all on 127.0.0.1): the work is
spread over every node, a lost worker node changes nothing in the store, a lost head ends the run within 30 s
with featuremaps' own error and a ``failed`` manifest, and ``--resume`` on a new cluster finishes it exactly.
Every cluster is checked to be on the loopback interface before any work is sent to it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from featuremaps.batch import ExtractConfig, Store, run_extract

from .conftest import write_photos
from .ray_loopback import LoopbackCluster

pytestmark = pytest.mark.timeout(900)

SETTINGS = {"model": "builtin:shapes", "layers": ("pool1", "pool2"), "batch_size": 2, "shard_size": 8, "top_k": 2}
IMAGES = 96


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    folder = root / "photos"
    write_photos(folder, IMAGES, size=(96, 72), seed=11)
    (folder / "zz_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    run_extract(folder, root / "local", ExtractConfig(**SETTINGS, workers=0))
    return folder, Store(root / "local"), root


def _cluster(root: Path) -> LoopbackCluster:
    cluster = LoopbackCluster(root, nodes=3, cpus=1)
    try:
        cluster.start()
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        cluster.stop()
        pytest.skip(f"Ray cannot start a loopback cluster on this machine: {error}")
    problems = cluster.check_loopback()
    if problems:  # never send work to a cluster reachable from elsewhere
        cluster.stop()
        pytest.fail("the test cluster is not on the loopback interface only: " + "; ".join(problems))
    return cluster


def _extract(cluster: LoopbackCluster, folder: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("featuremaps")), "extract", str(folder), "--out", str(out),
               "--model", SETTINGS["model"], "--layers", ",".join(SETTINGS["layers"]),
               "--batch-size", str(SETTINGS["batch_size"]), "--shard-size", str(SETTINGS["shard_size"]),
               "--top-k", str(SETTINGS["top_k"]), "--engine", "ray", "--ray-address", cluster.address, "--json",
               *extra]
    return subprocess.Popen(command, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_shards(out: Path, process: subprocess.Popen, count: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(list((out / "parts").glob("shard-*.done"))) if (out / "parts").is_dir() else 0
        if done >= count:
            return done
        assert process.poll() is None, f"the run ended before {count} shards: {process.communicate()}"
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} shards after {timeout} s")


def _assert_same_store(local: Store, other: Store) -> None:
    assert local.sources() == other.sources()
    for layer in SETTINGS["layers"]:
        a, b = local.features(layer), other.features(layer)
        assert a.column("index").to_pylist() == b.column("index").to_pylist()
        np.testing.assert_allclose(np.stack(a.column("vector").to_numpy(zero_copy_only=False)),
                                   np.stack(b.column("vector").to_numpy(zero_copy_only=False)), rtol=1e-5, atol=1e-6)
    assert local.table("errors").equals(other.table("errors"))
    a, b = local.table("topk"), other.table("topk")
    for column in ("layer", "channel", "rank", "index", "path", "y", "x"):
        assert a.column(column).to_pylist() == b.column(column).to_pylist(), column
    np.testing.assert_allclose(a.column("value").to_numpy(), b.column("value").to_numpy(), rtol=1e-5, atol=1e-6)
    a, b = local.table("stats").to_pylist(), other.table("stats").to_pylist()
    assert [(r["layer"], r["channel"]) for r in a] == [(r["layer"], r["channel"]) for r in b]
    np.testing.assert_allclose([r["mean"] for r in a], [r["mean"] for r in b], rtol=1e-5, atol=1e-6)


def test_lost_nodes_on_a_three_node_cluster(require, data, tmp_path):
    """One cluster loses a worker node mid-run (the run finishes; the store equals the local engine's), gets a
    new worker, then loses its head mid-run (featuremaps exits within 30 s with its own error, status 1, the
    manifest failed); ``--resume`` on a second cluster finishes that store over all three nodes."""
    require("ray")
    folder, local, _ = data
    total = -(-(IMAGES + 1) // SETTINGS["shard_size"])
    first = _cluster(tmp_path / "first")
    try:
        # 1. a worker node lost mid-run
        out = tmp_path / "worker-lost"
        run = _extract(first, folder, out)
        assert _wait_for_shards(out, run, 1) < total, "the run finished before a node could be lost"
        first.kill(2)
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-3000:]
        summary = json.loads(stdout)  # Ray's lines about the lost node went to stderr, not into the JSON
        assert summary["readable"] == IMAGES and summary["errors"] == 1
        assert sum(node["rows"] for node in summary["nodes"]) >= IMAGES + 1
        assert all(node["address"] == "127.0.0.1" for node in summary["nodes"])
        assert summary["seconds_by_stage"]["waiting for results"] > 0
        _assert_same_store(local, Store(out))
        assert first.processes(2) == [], "processes of the lost node were left behind"

        # 2. the head lost mid-run (a new worker first, so that three nodes work again)
        first.add_node()
        first.wait_for_nodes(3)
        assert not first.check_loopback()
        out = tmp_path / "head-lost"
        run = _extract(first, folder, out)
        _wait_for_shards(out, run, 1)
        lost = time.monotonic()
        first.kill(0)
        stdout, stderr = run.communicate(timeout=120)
        seconds = time.monotonic() - lost
    finally:
        first.stop()
    assert run.returncode == 1 and seconds < 30, (run.returncode, seconds, stderr[-3000:])
    assert stdout == ""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("featuremaps: error: the Ray cluster was lost (its head at 127.0.0.1:")
    assert "run the same command with --resume to continue" in last
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "the Ray cluster was lost" in manifest["summary"]["error"]
    assert manifest["summary"]["done"].endswith(f"of {total} shards")

    # 3. --resume on a new cluster
    second = _cluster(tmp_path / "second")
    try:
        stdout, stderr = _extract(second, folder, out, "--resume").communicate(timeout=600)
    finally:
        second.stop()
    summary = json.loads(stdout)
    assert summary["shards_skipped"] >= 1, summary
    computed = {node["node"]: node["rows"] for node in summary["nodes"]}
    # while the head was silent no new batch was sent out, so work was left for the new cluster
    assert sum(computed.values()) >= 3 * SETTINGS["batch_size"], summary["nodes"]
    assert len(computed) == 3 and all(rows > 0 for rows in computed.values()), summary["nodes"]
    assert sum(node["rows_read"] for node in summary["nodes"]) == sum(computed.values())  # each actor read its own
    _assert_same_store(local, Store(out))
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_an_address_where_no_cluster_answers_is_refused_at_once(tmp_path):
    """Ray retries a port where no Ray head answers for minutes without a word (measured: over 10 minutes with
    nothing there, over 2 with a web server there): featuremaps asks the port once first, and says so in one line."""
    import socket
    import threading

    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from featuremaps.batch.ray_cluster import RayCluster, unanswered
    from featuremaps.errors import SettingsError

    def loopback_server() -> socket.socket:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        return server

    with loopback_server() as silent:  # accepts, says nothing
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        assert unanswered(address, timeout=2.0) is None
        assert unanswered(address, timeout=1.0, grpc=True) == "no answer within 1 s"
    with loopback_server() as web:  # answers, but not in gRPC

        def page() -> None:
            connection, _ = web.accept()
            with connection:
                connection.sendall(b"<!DOCTYPE html><html></html>")

        answering = threading.Thread(target=page)
        answering.start()
        reason = unanswered(f"127.0.0.1:{web.getsockname()[1]}", timeout=2.0, grpc=True)
        answering.join()
    assert reason == "a server answers there, but it is not a Ray head (it does not speak gRPC)"
    assert unanswered(address, timeout=2.0) == "Connection refused"  # closed now: nothing there
    assert unanswered("auto", timeout=2.0) is None  # Ray finds that cluster itself
    config = ExtractConfig(**SETTINGS, engine="ray", ray_address=address)
    assert not ray.is_initialized()
    with pytest.raises(SettingsError, match=rf"^--ray-address {address}: no Ray cluster answers there "
                                            r"\(Connection refused\); start one with 'ray start --head'"):
        with RayCluster(config):
            pass
    assert not ray.is_initialized()

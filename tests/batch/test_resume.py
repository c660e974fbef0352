"""A real run killed with SIGKILL mid-way and resumed gives exactly the uninterrupted store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from featuremaps.batch import Store

from .conftest import write_photos

FEATUREMAPS = Path(sys.executable).parent / "featuremaps"
ARGS = ["--model", "resnet18", "--layers", "layer2,layer4", "--batch-size", "4", "--shard-size", "8", "--top-k", "3",
        "--workers", "1"]


def _contents(store: Store) -> dict[str, object]:
    result: dict[str, object] = {}
    for layer in ("layer2", "layer4"):
        table = store.features(layer)
        result[f"{layer}.index"] = table.column("index").to_pylist()
        result[f"{layer}.vector"] = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
        result[f"{layer}.sha"] = table.column("sha256").to_pylist()
    result["stats"] = store.table("stats")
    result["topk"] = store.table("topk")
    result["errors"] = store.table("errors").column("path").to_pylist()
    return result


@pytest.mark.timeout(600)
def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 64, size=(160, 120), seed=3)
    (folder / "photo_0031.jpg").write_bytes(b"broken in the middle of the run")
    reference = subprocess.run([str(FEATUREMAPS), "extract", str(folder), "--out", str(tmp_path / "reference"),
                                *ARGS], capture_output=True, text=True, check=False)
    assert reference.returncode == 0, reference.stderr
    process = subprocess.Popen([str(FEATUREMAPS), "extract", str(folder), "--out", str(tmp_path / "killed"), *ARGS],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = tmp_path / "killed" / "parts"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(done.glob("shard-*.done"))) < 2 and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list(done.glob("shard-*.done")))
    assert 2 <= finished < 8, f"the run was not killed mid-way ({finished} of 8 shards done)"
    assert not (tmp_path / "killed" / "stats.parquet").exists()
    resumed = subprocess.run([str(FEATUREMAPS), "extract", str(folder), "--out", str(tmp_path / "killed"), *ARGS,
                              "--resume", "--json"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f'"shards_skipped": {finished}' in resumed.stdout
    expected, got = _contents(Store(tmp_path / "reference")), _contents(Store(tmp_path / "killed"))
    for layer in ("layer2", "layer4"):
        assert got[f"{layer}.index"] == expected[f"{layer}.index"] == sorted(set(expected[f"{layer}.index"]))
        assert len(got[f"{layer}.index"]) == 63 and 31 not in got[f"{layer}.index"]  # 64 files, one broken
        assert got[f"{layer}.sha"] == expected[f"{layer}.sha"]
        np.testing.assert_array_equal(got[f"{layer}.vector"], expected[f"{layer}.vector"])
    assert got["stats"].equals(expected["stats"]) and got["topk"].equals(expected["topk"])
    assert got["errors"] == expected["errors"] == [str(folder / "photo_0031.jpg")]
    leftovers = [p.relative_to(tmp_path) for p in (tmp_path / "killed").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []  # a temporary file of the killed run does not survive the resume

"""A store never trusts what it cannot check: damaged shards are redone, paths work from anywhere, Ctrl-C is recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.batch.microscope import build_microscope
from featuremaps.errors import ImageError

from .conftest import write_photos

CONFIG = ExtractConfig(model="tinyvgg", layers=("relu1_1", "pool2"), batch_size=4, workers=0, shard_size=4, top_k=2)
FEATUREMAPS = Path(sys.executable).parent / "featuremaps"


def _vectors(store: Store) -> dict[str, np.ndarray]:
    return {layer: np.stack(store.features(layer).column("vector").to_numpy(zero_copy_only=False))
            for layer in CONFIG.layers}


@pytest.fixture
def store(tmp_path):
    write_photos(tmp_path / "photos", 12, size=(80, 60), seed=5)
    run_extract(tmp_path / "photos", tmp_path / "store", CONFIG)
    return Store(tmp_path / "store")


def test_done_markers_hold_a_checksum_of_every_shard_file(store):
    marker = json.loads(store.done_path(1).read_text())
    assert marker["rows"] == 8  # 4 images x 2 layers
    assert set(marker["sha256"]) == {"parts/shard-00001.stats.npz", "parts/shard-00001.topk.parquet",
                                     "parts/shard-00001.errors.parquet", "features/relu1_1/shard-00001.parquet",
                                     "features/pool2/shard-00001.parquet"}
    assert store.verify_shard(1, CONFIG.layers) is None


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete", "old marker"])
def test_resume_redoes_a_damaged_shard_and_the_store_is_whole_again(store, tmp_path, damage):
    reference = _vectors(store)
    target = store.features_path(1, "pool2")
    if damage == "flip a byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete":
        target.unlink()
    else:
        store.done_path(1).write_text("8")  # the marker format of featuremaps 0.1: no checksums
    summary = run_extract(tmp_path / "photos", store.root, CONFIG, resume=True)
    assert [row["shard"] for row in summary.shards_redone] == [1]
    assert summary.shards_skipped == 2
    reason = summary.shards_redone[0]["reason"]
    expected = {"flip a byte": "does not match its checksum", "truncate": "does not match its checksum",
                "delete": "is missing", "old marker": "holds no checksums"}[damage]
    assert expected in reason
    got = _vectors(store)
    for layer in CONFIG.layers:
        np.testing.assert_array_equal(got[layer], reference[layer])
    assert store.manifest().status == "complete"


def test_sources_are_stored_absolute_and_the_microscope_works_from_another_directory(tmp_path, monkeypatch):
    write_photos(tmp_path / "data" / "photos", 6, size=(80, 60), seed=2)
    monkeypatch.chdir(tmp_path / "data")
    run_extract("photos", tmp_path / "store", CONFIG)
    paths = pq.read_table(tmp_path / "store" / "sources.parquet").column("path").to_pylist()
    assert all(os.path.isabs(p) for p in paths) and paths[0] == str(tmp_path / "data" / "photos" / "photo_0000.jpg")
    assert all(os.path.isabs(p) for p in Store(tmp_path / "store").features("pool2").column("path").to_pylist())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    site = build_microscope(tmp_path / "store", tmp_path / "site")
    assert "unreadable\":0" in (site.parent / "pool2" / "index.html").read_text()
    summary = run_extract(str(tmp_path / "data" / "photos"), tmp_path / "store", CONFIG, resume=True)
    assert summary.shards_skipped == 2  # the same images, named from another directory


def test_the_microscope_refuses_a_store_whose_images_are_all_gone(store, tmp_path):
    for photo in (tmp_path / "photos").iterdir():
        photo.unlink()
    with pytest.raises(ImageError, match=r"none of the \d+ top images could be read.*file not found.*moved or deleted"):
        build_microscope(store.root, tmp_path / "site")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_exits_130_says_interrupted_and_the_store_resumes(tmp_path):
    write_photos(tmp_path / "photos", 400, size=(160, 120), seed=4)
    args = ["extract", str(tmp_path / "photos"), "--model", "resnet18", "--layers", "layer1", "--out",
            str(tmp_path / "store"), "--shard-size", "8", "--batch-size", "4", "--workers", "0"]
    # A shell starts background jobs with SIGINT ignored, and a child inherits that: give it Ctrl-C back, so
    # the test means the same however pytest was started.
    process = subprocess.Popen([str(FEATUREMAPS), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    parts = tmp_path / "store" / "parts"
    deadline = time.time() + 200
    while time.time() < deadline and len(list(parts.glob("shard-*.done"))) < 2 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert err.strip().endswith("featuremaps: error: interrupted"), err[-2000:]
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "--resume" in manifest["summary"]["resume"]
    resumed = subprocess.run([str(FEATUREMAPS), *args, "--resume", "--json"], capture_output=True, text=True,
                             timeout=250)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["shards_skipped"] >= 2
    assert json.loads((tmp_path / "store" / "manifest.json").read_text())["status"] == "complete"


def test_a_failed_run_says_so_in_the_manifest(tmp_path, monkeypatch):
    write_photos(tmp_path / "photos", 8, size=(80, 60))
    import featuremaps.batch.pipeline as pipeline

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline.Store, "write_shard", broken)
    with pytest.raises(OSError):
        run_extract(tmp_path / "photos", tmp_path / "store", CONFIG)
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["summary"]["error"]


def test_link_loops_and_broken_links_are_listed_as_errors_not_dropped(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 2, size=(80, 60), seed=1)
    (folder / "a.jpg").symlink_to(folder / "b.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")
    (folder / "gone.jpg").symlink_to(folder / "nothing.jpg")
    summary = run_extract(folder, tmp_path / "store", CONFIG)
    assert summary.images == 5 and summary.readable == 2 and summary.errors == 3
    reasons = {Path(r["path"]).name: r["reason"] for r in Store(tmp_path / "store").table("errors").to_pylist()}
    assert "symbolic links" in reasons["a.jpg"] and "symbolic links" in reasons["b.jpg"]
    assert reasons["gone.jpg"] == "file not found"


def test_a_full_disk_names_the_file_and_the_store_says_failed(tmp_path, monkeypatch, capsys):
    import errno

    import pyarrow.parquet as pq

    from featuremaps.cli import main

    write_photos(tmp_path / "photos", 4, size=(80, 60), seed=1)

    real = pq.write_table

    def full(table, where, *args, **kwargs):
        if "sources.parquet" in str(where):
            return real(table, where, *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")  # the disk fills up later; pyarrow names no path

    monkeypatch.setattr(pq, "write_table", full)
    status = main(["extract", str(tmp_path / "photos"), "--model", "tinyvgg", "--layers", "pool2", "--out",
                   str(tmp_path / "store"), "--workers", "0"])
    err = capsys.readouterr().err
    assert status == 1 and "No space left on device" in err and str(tmp_path / "store") in err, err
    assert "unexpected" not in err
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


def test_a_device_and_a_fifo_in_a_list_are_recorded_errors_and_the_run_completes(tmp_path):
    photos = write_photos(tmp_path / "photos", 2, size=(80, 60), seed=2)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([str(photos[0]), "/dev/zero", str(fifo), str(photos[1])]))
    summary = run_extract(listing, tmp_path / "store", CONFIG)  # returns: the FIFO is never waited on
    assert (summary.images, summary.readable, summary.errors) == (4, 2, 2)
    reasons = {r["path"]: r["reason"] for r in Store(tmp_path / "store").table("errors").to_pylist()}
    assert reasons == {"/dev/zero": "is a device, not a regular file; featuremaps reads only regular files",
                       str(fifo): "is a FIFO (named pipe), not a regular file; featuremaps reads only regular files"}
    assert Store(tmp_path / "store").manifest().status == "complete"

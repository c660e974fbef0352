"""Every command that writes follows one rule: a file featuremaps did not write (or a link, or a file changed
since) is never replaced without --overwrite, which is checked before any work; featuremaps' own outputs are
replaced; every file is written atomically and a full disk names the file and leaves no half of one."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featuremaps.batch import ExtractConfig, run_extract
from featuremaps.cli import main
from featuremaps.files import LEDGER
from featuremaps.images import sample_path

FEATUREMAPS = Path(sys.executable).parent / "featuremaps"
USER = "the user's own file"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    photos = root / "photos"
    photos.mkdir()
    for name in ("cat", "coffee", "rocket"):
        shutil.copy(sample_path(name), photos / f"{name}.jpg")
    run_extract(photos, root / "store", ExtractConfig(model="tinyvgg", layers=("conv1_1",), workers=0, top_k=2))
    return root / "store"


# (arguments, the user's files the command would replace, relative to the case's folder)
REFUSED = [
    (["conv", "sample:cat", "-o", "{d}/maps.png"], ["maps.png"]),
    (["conv", "sample:cat", "--save", "{d}/maps.npy"], ["maps.npy"]),
    (["animate", "--input-size", "5x5", "-o", "{d}/a.gif"], ["a.gif"]),
    (["receptive-field", "3,3", "-o", "{d}/rf.png"], ["rf.png"]),
    (["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0", "--steps", "2", "-o",
      "{d}/v.png"], ["v.png"]),
    (["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0", "--steps", "2", "-o",
      "{d}/v.png", "--save", "{d}/v.npy"], ["v.npy"]),
    (["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv2_2:1", "-o", "{d}/l.png"], ["l.png"]),
    (["hierarchy", "tinyvgg", "-o", "{d}/h.png"], ["h.png"]),
    (["show", "sample:cat", "--model", "tinyvgg", "-o", "{d}/show"], ["show/index.html"]),
    (["microscope", "{store}", "-o", "{d}/site"], ["site/index.html"]),
    (["segment", "sample:cat", "--model", "tinyvgg", "-o", "{d}/seg"], ["seg/cat_overlay.png"]),
    (["predict", "sample:cat", "--cam", "{d}/cams"], ["cams/cat_cam.png"]),
    (["evaluate", "builtin:shapes", "--dataset", "shapes", "--samples", "8", "-o", "{d}/c.png"], ["c.png"]),
    (["demo", "-o", "{d}/demo"], ["demo/index.html"]),
]


@pytest.mark.parametrize("args, mine", REFUSED, ids=[" ".join(c[0][:2]) for c in REFUSED])
def test_a_users_file_stops_the_command_before_any_work(store, tmp_path, capsys, args, mine):
    for name in mine:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(USER)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    started = time.perf_counter()
    status = main([a.format(d=tmp_path, store=store) for a in args])
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert status == 2, err
    for name in mine:
        assert f"would replace: {tmp_path / name} exists and featuremaps did not write it" in err, err
        assert (tmp_path / name).read_text() == USER
    assert "pass --overwrite" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before, "something was written"
    assert seconds < 20, f"the check came after {seconds:.0f} s of work"


def test_own_outputs_are_replaced_and_overwrite_replaces_a_users_file(tmp_path, capsys):
    picture = tmp_path / "maps.png"
    assert main(["conv", "sample:cat", "-o", str(picture)]) == 0
    first = picture.read_bytes()
    assert main(["conv", "sample:cat", "--filters", "sobel", "-o", str(picture)]) == 0  # its own file: replaced
    assert picture.read_bytes() != first
    assert json.loads((tmp_path / LEDGER).read_text())["files"].keys() == {"maps.png"}
    user = tmp_path / "user.png"
    user.write_text(USER)
    assert main(["conv", "sample:cat", "-o", str(user)]) == 2
    assert main(["conv", "sample:cat", "-o", str(user), "--overwrite"]) == 0
    assert user.read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()


def test_a_linked_output_is_refused_and_overwrite_replaces_the_link_not_its_target(tmp_path, capsys):
    target = tmp_path / "precious.png"
    target.write_text(USER)
    link = tmp_path / "v.png"
    link.symlink_to(target)
    assert main(["conv", "sample:cat", "-o", str(link)]) == 2
    assert "is a link (to" in capsys.readouterr().err
    assert main(["conv", "sample:cat", "-o", str(link), "--overwrite"]) == 0
    assert target.read_text() == USER and not link.is_symlink()


def test_show_into_a_folder_with_a_users_page(tmp_path, capsys):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text(USER)
    assert main(["show", "sample:cat", "--model", "tinyvgg", "-o", str(folder)]) == 2
    assert (folder / "index.html").read_text() == USER
    assert main(["show", "sample:cat", "--model", "tinyvgg", "-o", str(folder), "--overwrite"]) == 0
    assert "<html" in (folder / "index.html").read_text()
    assert main(["show", "sample:cat", "--model", "tinyvgg", "-o", str(folder)]) == 0  # its own page now
    capsys.readouterr()


def test_save_keeps_the_name_it_is_given(tmp_path, capsys):
    assert main(["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0", "--steps", "2",
                 "-o", str(tmp_path / "v.png"), "--save", str(tmp_path / "x.txt")]) == 2
    assert "--save must end in .npy; got" in capsys.readouterr().err
    assert not (tmp_path / "x.txt.npy").exists() and not (tmp_path / "v.png").exists()


def _capped(limit: int):
    def cap() -> None:  # a disk that fills up: writes past `limit` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return cap


FULL_DISK = [
    (["show", "sample:cat", "--model", "tinyvgg", "-o", "{d}/out"], 20_000, "out/conv1_1.png"),
    (["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0-1", "--steps", "2", "--size", "64",
      "-o", "{d}/out/v.png"], 2_000, "out/v.png"),
    (["animate", "--input-size", "5x5", "-o", "{d}/out/a.gif"], 2_000, "out/a.gif"),
    (["microscope", "{store}", "-o", "{d}/out"], 3_000, "out/conv1_1/patches-0.jpg"),
    (["extract", "{photos}", "--model", "tinyvgg", "--layers", "conv1_1", "--pool", "none", "-o", "{d}/out"],
     30_000, "out/maps/conv1_1.zarr"),
    (["train", "--dataset", "shapes", "--model", "tinyvgg", "--epochs", "1", "--samples", "16", "-o", "{d}/out"],
     10_000, "out/model.safetensors"),
]


@pytest.mark.parametrize("args, limit, named", FULL_DISK, ids=[c[0][0] for c in FULL_DISK])
def test_a_full_disk_names_the_file_and_leaves_no_half_file(store, tmp_path, args, limit, named):
    photos = store.parent / "photos"
    argv = [a.format(d=tmp_path, store=store, photos=photos) for a in args]
    result = subprocess.run([str(FEATUREMAPS), *argv], capture_output=True, text=True, preexec_fn=_capped(limit),
                            timeout=300)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1, result.stderr
    assert last == f"featuremaps: error: File too large (writing{' image 0' if 'zarr' in named else ''}): " \
                   f"{tmp_path / named}", result.stderr
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr
    left = [p for p in tmp_path.rglob("*") if p.is_file() and "zarr" not in str(p) and p.name != LEDGER
            and p.parent.name not in ("parts", "features")]
    for path in left:  # whatever is there is whole: nothing half-written, no temporary file
        assert ".tmp" not in path.name, path
        assert path.stat().st_size > 0, path
        if path.suffix in (".png", ".gif", ".jpg"):
            from PIL import Image

            with Image.open(path) as image:
                image.load()
    if argv[0] == "extract":
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["status"] == "failed" and "File too large" in manifest["summary"]["error"]


def test_sigterm_marks_an_extraction_interrupted(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(400):
        shutil.copy(sample_path("cat"), photos / f"{index:03d}.jpg")
    process = subprocess.Popen([str(FEATUREMAPS), "extract", str(photos), "--model", "resnet18", "--layers",
                                "layer4", "--batch-size", "4", "--shard-size", "8", "-o", str(tmp_path / "store")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = tmp_path / "store" / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "store" / "parts").glob("shard-*.done")):
        time.sleep(0.2)
    assert process.poll() is None, "the extraction ended before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "featuremaps: error: terminated (SIGTERM)", err
    data = json.loads(manifest.read_text())
    assert data["status"] == "interrupted" and "--resume" in data["summary"]["resume"]
    assert not [p for p in (tmp_path / "store").rglob("*") if ".tmp" in p.name]


def test_serve_removes_its_microscope_folder_and_exits_130_on_ctrl_c(store, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process = subprocess.Popen([str(FEATUREMAPS), "serve", "--port", str(port), "--store", str(store)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("featuremaps-microscope-*/index.html")):
        time.sleep(0.2)
    assert list(tmp_path.glob("featuremaps-microscope-*")), "serve built no microscope site"
    import urllib.request

    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as answer:
                assert answer.status == 200
                break
        except OSError:
            time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert not list(tmp_path.glob("featuremaps-microscope-*")), "the temporary site was left behind"


def test_a_reused_output_folder_names_the_pictures_of_an_earlier_run(run_cli, tmp_path):
    """Issue 22, item 10: old pictures next to new ones are said, never silently mixed."""
    first = run_cli("show", "sample:cat", "--model", "builtin:shapes", "-o", str(tmp_path / "out"))
    assert first.returncode == 0, first.stderr
    assert "earlier run" not in first.stderr
    again = run_cli("show", "sample:cat", "--model", "builtin:shapes", "-o", str(tmp_path / "out"))
    assert again.returncode == 0 and "earlier run" not in again.stderr  # the same files, all rewritten
    other = run_cli("show", "sample:cat", "--model", "builtin:objects", "-o", str(tmp_path / "out"))
    assert other.returncode == 0, other.stderr
    assert "also holds" in other.stderr and "files of an earlier run, not written now (conv1_1.png" in other.stderr

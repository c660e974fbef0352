"""Hostile command lines: each gets one line naming the problem, the right exit status, no traceback, no
"unexpected", nothing written, and it ends quickly (in-process through ``featuremaps.cli.main``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from featuremaps.batch import ExtractConfig, run_extract
from featuremaps.cli import main
from featuremaps.images import sample_path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    binary = root / "list.txt"
    binary.write_bytes(b"\x00\x01\x02 binary")
    latin = root / "latin.csv"
    latin.write_bytes(b"path\n\xe9t\xe9.png\n")
    parquet = root / "bad.parquet"
    parquet.write_text("not parquet")
    single = root / "single"
    for name in ("cat", "coffee"):
        (single / name).mkdir(parents=True)
        shutil.copy(sample_path(name), single / name / f"{name}.jpg")
    photos = root / "photos"
    photos.mkdir()
    for name in ("cat", "coffee", "rocket"):
        shutil.copy(sample_path(name), photos / f"{name}.jpg")
    run_extract(photos, root / "store", ExtractConfig(model="tinyvgg", layers=("relu2_2",), workers=0, top_k=2))
    damaged = root / "damaged"
    shutil.copytree(root / "store", damaged)
    (damaged / "manifest.json").write_text("{bad")
    listless = root / "listless"
    shutil.copytree(root / "store", listless)
    (listless / "sources.parquet").unlink()
    return {"binary": binary, "latin": latin, "parquet": parquet, "single": single, "photos": photos,
            "damaged": damaged, "listless": listless, "out": root / "out"}


CASES = [
    # (arguments, exit status, what the message must say)
    (["conv", "sample:cat", "--stride", "99999999999999999999999"], 2, "stride must be at most 65536"),
    (["conv", "sample:cat", "--stride", "0"], 2, "stride must be an int >= 1"),
    (["conv", "sample:cat", "--padding", "99999999"], 2, "padding must be at most 65536"),
    (["conv", "sample:cat", "--kernel-size", "100000"], 2, "kernel_size must be at most 65536"),
    (["conv", "sample:cat", "--depth", "10000"], 2, "over the 1 GiB this command computes"),
    (["conv", "sample:cat", "--dilation", "-1"], 2, "dilation must be an int >= 1"),
    (["conv", "nosuchfile.png"], 1, "nosuchfile.png"),
    (["animate", "--input-size", "100000x100000", "-o", "{out}/a.gif"], 2, "at most 64x64 cells"),
    (["animate", "sample:cat", "--input-size", "100x100", "-o", "{out}/a.gif"], 2, "at most 64x64 cells"),
    (["layers", "resnet18", "--input-size", "100000"], 2, "too large to trace"),
    (["layers", "resnet18", "--input-size", "abc"], 2, "--input-size takes N, HxW or CxHxW"),
    (["layers", "nosuchmodel"], 2, "nosuchmodel"),
    (["show", "sample:cat", "--model", "tinyvgg", "--layers", "nolayer"], 2, "'nolayer' not found in tinyvgg"),
    (["predict", "sample:cat", "--checkpoint", "builtin:shapes-seg"], 2, "is not a classifier"),
    (["segment", "sample:cat", "--model", "tinyvgg", "--clusters", "0", "-o", "{out}/seg"], 2,
     "clusters must be an int from 2 to 64"),
    (["train", "--dataset", "shapes", "--batch-size", "0", "-o", "{out}/ckpt"], 2, "--batch-size must be from 1"),
    (["train", "--dataset", "shapes", "--lr", "0", "-o", "{out}/ckpt"], 2, "lr must be a positive"),
    (["train", "--dataset", "shapes", "--width", "0", "-o", "{out}/ckpt", "--epochs", "1", "--samples", "8"], 2,
     "width must be an integer from 1"),
    (["extract", "{binary}", "--model", "tinyvgg", "--layers", "conv1_1", "--out", "{out}/store"], 2,
     "holds NUL bytes"),
    (["extract", "{latin}", "--model", "tinyvgg", "--layers", "conv1_1", "--out", "{out}/store"], 2,
     "must be UTF-8 text"),
    (["extract", "{parquet}", "--model", "tinyvgg", "--layers", "conv1_1", "--out", "{out}/store"], 2,
     "not a readable Parquet file"),
    (["visualize", "--model", "builtin:shapes", "--layer", "conv2_2", "--channels", "999", "-o", "{out}/v.png"], 2,
     "out of range; conv2_2 has 32 maps"),
    (["visualize", "--model", "builtin:shapes", "--classes", "dog", "-o", "{out}/v.png"], 2, "class names: circle"),
    (["visualize", "--model", "builtin:shapes", "--layer", "conv2_2", "--direction", "3:x", "-o", "{out}/v.png"], 2,
     "CHANNEL:WEIGHT"),
    (["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv2_2:999"], 2, "conv2_2"),
    (["train", "--dataset", "{single}", "--backbone", "tinyvgg", "--layer", "relu2_2", "--head", "linear", "-o",
      "{out}/ckpt"], 2, "every class needs at least 2 readable images"),
    (["microscope", "{damaged}", "-o", "{out}/site"], 2, "damaged manifest"),
    (["extract", "{photos}", "--model", "tinyvgg", "--layers", "relu2_2", "--out", "{listless}", "--resume"], 2,
     "image list is missing or damaged"),
    (["hierarchy", "tinyvgg", "--dataset", "nope"], 2, "nope"),
]


@pytest.mark.parametrize("args, status, message", CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_hostile_command_lines(files, capsys, args, status, message):
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    started = time.perf_counter()
    got = main(argv)
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert got == status, err
    assert message in err, err
    assert "Traceback" not in err and "unexpected" not in err and "frame #" not in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line
    assert not files["out"].exists() or not any(files["out"].rglob("*")), "something was written"
    assert seconds < 60, f"took {seconds:.0f} s"


def test_version_and_clean_usage_lines(capsys):
    from featuremaps import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"featuremaps {__version__}"
    for command, usage in [("lineage", "Usage: featuremaps lineage [OPTIONS] IMAGE\n"),
                           ("predict", "Usage: featuremaps predict [OPTIONS] IMAGE...\n"),
                           ("animate", "Usage: featuremaps animate [OPTIONS] [IMAGE]\n")]:
        assert main([command, "--help"]) == 0
        assert capsys.readouterr().out.startswith(usage)


def test_models_that_do_not_take_one_image_are_not_listed_and_are_refused(capsys):
    from featuremaps.models import available_models

    names = {row["name"] for row in available_models()}
    assert "resnet18" in names and not names & {"raft_small", "raft_large", "r3d_18", "mvit_v2_s", "s3d"}
    assert main(["layers", "raft_small"]) == 2
    assert "optical-flow model (it takes two images)" in capsys.readouterr().err
    assert main(["layers", "r3d_18"]) == 2
    assert "video model" in capsys.readouterr().err

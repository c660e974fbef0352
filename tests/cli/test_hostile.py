"""Hostile command lines: each gets one line naming the problem, the right exit status, no traceback, no
"unexpected", nothing written, and it ends quickly (in-process through ``featuremaps.cli.main``)."""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest
import torch

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
    fake = root / "fake.png"
    fake.write_text("not an image")
    empty = root / "empty.png"
    empty.write_bytes(b"")
    truncated = root / "truncated.jpg"
    truncated.write_bytes(sample_path("cat").read_bytes()[:300])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = root / "bomb.png"  # a header claiming 100000 x 100000 pixels
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    witness = root / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {witness}",))

    raw_pickle = root / "raw.pt"
    raw_pickle.write_bytes(pickle.dumps(Payload(), protocol=4))
    saved_pickle = root / "saved.pt"
    torch.save({"state_dict": Payload()}, saved_pickle)
    garbage = root / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    notastore = root / "notastore"
    notastore.mkdir()
    mine = root / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_text("the user's own weights")
    grid = root / "grid.txt"
    grid.write_text("a file where a folder is asked for")
    fifo = root / "pipe.jpg"
    os.mkfifo(fifo)
    huge_input = _checkpoint_with(root / "huge", lambda record: record["model"].update(input_size=[3, 4096, 4096]))
    wide_input = _checkpoint_with(root / "wide", lambda record: record["model"].update(input_size=[3, 2048, 2048]))
    unnumbered_names = _checkpoint_with(root / "unnumbered", lambda record: (
        record["model"].update(class_names=[f"c{i}" for i in range(7)]), record["model"].pop("num_classes", None)))
    many_names = _checkpoint_with(root / "names", lambda record: record["model"].update(
        class_names=[f"c{i}" for i in range(100_000)]))
    rtl_names = _checkpoint_with(root / "rtl", lambda record: record["model"].update(
        class_names=["circle", "squ\u202eare", "triangle", "star"]))
    newline_names = _checkpoint_with(root / "newline", lambda record: record["model"].update(
        class_names=["circle", "square\nerror: fake", "triangle", "star"]))
    long_number = _checkpoint_with(root / "number", None, replace=(b'"epochs"', b'"epochs": ' + b"9" * 5000 + b', "x"'))
    seg_copy = root / "seg"
    shutil.copytree(shipped("shapes-seg"), seg_copy)
    shapes_copy = root / "shapes"
    shutil.copytree(shipped("shapes"), shapes_copy)
    lists = root / "lists.txt"
    lists.write_text(f"/dev/zero\n{fifo}\n")
    bad_folder = root / "folders"
    (bad_folder / "ok").mkdir(parents=True)
    (bad_folder / "evil\u202egpj.exe").mkdir()
    for name in ("ok", "evil\u202egpj.exe"):
        for index in range(2):
            shutil.copy(sample_path("cat"), bad_folder / name / f"{index}.jpg")
    return {"binary": binary, "latin": latin, "parquet": parquet, "single": single, "photos": photos,
            "damaged": damaged, "listless": listless, "out": root / "out", "fake": fake, "empty": empty,
            "truncated": truncated, "bomb": bomb, "raw_pickle": raw_pickle, "saved_pickle": saved_pickle,
            "garbage": garbage, "notastore": notastore, "mine": mine, "witness": witness, "grid": grid, "root": root,
            "fifo": fifo, "huge_input": huge_input, "wide_input": wide_input, "unnumbered_names": unnumbered_names,
            "many_names": many_names, "rtl_names": rtl_names,
            "newline_names": newline_names, "long_number": long_number, "seg": seg_copy, "shapes": shapes_copy,
            "lists": lists, "bad_folder": bad_folder}


def shipped(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("featuremaps") / "assets" / "models" / name))


def _checkpoint_with(folder: Path, change, replace: tuple[bytes, bytes] | None = None) -> Path:
    """A copy of the bundled builtin:shapes checkpoint whose record was changed (a crafted checkpoint)."""
    import json

    shutil.copytree(shipped("shapes"), folder)
    record_path = folder / "featuremaps.json"
    if change is not None:
        record = json.loads(record_path.read_text())
        change(record)
        record_path.write_text(json.dumps(record))
    if replace is not None:
        record_path.write_bytes(record_path.read_bytes().replace(*replace, 1))
    return folder


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
    # images
    (["conv", "{fake}"], 1, "not an image (no known image format"),
    (["conv", "{empty}"], 1, "file is empty (0 bytes)"),
    (["conv", "{truncated}"], 1, "corrupt image"),
    (["conv", "{bomb}"], 1, "10,000,000,000 pixels is over the limit"),
    (["conv", "{root}"], 1, "is a directory, not an image file"),
    (["conv", "sample:nosuch"], 1, "no such sample; available: cat"),
    (["predict", "{fake}", "--checkpoint", "builtin:shapes"], 1, "not an image"),
    # convolution settings
    (["conv", "sample:cat", "--groups", "2"], 2, "in_channels 3 is not divisible by groups 2"),
    (["conv", "sample:cat", "--kernel-size", "1000"], 2, "kernel height 1000 is larger than the padded input"),
    (["conv", "sample:cat", "--padding", "400", "--padding-mode", "reflect"], 2,
     "reflect padding of 400 along height must be smaller than the input height 300"),
    (["conv", "sample:cat", "--padding", "abc"], 2, "--padding must be N, PY,PX, TOP,BOTTOM,LEFT,RIGHT, 'same' or"),
    (["conv", "sample:cat", "--filters", "nosuchbank"], 2, "unknown filter bank 'nosuchbank'; choose from sobel_x"),
    (["conv", "sample:cat", "--filters", "{out}/missing.npy"], 2, "not found"),
    (["conv", "sample:cat", "--padding-mode", "wrap"], 2, "padding_mode must be one of zeros, reflect"),
    (["conv", "sample:cat", "-o", "{out}/maps.txt"], 2, "-o must end in .png"),
    (["conv", "sample:cat", "--transposed", "--padding", "60000"], 2,
     "the padding 60000 + 60000 removes every row of the transposed output"),
    (["conv", "sample:cat", "--output-padding", "1"], 2, "output_padding applies only to a transposed"),
    (["extract", "{out}", "--model", "builtin:shapes", "--layers", "pool1", "-o", "{out}/store", "--engine", "ray",
      "--ray-address", "ray://head:10001"], 2, "Ray Client (ray://) is not supported, because the driver writes"),
    (["extract", "{out}", "--model", "builtin:shapes", "--layers", "pool1", "-o", "{out}/store",
      "--ray-address", "127.0.0.1:6379"], 2, "--ray-address is for --engine ray"),
    (["extract", "{out}", "--model", "builtin:shapes", "--layers", "pool1", "-o", "{out}/store", "--engine", "ray",
      "--ray-address", "head"], 2, "--ray-address 'head': expected auto (the cluster of this node) or HEAD:PORT"),
    (["extract", "{out}", "--model", "builtin:shapes", "--layers", "pool1", "-o", "{out}/store", "--engine", "ray",
      "--ray-address", "127.0.0.1:99999"], 2, "--ray-address '127.0.0.1:99999': expected auto"),
    (["conv", "sample:cat", "--transposed", "--stride", "2", "--output-padding", "2"], 2,
     "output_padding must be smaller than the stride or the dilation"),
    (["animate", "--stride", "0", "-o", "{out}/a.gif"], 2, "stride must be an int >= 1"),
    (["animate", "-o", "{out}/a.avi"], 2, "-o must end in .gif"),
    (["receptive-field", "nonsense"], 2, "cannot read layer 'nonsense'"),
    # checkpoints
    (["show", "sample:cat", "--model", "{raw_pickle}"], 1, "refused: the safe loader (weights_only=True)"),
    (["show", "sample:cat", "--model", "{saved_pickle}"], 1, "refused: the file holds pickled Python objects"),
    (["predict", "sample:cat", "--checkpoint", "{raw_pickle}"], 1, "never unpickles other Python objects"),
    (["show", "sample:cat", "--model", "{garbage}"], 1, "not a readable safetensors file"),
    (["show", "sample:cat", "--model", "{out}/missing.safetensors"], 1, "weights file not found"),
    # stores and sources
    (["microscope", "{notastore}", "-o", "{out}/site"], 2, "not a featuremaps store (no manifest.json)"),
    (["extract", "{notastore}", "--model", "tinyvgg", "--layers", "conv1_1", "--out", "{out}/s"], 2,
     "no image files"),
    (["extract", "{truncated}", "--model", "tinyvgg", "--layers", "conv1_1", "--out", "{out}/s"], 2,
     "a source is a folder or a list file"),
    (["extract", "{photos}", "--model", "tinyvgg", "--layers", "conv1_1", "--out", "{out}/s", "--batch-size", "0"], 2,
     "batch_size must be an int >= 1"),
    # options and outputs that would overwrite
    (["train", "--dataset", "shapes", "-o", "{mine}", "--epochs", "1", "--samples", "8"], 2,
     "the directory is not empty; pass --overwrite"),
    (["train", "--dataset", "shapes", "-o", "{out}/x.safetensors"], 2, "a training checkpoint is a directory"),
    (["samples", "--objects", "{grid}"], 2, "is a file, not a folder"),
    (["serve", "--port", "70000"], 2, "--port must be from 1 to 65535"),
    (["serve", "--concurrency", "0"], 2, "--concurrency must be an integer >= 1"),
    (["serve", "--max-upload-mb", "0"], 2, "--max-upload-mb must be >= 1"),
    (["show", "sample:cat", "--model", "tinyvgg", "--layers", "conv1_1", "--max-maps", "0"], 2,
     "max_maps must be >= 1"),
    (["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv1_1:0:999:0"], 2, "y 999 is out of range"),
    (["hierarchy", "tinyvgg", "--layers", "nolayer"], 2, "layer 'nolayer' not found in tinyvgg. Valid: conv1_1"),
    # issue 21: reading only regular files, bounded
    (["conv", "/dev/zero"], 1, "/dev/zero: is a device, not a regular file; featuremaps reads only regular files"),
    (["predict", "/dev/zero"], 1, "/dev/zero: is a device, not a regular file"),
    (["show", "/dev/zero", "--model", "tinyvgg", "-o", "{out}/s"], 1, "/dev/zero: is a device, not a regular file"),
    (["conv", "{fifo}"], 1, "pipe.jpg: is a FIFO (named pipe), not a regular file"),
    (["predict", "{fifo}"], 1, "pipe.jpg: is a FIFO (named pipe), not a regular file"),
    # issue 21: crafted checkpoints
    (["predict", "sample:cat", "--checkpoint", "{huge_input}"], 1,
     "invalid featuremaps record (model): model.input_size must be [C, H, W] with C 1 or 3 and H, W in 1..2048; got "
     "[3, 4096, 4096]"),
    (["show", "sample:cat", "--model", "{huge_input}", "-o", "{out}/s"], 1, "H, W in 1..2048; got [3, 4096, 4096]"),
    (["predict", "sample:cat", "--checkpoint", "{wide_input}"], 1,
     "model.input size 2048x2048 is 4,194,304 pixels, over the limit of 1,048,576 for a model input"),
    (["predict", "sample:cat", "--checkpoint", "{many_names}"], 1,
     "model.class_names names 100,000 classes; model.num_classes is 4"),
    (["predict", "sample:cat", "--checkpoint", "{unnumbered_names}"], 1,
     "the weights do not fit tinyvgg; wrong shape: fc.weight (4, 5408) vs (7, 5408)"),
    (["predict", "sample:cat", "--checkpoint", "{rtl_names}"], 1,
     "model.class_names[1] holds an invisible format or direction character (U+202E)"),
    (["predict", "sample:cat", "--checkpoint", "{newline_names}"], 1,
     "model.class_names[1] holds a control character (U+000A)"),
    (["predict", "sample:cat", "--checkpoint", "{long_number}"], 1, "a number of 5,000 digits; at most 100"),
    (["calibrate", "{seg}", "--dataset", "objects"], 2,
     "--dataset must be shapes (generated scenes) or a masks folder (images/ and masks/) for a segmentation head"),
    (["calibrate", "{shapes}", "--dataset", "objects"], 2,
     "was trained on shapes, not objects: calibrate on the data it was trained on (--dataset shapes)"),
    (["calibrate", "{shapes}", "--dataset", "{out}/no_such_folder"], 2,
     "--dataset must be shapes, objects or a folder of images (one sub-folder per class)"),
    (["train", "--dataset", "{bad_folder}", "--backbone", "tinyvgg", "--layer", "relu2_2", "-o", "{out}/c"], 2,
     "holds an invisible format or direction character (U+202E); class names are printed, so they must be plain "
     "text; rename the folder"),
    # issue 21: clear errors, never "unexpected"
    (["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0", "--seed", str(2**70), "-o",
      "{out}/v.png"], 2, "Invalid value for '--seed': Input should be less than or equal to 4294967295"),
    (["animate", "--seed", str(2**70), "-o", "{out}/a.gif"], 2, "'--seed': Input should be less than or equal to"),
    (["animate", "--seed", "-1", "-o", "{out}/a.gif"], 2, "'--seed': Input should be greater than or equal to 0"),
    (["hierarchy", "tinyvgg", "--seed", "-1", "-o", "{out}/h.png"], 2, "Input should be greater than or equal to 0"),
    (["animate", "--fps", "0", "-o", "{out}/a.gif"], 2, "--fps must be from 0.1 to 60; got 0"),
    (["animate", "--bias", "nan", "-o", "{out}/a.gif"], 2, "bias must be finite numbers; got nan"),
    (["animate", "--bias", "inf", "-o", "{out}/a.gif"], 2, "bias must be finite numbers; got inf"),
    (["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0", "--device", "cuda", "-o",
      "{out}/v.png"], 2, "device cuda was asked for, but torch sees no CUDA GPU on this machine; use --device cpu"),
    (["hierarchy", "tinyvgg", "-o", "{out}/h.txt"], 2, "-o must name a .png file; got"),
    (["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv2_2:1:2", "-o", "{out}/l.png"], 2,
     "unit 'conv2_2:1:2': layer conv2_2 is followed by 2 numbers (1:2); a unit is LAYER:CHANNEL"),
    (["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv2_2:1:0:0:0", "-o", "{out}/l.png"], 2,
     "layer conv2_2 is followed by 4 numbers (1:0:0:0)"),
    (["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv2_2:1:1e9:0", "-o", "{out}/l.png"], 2,
     "the channel and position after layer conv2_2 must be whole numbers; got 1:1e9:0"),
    (["segment", "sample:cat", "--checkpoint", "builtin:shapes-seg", "--clusters", "3", "-o", "{out}/seg"], 2,
     "builtin:shapes-seg is a trained segmentation head: it gives its own segments"),
    (["segment", "sample:cat", "--model", "builtin:shapes-seg", "--layers", "nolayer", "-o", "{out}/seg"], 2,
     "(leave out clusters and layers); to cluster maps, cluster its backbone (--model builtin:shapes"),
    # issue 25, item 4: every command that computes maps takes --device, and a missing GPU is one line
    *[([*command, "--device", "cuda"], 2, "device cuda was asked for, but torch sees no CUDA GPU on this machine")
      for command in (["predict", "sample:cat"], ["show", "sample:cat", "--model", "tinyvgg", "-o", "{out}/s"],
                      ["lineage", "sample:cat", "--model", "tinyvgg", "--unit", "conv1_1:0", "-o", "{out}/l.png"],
                      ["segment", "sample:cat", "--model", "tinyvgg", "-o", "{out}/sg"],
                      ["hierarchy", "tinyvgg", "-o", "{out}/h.png"],
                      ["evaluate", "builtin:shapes", "--dataset", "shapes"])],
    (["predict", "sample:cat", "--device", "tpu"], 2, "device must be cpu, cuda or cuda:N; got 'tpu'"),
    (["conv", "sample:cat", "--filters", "gabor", "--kernel-size", "1"], 2,
     "gabor filters need a kernel of at least 3 pixels on one side; got 1x1"),
    (["visualize", "--model", "tinyvgg", "--layer", "conv1_1", "--channels", "0", "--save", "{out}/x.txt", "-o",
      "{out}/v.png"], 2, "--save must end in .npy"),
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
    assert (files["mine"] / "model.safetensors").read_text() == "the user's own weights", "a user's file changed"
    assert not files["witness"].exists(), "a pickled payload ran"
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


def test_running_out_of_memory_is_one_clear_line(capsys, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("featuremaps.images.load_image", exhausted)
    assert main(["conv", "sample:cat"]) == 1
    err = capsys.readouterr().err
    assert err == ("featuremaps: error: out of memory: this input and these settings need more memory than the "
                   "machine gave (try a smaller image, --batch-size or --input-size)\n")

"""Checkpoints: round trips, weights for named architectures, and refusing pickles."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
import torch

from featuremaps.errors import CheckpointError, SettingsError
from featuremaps.models import load_model, model_info, read_checkpoint, save_checkpoint


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ""])
def test_featuremaps_checkpoint_round_trip(tmp_path, suffix):
    model = load_model("tinyvgg", num_classes=4, seed=11)
    path = save_checkpoint(model, tmp_path / f"model{suffix}")
    again = load_model(path)
    assert model_info(again).source == "checkpoint" and model_info(again).num_classes == 4
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_plain_weights_for_a_named_architecture(tmp_path, suffix):
    source = load_model("resnet18", num_classes=3, seed=5)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(source.state_dict(), path)  # what most people save
    else:
        save_checkpoint(source, path)
    model = load_model("resnet18", weights=path, num_classes=3)
    assert torch.equal(model.fc.weight, source.fc.weight)
    assert model_info(model).weights == str(path)


def test_dataparallel_prefix_is_stripped(tmp_path):
    source = load_model("tinyvgg", seed=2)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, tmp_path / "dp.pt")
    assert torch.equal(load_model("tinyvgg", weights=tmp_path / "dp.pt").fc.bias, source.fc.bias)


def test_weights_that_do_not_fit_are_named(tmp_path):
    save_checkpoint(load_model("tinyvgg", num_classes=4), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match=r"do not fit tinyvgg; wrong shape: fc.weight \(4, 1690\) vs \(10, 1690\)"):
        load_model("tinyvgg", weights=tmp_path / "w.safetensors")


def test_weights_without_architecture_say_how_to_load_them(tmp_path):
    torch.save(load_model("tinyvgg").state_dict(), tmp_path / "plain.pt")  # a state_dict names no architecture
    with pytest.raises(CheckpointError, match=r"no featuremaps record of the architecture; .*load_model\('resnet18'"):
        load_model(tmp_path / "plain.pt")


class _Payload:
    """Pickles to a call of open(marker, 'w'): loading it unsafely would create the file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": load_model("tinyvgg").state_dict(), "x": _Payload(str(marker))}, evil)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused: the file holds pickled Python objects"):
        load_model("tinyvgg", weights=evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(evil)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [(b"", "not a readable"), (b"not a checkpoint", "not a readable")])
def test_corrupt_files(tmp_path, content, message):
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / f"bad{suffix}"
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=message):
            read_checkpoint(path)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(CheckpointError, match="weights file not found"):
        read_checkpoint(tmp_path / "none.pt")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"unknown weights format '.bin'"):
        read_checkpoint(tmp_path / "w.bin")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(CheckpointError, match="not a featuremaps checkpoint directory"):
        read_checkpoint(tmp_path / "emptydir")


def test_a_folder_of_images_is_named_as_such(tmp_path):
    """Issue 22, item 10: ``layers objects/`` said "not a featuremaps checkpoint directory"."""
    from PIL import Image

    (tmp_path / "objects" / "more").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "objects" / "house.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "objects" / "more" / "tree.jpg")
    with pytest.raises(CheckpointError, match=r"objects: a folder of 2 images, not a model: give a model name "
                                              r"\(featuremaps models lists them\) or a checkpoint directory"):
        read_checkpoint(tmp_path / "objects")


# --- the record inside a checkpoint is data, checked field by field ---------------------------


def _directory_checkpoint(tmp_path, edit) -> Path:
    path = save_checkpoint(load_model("tinyvgg", num_classes=4, seed=1), tmp_path / "ckpt")
    record = json.loads((path / "featuremaps.json").read_text())
    edit(record)
    (path / "featuremaps.json").write_text(json.dumps(record))
    return path


def test_a_record_never_names_a_path(tmp_path, monkeypatch):
    good = save_checkpoint(load_model("tinyvgg", num_classes=4, seed=1), tmp_path / "good_dir")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in ("../good_dir", str(good), "good_dir/../good_dir", "x.safetensors/.."):
        path = _directory_checkpoint(tmp_path / name.replace("/", "_").replace(".", "d"),
                                     lambda r, n=name: r["model"].update(name=n))
        with pytest.raises(CheckpointError, match=r"model.name must be a model name .*never a path"):
            load_model(path)


def test_a_record_that_names_itself_is_refused_without_recursion(tmp_path):
    path = tmp_path / "self"
    path = _directory_checkpoint(tmp_path, lambda r: r["model"].update(name=str(tmp_path / "ckpt")))
    with pytest.raises(CheckpointError, match="never a path"):
        load_model(path)


def test_deeply_nested_json_is_refused(tmp_path):
    path = save_checkpoint(load_model("tinyvgg", seed=1), tmp_path / "deep")
    (path / "featuremaps.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="not a featuremaps record: JSON nested 100000 levels deep; at most 32"):
        load_model(path)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["model"].update(options={"width": -3}), r"cannot build|width"),
    (lambda r: r["model"].update(options={"width": [1, 2]}), "model.options must map option names"),
    (lambda r: r["model"].update(input_size=[3, -64, 64]), r"model.input_size must be \[C, H, W\]"),
    (lambda r: r["model"].update(input_size="big"), r"model.input_size must be"),
    (lambda r: r["model"].update(mean=[0.5]), "model.mean must be 3 finite numbers"),
    (lambda r: r["model"].update(std=[0.0, 1.0, 1.0]), r"model.std must be 3 finite numbers > 0"),
    (lambda r: r["model"].update(num_classes="four"), "model.num_classes must be a positive int"),
    (lambda r: r["model"].update(class_names=[1, 2]), "model.class_names must be a list of strings"),
    (lambda r: r["model"].update(name=None), "model.name must be a model name"),
    (lambda r: r.update(model=[1, 2, 3]), "model record must be a JSON object"),
    (lambda r: r["model"].update(name="resnet81"), r"cannot build \(unknown model 'resnet81'"),
    (lambda r: r.update(head={"kind": "linear"}), r"head.features must be int"),
    (lambda r: r.update(head="x"), r"head must be a JSON object"),
    (lambda r: r.update(segmentation={"layers": "abc"}), r"segmentation.layers must be list"),
])
def test_bad_records_are_checkpoint_errors_naming_the_field(tmp_path, edit, message):
    path = _directory_checkpoint(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


# --- writing: atomic, and never over a user's files -------------------------------------------


def test_an_existing_file_or_directory_is_not_replaced_without_overwrite(tmp_path):
    model = load_model("tinyvgg", seed=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "model.safetensors").write_bytes(b"the user's own weights")
    with pytest.raises(SettingsError, match=r"the directory is not empty; pass --overwrite"):
        save_checkpoint(model, tmp_path / "mine")
    assert (tmp_path / "mine" / "model.safetensors").read_bytes() == b"the user's own weights"
    (tmp_path / "w.pt").write_bytes(b"keep")
    with pytest.raises(SettingsError, match=r"w.pt: exists; pass overwrite=True"):
        save_checkpoint(model, tmp_path / "w.pt")
    assert (tmp_path / "w.pt").read_bytes() == b"keep"
    save_checkpoint(model, tmp_path / "mine", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["featuremaps.json", "model.safetensors"]
    assert model_info(load_model(tmp_path / "mine")).source == "checkpoint"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):

    first = save_checkpoint(load_model("tinyvgg", seed=1), tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(load_model("tinyvgg", seed=2), tmp_path / "ckpt", overwrite=True)
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


@pytest.mark.parametrize("name", ["ckpt", "model.safetensors"])
def test_checkpoint_files_get_the_usual_permissions(tmp_path, name):
    """safetensors writes 0600; a checkpoint (a bundled model above all) must be readable like any file."""
    import os
    import stat

    path = save_checkpoint(load_model("tinyvgg"), tmp_path / name)
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    files = [path] if path.is_file() else [p for p in path.iterdir()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == expected for p in files), [
        oct(p.stat().st_mode) for p in files]

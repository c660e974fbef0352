"""Checkpoints: round trips, weights for named architectures, and refusing pickles."""

from __future__ import annotations

import builtins

import pytest
import torch

from featuremaps.errors import CheckpointError
from featuremaps.models import load_model, read_checkpoint, save_checkpoint


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ""])
def test_featuremaps_checkpoint_round_trip(tmp_path, suffix):
    model = load_model("tinyvgg", num_classes=4, seed=11)
    path = save_checkpoint(model, tmp_path / f"model{suffix}")
    again = load_model(path)
    assert again.featuremaps_info.source == "checkpoint" and again.featuremaps_info.num_classes == 4
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
    assert model.featuremaps_info.weights == str(path)


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

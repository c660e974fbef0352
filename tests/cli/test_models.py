"""``featuremaps models``, ``layers`` and ``show`` through the entry point."""

from __future__ import annotations

import json


def test_layers_json_for_resnet18(run_cli):
    result = run_cli("layers", "resnet18", "--json")
    assert result.returncode == 0, result.stderr
    layers = {row["name"]: row for row in json.loads(result.stdout)}
    expected = {"layer1": ([64, 56, 56], 4, 43), "layer2": ([128, 28, 28], 8, 99),
                "layer3": ([256, 14, 14], 16, 211), "layer4": ([512, 7, 7], 32, 435)}
    for name, (shape, stride, field) in expected.items():
        row = layers[name]
        assert row["output_shape"] == shape and row["stride"] == [stride, stride]
        assert row["receptive_field"] == [field, field] and row["type"] == "Sequential"


def test_layers_table_and_input_size(run_cli):
    result = run_cli("layers", "tinyvgg", "--input-size", "96")
    assert result.returncode == 0 and "pool2" in result.stdout and "10x21x21" in result.stdout


def test_show_writes_pictures_offline(run_cli, tmp_path):
    result = run_cli("show", "sample:cat", "--model", "resnet18", "--layers", "layer1,layer2,layer3,layer4",
                     "-o", str(tmp_path / "out"), "--overlay", "layer4:7", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [row["name"] for row in data["layers"]] == ["layer1", "layer2", "layer3", "layer4"]
    assert data["layers"][3]["output_shape"] == [512, 7, 7]
    assert data["weights"] == "untrained (random) weights"
    assert "untrained (random) weights" in (tmp_path / "out" / "index.html").read_text()
    assert (tmp_path / "out" / "index.html").is_file() and (tmp_path / "out" / "overlay-layer4-7.png").is_file()


def test_wrong_layer_and_model_exit_2_with_help(run_cli, tmp_path):
    result = run_cli("show", "sample:cat", "--model", "resnet18", "--layers", "layer5", "-o", str(tmp_path))
    assert result.returncode == 2
    assert "layer 'layer5' not found in resnet18" in result.stderr and "featuremaps layers resnet18" in result.stderr
    result = run_cli("layers", "resnet81")
    assert result.returncode == 2 and "did you mean resnet18" in result.stderr
    result = run_cli("show", "sample:cat", "--model", "tinyvgg", "--overlay", "pool2:99", "-o", str(tmp_path))
    assert result.returncode == 2 and "channel 99 is out of range for pool2, which has 10 maps" in result.stderr


def test_models_lists_builtin_and_torchvision(run_cli):
    rows = json.loads(run_cli("models", "--json").stdout)
    assert {"tinyvgg", "resnet18"} <= {row["name"] for row in rows}


def test_refused_checkpoint_exits_1(run_cli, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    result = run_cli("layers", "tinyvgg", "--weights", str(tmp_path / "bad.pt"))
    assert result.returncode == 1 and "not a readable PyTorch weights file" in result.stderr

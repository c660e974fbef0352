"""Commands that need no model start without importing torch (the seconds of ``import torch`` are what a user
waits for on ``--help``); the timing itself is measured with farm-bench, not here."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from tests.conftest import FEATUREMAPS


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["banks"], ["samples"], ["conv", "--help"],
                                  ["train", "--help"], ["serve", "--help"]])
def test_commands_that_need_no_model_do_not_import_torch(args):
    result = subprocess.run([str(FEATUREMAPS), *args], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "featuremaps.cli" in imported  # the profile is there
    assert not {"torch", "torchvision", "featuremaps.conv.layer", "featuremaps.images"} & imported


def test_banks_say_which_members_a_group_resizes(run_cli):
    rows = {row["name"]: row for row in json.loads(run_cli("banks", "--json").stdout)}
    assert rows["gaussian"]["kernel_size"] == [5, 5] and rows["classic"]["kernel_size"] == [3, 3]
    assert rows["classic"]["resized"] == {"gaussian": [5, 5]}
    assert "gaussian (alone 5x5, 3x3 here)" in run_cli("banks").stdout


def test_the_package_loads_its_names_on_first_use():
    code = ("import sys, featuremaps as fm; assert 'torch' not in sys.modules; layer = fm.ConvLayer(1, 'sobel'); "
            "import featuremaps.extract; assert callable(fm.extract) and fm.extract.__name__ == 'extract'; "
            "print(sorted(set(fm.__all__) - set(dir(fm))))")
    result = subprocess.run([str(FEATUREMAPS.parent / "python"), "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_help_lists_the_commands_by_what_they_are_for(run_cli):
    """Issue 22, item 10: the command list is grouped (convolution, models, recognition, segmentation,
    datasets, explorer), every command in exactly one group."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    titles = ["Convolution:", "Models and their maps:", "Recognition:", "Segmentation:", "Datasets:",
              "Explorer and report:"]
    positions = [result.stdout.index(title) for title in titles]
    assert positions == sorted(positions) and "Other:" not in result.stdout
    for command in ("conv", "layers", "predict", "segment", "extract", "serve", "calibrate", "receptive-field"):
        assert sum(line.split()[:1] == [command] for line in result.stdout.splitlines()) == 1
    convolution = result.stdout[positions[0]:positions[1]]
    assert "  conv " in convolution and "  animate " in convolution and "  predict " not in convolution

"""``featuremaps extract``'s own notes on the command line."""

from __future__ import annotations

import pytest
from PIL import Image

from featuremaps.cli import main


@pytest.mark.parametrize(("workers", "noted"), [(0, False), (1, False), (3, True)])
def test_workers_without_worker_decoding_is_noted_only_when_it_would_add_processes(tmp_path, capsys, workers,
                                                                                   noted):
    photos = tmp_path / "photos"
    photos.mkdir()
    for number in range(2):
        Image.new("RGB", (32, 32), (40 * number, 90, 160)).save(photos / f"{number}.png")
    assert main(["extract", str(photos), "-m", "builtin:tinyvgg", "--layers", "conv1_1", "--workers", str(workers),
                 "-o", str(tmp_path / "store")]) == 0
    err = capsys.readouterr().err
    assert ("note: --workers 3 is for --decode workers" in err) is noted, err

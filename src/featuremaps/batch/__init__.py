"""Dataset-scale extraction: streaming pipeline, store, statistics, top-k, Ray engine, microscope.

Its storage libraries (pyarrow for the tables, zarr for full maps) come with the ``batch`` extra
(``pip install 'featuremaps[batch]'``; ``make`` installs it): the rest of featuremaps runs without them.
``Store`` and ``run_extract`` are imported on first use (PEP 562), and neither ``ExtractConfig`` nor
``run_extract`` needs torch until an engine runs: the Ray engine starts the cluster's actors first, and they
import torch and build the model in their own processes while this one imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featuremaps.batch.config import BATCH_EXTRA, ExtractConfig, ExtractSummary, require

require("pyarrow", "dataset extraction (its store's tables)")

if TYPE_CHECKING:
    from featuremaps.batch.run import run_extract
    from featuremaps.batch.store import Store

__all__ = ["BATCH_EXTRA", "ExtractConfig", "ExtractSummary", "Store", "require", "run_extract"]

_LAZY = {"Store": "featuremaps.batch.store", "run_extract": "featuremaps.batch.run"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'featuremaps.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

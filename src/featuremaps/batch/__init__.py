"""Dataset-scale extraction: streaming pipeline, store, statistics, top-k, Ray engine, microscope.

Its storage libraries (pyarrow for the tables, zarr for full maps) come with the ``batch`` extra
(``pip install 'featuremaps[batch]'``; ``make`` installs it): the rest of featuremaps runs without them.
"""

from featuremaps.batch.config import BATCH_EXTRA, require

require("pyarrow", "dataset extraction (its store's tables)")

from featuremaps.batch.config import ExtractConfig, ExtractSummary  # noqa: E402 - after the check that names the missing extra
from featuremaps.batch.run import run_extract  # noqa: E402 - after the check that names the missing extra
from featuremaps.batch.store import Store  # noqa: E402 - after the check that names the missing extra

__all__ = ["BATCH_EXTRA", "ExtractConfig", "ExtractSummary", "Store", "require", "run_extract"]

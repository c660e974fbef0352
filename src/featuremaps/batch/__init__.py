"""Dataset-scale extraction: streaming pipeline, store, statistics, top-k, Ray engine, microscope.

Its storage libraries (pyarrow for the tables, zarr for full maps) come with the ``batch`` extra
(``pip install 'featuremaps[batch]'``; ``make`` installs it): the rest of featuremaps runs without them.
"""

import importlib.util

from featuremaps.errors import FeatureMapsError

BATCH_EXTRA = "pip install 'featuremaps[batch]'"


def require(module: str, for_what: str) -> None:
    """Raise a :class:`FeatureMapsError` that says what to install when ``module`` is missing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise FeatureMapsError(f"{for_what} needs {module}, which is not installed: {BATCH_EXTRA}")


require("pyarrow", "dataset extraction (its store's tables)")

from featuremaps.batch.config import ExtractConfig, ExtractSummary  # noqa: E402 - after the check that names the missing extra
from featuremaps.batch.run import run_extract  # noqa: E402 - after the check that names the missing extra
from featuremaps.batch.store import Store  # noqa: E402 - after the check that names the missing extra

__all__ = ["BATCH_EXTRA", "ExtractConfig", "ExtractSummary", "Store", "require", "run_extract"]

"""Dataset-scale extraction: streaming pipeline, store, statistics, top-k, Ray engine, microscope."""

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.run import run_extract
from featuremaps.batch.store import Store

__all__ = ["ExtractConfig", "ExtractSummary", "Store", "run_extract"]

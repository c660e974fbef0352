"""``run_extract``: one dataset extraction, on the local engine or on a Ray cluster.

The engines are imported when chosen: on Ray, the cluster's actors are started before torch is imported here."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.sources import absolute_sources, list_sources

__all__ = ["run_extract"]


def run_extract(
    source: str | os.PathLike[str] | Sequence[str], out: str | os.PathLike[str], config: ExtractConfig, *,
    resume: bool = False, on_progress: Callable[[int, int], None] | None = None,
) -> ExtractSummary:
    """Extract ``config.layers`` of every image of ``source`` into the store ``out``.

    Args:
        source: a folder, a .txt/.csv/.parquet list, or a list of paths.
        resume: continue an existing store (finished shards are checked and skipped; a
            different config is refused with what differs).
        on_progress: called with ``(images done, images to do)`` after each batch.
    """
    sources = list_sources(source) if isinstance(source, (str, os.PathLike)) else absolute_sources(source)
    if config.engine == "ray":
        from featuremaps.batch.ray_cluster import RayCluster  # no torch

        with RayCluster(config) as cluster:  # the actors start on the cluster while this process imports torch
            from featuremaps.batch.ray_engine import run_ray

            return run_ray(sources, out, config, cluster, resume=resume, on_progress=on_progress)
    from featuremaps.batch.pipeline import run_local  # torch

    return run_local(sources, out, config, resume=resume, on_progress=on_progress)

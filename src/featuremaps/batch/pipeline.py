"""Dataset-scale extraction, local engine: a bounded streaming pipeline whose stages overlap.

- **Reading and decoding** (``decode``, see :attr:`ExtractConfig.decode_place`): each file is
  read once, hashed and its header checked (format, pixel limit); then, on a GPU, worker
  processes hand JPEG bytes to the device (``device``); on the CPU a pool of threads decodes
  each batch between two forward passes (``threads``: libjpeg-turbo, torch's uint8 resize);
  ``workers`` decodes in DataLoader processes instead, beside the forward.
- **The device**: deferred JPEGs are decoded in one batched call (nvJPEG on CUDA) and framed
  on the device; the truncated feature graph of the core (:class:`~featuremaps.features.
  FeatureExtractor`, ``torch.compile``d with ``compile``) runs with the per-image reductions
  inside it (:func:`~featuremaps.batch.shards.reduce_maps`: pooled vectors, sums, squares,
  maxima and their positions, positive counts), so only ``(N, C)`` results leave the device,
  copied without waiting; a batch's results are read one batch later, once their copy is done.
- **A writer thread** folds the results into the shards' statistics and top-K and writes each
  shard (Parquet, atomically) once its last image is in, while the next batches run.

Memory is bounded by the prefetch queue (workers x 2 batches), one batch in flight on the
device, the writer's queue of 2 batches, one shard of vectors and the O(K x channels) top-K,
whatever the dataset size.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.decode import Assembled, assemble, read_item
from featuremaps.batch.forward import autocast_for, device_forward
from featuremaps.batch.shards import (
    ShardCollector,
    host_summaries,
    layer_table,
    make_manifest,
    open_maps,
    redone_shards,
    shard_plan,
    store_errors,
)
from featuremaps.batch.store import Store
from featuremaps.features.info import model_info
from featuremaps.features.inputs import ModelInput
from featuremaps.models.registry import load_model

__all__ = ["file_loader", "run_local"]

logger = logging.getLogger(__name__)

class _Files(Dataset[dict[str, Any]]):
    """``(index, path)`` items, read (and decoded unless deferred) in the DataLoader's workers."""

    def __init__(self, items: Sequence[tuple[int, str]], model_input: ModelInput, defer_jpeg: bool) -> None:
        self.items, self.model_input, self.defer_jpeg = list(items), model_input, defer_jpeg

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index, path = self.items[position]
        return read_item(index, path, self.model_input, defer_jpeg=self.defer_jpeg)


def _lower_priority(_worker: int) -> None:
    """Decoding workers yield to the forward pass: on a few cores, a worker that preempts one of
    the model's threads stalls all of them; at low priority it runs in the gaps instead."""
    try:
        os.nice(10)
    except OSError:
        pass
    torch.set_num_threads(1)


def _items(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch  # the batch stays a list: images of a batch are stacked on the device, after decoding


def file_loader(items: Sequence[tuple[int, str]], model_input: ModelInput,
                config: ExtractConfig) -> DataLoader[dict[str, Any]]:
    """The workers' side: batches of :func:`~featuremaps.batch.decode.read_item` results, in order."""
    return DataLoader(_Files(items, model_input, config.decode_on_device), batch_size=config.batch_size,
                      num_workers=config.workers, collate_fn=_items, pin_memory=config.device.startswith("cuda"),
                      prefetch_factor=2 if config.workers else None, persistent_workers=False,
                      worker_init_fn=_lower_priority if config.workers else None)


class _Prefetch:
    """Assemble the next batches (decode deferred JPEGs on the device, frame, normalise) in a thread, so
    decoding overlaps the forward pass; on CUDA on a side stream, each batch handed over with its event.

    Iterating yields ``(items, Assembled)``; an error in the thread is raised in the consumer.
    """

    def __init__(self, loader: Any, model_input: ModelInput, device: torch.device, depth: int = 2) -> None:
        self.loader, self.model_input, self.device = loader, model_input, device
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.thread = threading.Thread(target=self._run, name="featuremaps-decode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for items in self.loader:
                if self.stream is not None:
                    with torch.cuda.stream(self.stream):
                        assembled = assemble(items, self.model_input, self.device)
                        event = torch.cuda.Event()
                        event.record(self.stream)
                else:
                    assembled, event = assemble(items, self.model_input, self.device), None
                self.queue.put((items, assembled, event))
        except BaseException as error:  # noqa: BLE001 - raised in the consumer
            self.queue.put(error)
            return
        self.queue.put(None)

    def __iter__(self) -> Iterator[tuple[list[dict[str, Any]], Assembled]]:
        while (entry := self.queue.get()) is not None:
            if isinstance(entry, BaseException):
                raise entry
            items, assembled, event = entry
            if event is not None and assembled.batch is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
                assembled.batch.record_stream(torch.cuda.current_stream(self.device))  # made on the side stream
            yield items, assembled


def _inline(loader: Any, model_input: ModelInput, device: torch.device) -> Iterator[tuple[list[dict[str, Any]],
                                                                                          Assembled]]:
    for items in loader:
        yield items, assemble(items, model_input, device)


def _threaded(items: Sequence[tuple[int, str]], model_input: ModelInput, config: ExtractConfig,
              device: torch.device) -> Iterator[tuple[list[dict[str, Any]], Assembled]]:
    """Each batch read and decoded by a pool of threads (libjpeg-turbo, hashing and torch's resize
    release the GIL), then handed to the forward pass: the two phases take turns on every core."""
    threads = max(1, torch.get_num_threads())
    with ThreadPoolExecutor(threads, thread_name_prefix="featuremaps-decode") as pool:
        for start in range(0, len(items), config.batch_size):
            chunk = items[start : start + config.batch_size]
            batch = list(pool.map(lambda entry: read_item(entry[0], entry[1], model_input, defer_jpeg=False), chunk))
            yield batch, assemble(batch, model_input, device)


class _InFlight:
    """One batch's reduced results, on their way to the host: copied without waiting, read later."""

    def __init__(self, assembled: Assembled, reduced: dict[str, dict[str, torch.Tensor]] | None,
                 device: torch.device) -> None:
        self.assembled = assembled
        self.reduced = None if reduced is None else {
            name: {key: value.to("cpu", non_blocking=True) for key, value in parts.items()}
            for name, parts in reduced.items()}
        self.event = None
        if device.type == "cuda" and reduced is not None:
            self.event = torch.cuda.Event()
            self.event.record()

    def results(self) -> dict[str, dict[str, torch.Tensor]] | None:
        if self.event is not None:
            self.event.synchronize()  # this batch's copies only; later batches keep running
        return self.reduced


class _Writer:
    """A thread that folds results into the shards and writes them, behind a queue of 2 batches."""

    def __init__(self, collector: ShardCollector, shapes: dict[str, tuple[int, ...]], pool: str) -> None:
        self.collector, self.shapes, self.pool = collector, shapes, pool
        self.queue: queue.Queue[tuple[Assembled, dict[str, dict[str, torch.Tensor]] | None] | None] = \
            queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.stopping = False
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, name="featuremaps-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.queue.get()) is not None:
            if self.error is not None or self.stopping:
                continue  # drain after a failure (the main thread raises it) or an interruption
            started = time.perf_counter()
            try:
                assembled, reduced = job
                summaries = host_summaries(reduced, self.shapes, self.pool) if reduced is not None else None
                self.collector.add(assembled.good, summaries, assembled.bad)
            except BaseException as error:  # noqa: BLE001 - handed to the main thread
                self.error = error
            self.seconds += time.perf_counter() - started

    def put(self, assembled: Assembled, reduced: dict[str, dict[str, torch.Tensor]] | None) -> None:
        self._raise()
        self.queue.put((assembled, reduced))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()
        self.collector.close()

    def stop(self, timeout: float = 120.0) -> None:
        """After an interruption: finish the write under way (each is atomic), drop the rest, and wait, so
        no half-written file is left when the run reports it was interrupted."""
        self.stopping = True
        self.queue.put(None)
        self.thread.join(timeout)

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def run_local(sources: list[str], out: str | os.PathLike[str], config: ExtractConfig, *, resume: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> ExtractSummary:
    """The local engine (see the module docstring): ``sources`` are absolute image paths."""
    started = time.perf_counter()
    device = torch.device(config.device)
    model = load_model(config.model, weights=config.weights).to(device).to(memory_format=torch.channels_last)
    info = model_info(model)
    layers = layer_table(model, config.layers)
    store = Store(out)
    manifest = make_manifest(config, info, layers, sources)
    todo = store.open(manifest, sources, resume=resume)
    skipped = manifest.shards - len(todo)
    zarr_write = open_maps(store, layers, len(sources), config.precision != "fp32") if config.pool == "none" else None
    indices, expected = shard_plan(todo, config.shard_size, len(sources))
    items = [(i, sources[i]) for i in indices]
    forward = device_forward(model, layers, config)
    shapes = {entry.name: tuple(entry.output_shape) for entry in layers}
    writer = _Writer(ShardCollector(store, manifest, expected, config, zarr_write), shapes, config.pool)
    stages = {"setup": time.perf_counter() - started, "waiting for input": 0.0, "device": 0.0}
    done = 0
    with store.running(manifest):
        in_flight: _InFlight | None = None
        try:
            clock = time.perf_counter()
            place = config.decode_place
            batches = (_threaded(items, info.input, config, device) if place == "threads"
                       else _Prefetch(file_loader(items, info.input, config), info.input, device) if place == "device"
                       else _inline(file_loader(items, info.input, config), info.input, device))
            for batch, assembled in batches:
                now = time.perf_counter()
                stages["waiting for input"] += now - clock
                reduced = None
                if assembled.batch is not None:
                    x = assembled.batch.contiguous(memory_format=torch.channels_last)
                    with autocast_for(config, device):
                        reduced = forward(x)
                current = _InFlight(assembled, reduced, device)
                if in_flight is not None:
                    writer.put(in_flight.assembled, in_flight.results())
                in_flight = current
                clock = time.perf_counter()
                stages["device"] += clock - now
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, len(items))
            if in_flight is not None:
                writer.put(in_flight.assembled, in_flight.results())
        except BaseException:
            writer.stop()  # the write under way finishes; then the store records the interruption
            raise
        writer.close()
        stages["writing (in the background)"] = writer.seconds
        closing = time.perf_counter()
        seconds = closing - started
        error_total = store_errors(store, manifest)
        summary = ExtractSummary(str(store.root), len(sources), len(sources) - error_total, error_total,
                                 manifest.shards, skipped, round(seconds, 3),
                                 round(len(items) / seconds, 2) if seconds else 0.0, layers=[e.name for e in layers],
                                 seconds_by_stage={k: round(v, 3) for k, v in stages.items()},
                                 shards_redone=redone_shards(store))
        store.finalise(manifest, summary.to_dict())
    summary.seconds_by_stage["finalise"] = round(time.perf_counter() - closing, 3)
    return summary


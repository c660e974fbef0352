"""The same extraction on a Ray cluster (``pip install 'featuremaps[ray]'``), on Ray actors: the driver.

Plan: :class:`~featuremaps.batch.ray_cluster.RayCluster` has joined the cluster and started one forward actor per
CPU of the cluster (per GPU when it has GPUs) before this module is imported: while the actors import torch and
build the model on their nodes, this process imports torch and checks the model, the layers and the store. The
driver then cuts the images to do into batches and keeps each actor two batches ahead, so an actor that
finishes takes the next batch at once and the nodes end together. Each actor reads its own batches (as the
local engine's threads do on a CPU); with ``--decode workers`` or ``device``, ``--workers N`` reader actors per
forward actor, spread over the cluster, read them ahead of it (and the actor is kept N + 1 batches ahead). The
actors' work is :mod:`featuremaps.batch.ray_work` (the local engine's reading and forward functions); only
per-image summaries come back, and the driver writes the same store, shard by shard, with the same resume
rules. Every result row says which node read and computed it: the summary counts rows and seconds per node.

Faults: a lost node's actors (forward or reader) are dropped and their batches go to the others, so the
store is the same; while the head (the cluster's control plane) does not answer no new batch is sent, and a
lost head ends the run within seconds with the manifest ``failed`` and what was done; ``--resume`` continues
on a new cluster. Ray's own log lines go to stderr, never into ``--json``.

Point it at a cluster with ``--ray-address HEAD:6379`` (or ``auto`` on a node of the cluster); without an
address a private Ray starts on this machine, on the loopback interface only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.ray_cluster import RayCluster, unanswered
from featuremaps.batch.shards import (
    ShardCollector,
    layer_table,
    make_manifest,
    open_maps,
    redone_shards,
    shard_plan,
    store_errors,
)
from featuremaps.batch.store import Store
from featuremaps.errors import SettingsError
from featuremaps.features.info import model_info
from featuremaps.models.registry import load_model

__all__ = ["run_ray"]


def _split(batch: dict[str, Any], layers: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]],
                                                                    list[tuple[int, str, str]]]:
    """A result batch from the actors back into (good items, summaries of the good ones, bad items)."""
    ok = np.asarray(batch["ok"], dtype=bool)
    good = [{"index": int(batch["index"][i]), "path": str(batch["path"][i]), "width": int(batch["width"][i]),
             "height": int(batch["height"][i]), "sha256": str(batch["sha256"][i])} for i in np.flatnonzero(ok)]
    bad = [(int(batch["index"][i]), str(batch["path"][i]), str(batch["reason"][i])) for i in np.flatnonzero(~ok)]
    summaries: dict[str, dict[str, Any]] = {}
    if good:
        for name in layers:
            part: dict[str, Any] = {"vector": None, "maps": None}
            for key in ("vector", "maps", "total", "squares", "maximum", "positive", "best", "best_y", "best_x"):
                column = f"{name}|{key}"
                if column in batch:
                    part[key] = np.asarray(batch[column])[ok]
            part["positions"] = int(np.asarray(batch[f"{name}|positions"])[ok][0])
            summaries[name] = part
    return good, summaries, bad


class _Nodes:
    """Rows and seconds per Ray node (keyed by node id: on one machine every node has the same address)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}

    def add(self, batch: dict[str, Any]) -> None:
        for node_key, seconds_key, rows, stage in (("node", "forward_seconds", "rows", "forward s"),
                                                   ("read_node", "read_seconds", "rows read", "read s")):
            for node, seconds in zip(batch[node_key], batch[seconds_key]):
                entry = self.rows.setdefault(str(node), {"rows": 0, "rows read": 0, "forward s": 0.0, "read s": 0.0})
                entry[rows] += 1
                entry[stage] += float(seconds)

    def summary(self, addresses: dict[str, str]) -> list[dict[str, Any]]:
        return [{"node": node, "address": addresses.get(node, "?"), "rows": int(entry["rows"]),
                 "rows_read": int(entry["rows read"]),
                 "seconds_by_stage": {"read and decode": round(entry["read s"], 3),
                                      "forward": round(entry["forward s"], 3)}}
                for node, entry in sorted(self.rows.items())]


class _HeadWatch:
    """Watches the cluster's head (its GCS port) from a thread. When it stops answering for ``patience``
    seconds, the run cannot go on (Ray would retry for a minute, then end the process with no word): the
    watcher waits for a shard being written, records the manifest ``failed`` with what was done, says so in
    one line and exits with status 1."""

    def __init__(self, address: str, store: Store, manifest: Any, lock: threading.Lock, done: Callable[[], str],
                 patience: float = 8.0) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.store, self.manifest, self.lock, self.done, self.patience = store, manifest, lock, done, patience
        self.stopped = threading.Event()
        self.silent = threading.Event()  # set while the head does not answer: no new work is sent out
        self.thread = threading.Thread(target=self._watch, name="featuremaps-ray-head-watch", daemon=True)

    def __enter__(self) -> _HeadWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()

    def _answers(self) -> bool:
        return unanswered(f"{self.host}:{self.port}", timeout=1.0) is None

    def _watch(self) -> None:
        silent_since: float | None = None
        while not self.stopped.wait(1.0):
            if self._answers():
                silent_since = None
                self.silent.clear()
                continue
            self.silent.set()
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since < self.patience or self.stopped.is_set():
                continue
            with self.lock:  # a shard being written is finished first
                if self.stopped.is_set():
                    return
                done = self.done()
                self.manifest.status = "failed"
                self.manifest.summary = {"error": f"the Ray cluster was lost: its head at {self.host}:{self.port} "
                                                  f"stopped answering", "done": done,
                                         "resume": "start a cluster, then run the same command with --resume"}
                self.store.write_manifest(self.manifest)
                os.write(2, (f"featuremaps: error: the Ray cluster was lost (its head at {self.host}:{self.port} "
                             f"stopped answering for {self.patience:.0f} s); {done} are in {self.store.root}: "
                             "run the same command with --resume to continue\n").encode())
                os._exit(1)  # Ray's client would wait a minute, then end the process itself


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:500] if lines else type(error).__name__


class _Dispatcher:
    """Keeps every live forward actor ``ahead`` batches ahead and hands out the rest as results come back.

    A batch whose forward or read actor is lost (its node died) goes back to the queue, and that actor is
    dropped. The run fails only when every forward actor (or every reader) is lost, when an actor cannot start
    (its error is shown), or when one batch failed three times.
    """

    def __init__(self, actors: list[Any], readers: list[Any], batches: list[np.ndarray], sources: list[str],
                 ahead: int) -> None:
        self.actors, self.readers = dict(enumerate(actors)), dict(enumerate(readers))
        self.todo = list(reversed(batches))  # popped from the end: first batches first
        self.sources, self.ahead = sources, ahead
        self.pending: dict[Any, tuple[int, np.ndarray]] = {}
        self.load = dict.fromkeys(self.actors, 0)
        self.failures: dict[int, int] = {}
        self.sent = 0
        self.paused: Callable[[], bool] = lambda: False

    def _send(self, actor: int, batch: np.ndarray) -> None:
        items: Any = {"index": batch, "path": np.asarray([self.sources[i] for i in batch], dtype=object)}
        if self.readers:  # round robin: a reader's batches pass to any forward actor
            readers = sorted(self.readers)
            items = self.readers[readers[self.sent % len(readers)]].read.remote(items)
        self.sent += 1
        self.pending[self.actors[actor].compute.remote(items)] = (actor, batch)
        self.load[actor] += 1

    def _fill(self) -> None:
        """One batch at a time to the least loaded actor, so that a short run is spread over every actor;
        nothing while the cluster's head is silent (a lost head ends the run: work sent then is lost)."""
        while self.todo and self.actors and not self.paused():
            actor = min(self.actors, key=lambda a: self.load[a])
            if self.load[actor] >= self.ahead:
                return
            self._send(actor, self.todo.pop())

    def results(self) -> Iterator[dict[str, Any]]:
        """Yields each finished batch's result rows (in the order they finish)."""
        import ray
        from ray.exceptions import ObjectLostError, RayActorError, WorkerCrashedError

        while self.pending or self.todo:
            self._fill()
            if not self.pending:  # the head is silent: wait (the head watch ends the run if it stays so)
                time.sleep(0.2)
                continue
            ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=1.0)
            if not ready:
                continue
            actor, batch = self.pending.pop(ready[0])
            self.load[actor] -= 1
            try:
                result = ray.get(ready[0])
            except RayActorError as error:  # an actor is gone: its node died, or it could not start
                if error.actor_init_failed:
                    raise SettingsError(f"a Ray actor could not start: {_last_line(error)}") from None
                self._drop(error.actor_id)
                self._retry(batch, error)
            except (ObjectLostError, WorkerCrashedError) as error:  # a read batch or a process was lost
                self._retry(batch, error)
            else:
                yield result

    def _drop(self, actor_id: str | None) -> None:
        for pool, what in ((self.actors, "forward actor"), (self.readers, "reader")):
            for key, handle in list(pool.items()):
                if handle._actor_id.hex() == actor_id:
                    del pool[key]
                    if not pool:
                        raise RuntimeError(f"every {what} of the run was lost (their nodes died)")

    def _retry(self, batch: np.ndarray, error: BaseException) -> None:
        key = int(batch[0])
        self.failures[key] = self.failures.get(key, 0) + 1
        if self.failures[key] > 3:
            raise RuntimeError(f"a batch failed {self.failures[key]} times on the cluster: {_last_line(error)}")
        self.todo.append(batch)


def run_ray(sources: list[str], out: str | os.PathLike[str], config: ExtractConfig, cluster: RayCluster, *,
            resume: bool = False, on_progress: Callable[[int, int], None] | None = None) -> ExtractSummary:
    """:func:`featuremaps.batch.run_extract` on a Ray cluster (see the module docstring) that ``cluster`` has
    joined, its forward actors starting; ``sources`` are absolute."""
    import ray

    model = load_model(config.model, weights=config.weights)  # a wrong model, layer or store stops the actors
    info = model_info(model)
    layers = layer_table(model, config.layers)
    del model
    names = [entry.name for entry in layers]
    store = Store(out)
    manifest = make_manifest(config, info, layers, sources)
    todo = store.open(manifest, sources, resume=resume)
    indices, expected = shard_plan(todo, config.shard_size, len(sources))
    zarr_write = open_maps(store, layers, len(sources), config.precision != "fp32") if config.pool == "none" else None
    collector = ShardCollector(store, manifest, expected, config, zarr_write)
    nodes = _Nodes()
    stages = {"setup": 0.0, "waiting for results": 0.0, "writing": 0.0}
    order = np.asarray(indices, dtype=np.int64)
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    readers = cluster.start_readers(info.input.to_dict()) if cluster.readers_per_actor else []
    dispatcher = _Dispatcher(cluster.actors, readers, batches, sources, max(2, cluster.readers_per_actor + 1))
    stages["setup"] = time.perf_counter() - cluster.started
    done = 0
    lock = threading.Lock()
    head = ray.get_runtime_context().gcs_address

    def written() -> str:
        finished = manifest.shards - len(todo) + collector.written
        return f"{finished} of {manifest.shards} shards"

    with store.running(manifest), _HeadWatch(head, store, manifest, lock, written) as watch:
        dispatcher.paused = watch.silent.is_set
        clock = time.perf_counter()
        for batch in dispatcher.results():
            now = time.perf_counter()
            stages["waiting for results"] += now - clock
            good, summaries, bad = _split(batch, names)
            with lock:
                collector.add(good, summaries if good else None, bad)
            nodes.add(batch)
            done += len(good) + len(bad)
            if on_progress is not None:
                on_progress(done, len(indices))
            clock = time.perf_counter()
            stages["writing"] += clock - now
        collector.close()
    addresses = {str(n["NodeID"]): str(n.get("NodeManagerAddress", "?")) for n in ray.nodes()}
    seconds = time.perf_counter() - cluster.started
    errors = store_errors(store, manifest)
    summary = ExtractSummary(str(store.root), len(sources), len(sources) - errors, errors, manifest.shards,
                             manifest.shards - len(todo), round(seconds, 3),
                             round(len(indices) / seconds, 2) if seconds else 0.0, layers=names,
                             seconds_by_stage={k: round(v, 3) for k, v in stages.items()},
                             shards_redone=redone_shards(store), nodes=nodes.summary(addresses))
    store.finalise(manifest, summary.to_dict())
    return summary

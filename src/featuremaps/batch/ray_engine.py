"""The same extraction on a Ray cluster (``pip install 'featuremaps[ray]'``), on Ray actors.

Plan: the driver checks the model, the layers and the store, connects, and at once starts one forward actor
per CPU of the cluster (per GPU when it has GPUs): Python, torch, the model. The driver cuts the images to do into batches and
keeps each actor two batches ahead, so an actor that finishes takes the next batch at once and the nodes end
together. Each actor reads its own batches (as the local engine's threads do on a CPU); with ``--decode
workers`` or ``device``, ``--workers N`` reader actors per forward actor, spread over the cluster, read them
ahead of it (and the actor is kept N + 1 batches ahead). Reading is featuremaps' own
:func:`~featuremaps.batch.decode.read_item` (hash, header checks, decode or a JPEG's bytes for the device);
the actor decodes deferred JPEGs on its device and runs the truncated graph with the reductions inside
(:func:`~featuremaps.batch.forward.device_forward`, the local engine's own); only per-image summaries come
back, and the driver writes the same store, shard by shard, with the same resume rules. Every result row says
which node read and computed it: the summary counts rows and seconds per node.

Faults: a lost node's actors (forward or reader) are dropped and their batches go to the others, so the
store is the same; while the head (the cluster's control plane) does not answer no new batch is sent, and a
lost head ends the run within seconds with the manifest ``failed`` and what was done; ``--resume`` continues
on a new cluster. Ray's own log lines go to stderr, never into ``--json``.

Point it at a cluster with ``--ray-address HEAD:6379`` (or ``auto`` on a node of the cluster); without an
address a private Ray starts on this machine, on the loopback interface only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.decode import assemble, read_item
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
from featuremaps.errors import SettingsError
from featuremaps.features.info import model_info
from featuremaps.features.inputs import ModelInput
from featuremaps.models.registry import load_model

__all__ = ["run_ray"]


_ITEM_KEYS = ("index", "path", "reason", "width", "height", "sha256")


def _decode_batch(batch: dict[str, np.ndarray], model_input: dict[str, Any], defer_jpeg: bool) -> dict[str, Any]:
    """Read, hash and check each file (:func:`~featuremaps.batch.decode.read_item`); decoded
    images come back as uint8 arrays, deferred JPEGs as their bytes, unreadable files with the reason."""
    started = time.perf_counter()
    frame = ModelInput.from_dict(model_input)
    items = [read_item(int(index), str(path), frame, defer_jpeg=defer_jpeg)
             for index, path in zip(batch["index"], batch["path"])]
    blank = np.zeros(frame.shape, np.uint8)
    rows = len(items)
    return {
        "read_node": np.asarray([_node_id()] * rows, dtype=object),
        "read_seconds": np.full(rows, (time.perf_counter() - started) / max(rows, 1)),
        **{key: np.asarray([item.get(key, "" if key in ("reason", "sha256") else 0) for item in items],
                           dtype=object if key in ("path", "reason", "sha256") else None) for key in _ITEM_KEYS},
        "deferred": np.asarray(["jpeg" in item for item in items]),
        "image": np.stack([item["tensor"].numpy() if "tensor" in item else blank for item in items]),
        "jpeg": np.asarray([item["jpeg"].numpy().tobytes() if "jpeg" in item else b"" for item in items],
                           dtype=object),
    }


class ReadActor:
    """Ray actor (``--decode workers`` or ``device``): reads batches ahead of the forward actors, as the local
    engine's worker processes do. A process that lives for the run (a task per batch would start a process,
    and import torch, again and again); one thread, as it takes no CPU of Ray's."""

    OPTIONS: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0, "num_cpus": 0,
                               "scheduling_strategy": "SPREAD"}

    def __init__(self, model_input: dict[str, Any], defer_jpeg: bool) -> None:
        torch.set_num_threads(1)
        self.model_input, self.defer_jpeg = model_input, defer_jpeg

    def read(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """:func:`_decode_batch` of one batch."""
        return _decode_batch(batch, self.model_input, self.defer_jpeg)


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


def _items(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """A decoded Ray batch back into the items :func:`~featuremaps.batch.decode.assemble` takes."""
    items = []
    for row in range(len(batch["index"])):
        item: dict[str, Any] = {"index": int(batch["index"][row]), "path": str(batch["path"][row])}
        if batch["reason"][row]:
            item["reason"] = str(batch["reason"][row])
        else:
            item.update(width=int(batch["width"][row]), height=int(batch["height"][row]),
                        sha256=str(batch["sha256"][row]))
            if bool(batch["deferred"][row]):
                item["jpeg"] = torch.frombuffer(bytearray(batch["jpeg"][row]), dtype=torch.uint8)
            else:
                item["tensor"] = torch.from_numpy(np.ascontiguousarray(batch["image"][row]))
        items.append(item)
    return items


class FeatureActor:
    """Ray actor: holds the model; decodes deferred JPEGs on its device, runs the truncated graph with
    the reductions inside, and returns per-image summaries (the local engine's very functions)."""

    # Ray's actor options for it: a lost actor is not restarted (its batches go to the others)
    OPTIONS: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0}

    def __init__(self, model: str, weights: str | None, layers: Sequence[str], config: dict[str, Any],
                 read: dict[str, Any] | None = None) -> None:
        self.read = read  # without reader actors: this actor reads and decodes its own batches
        self.node = _node_id()
        self.config = ExtractConfig(**config)
        self.device = torch.device(self.config.device)
        self.model = load_model(model, weights=weights).to(self.device).to(memory_format=torch.channels_last)
        self.layers = layer_table(self.model, layers)
        self.forward = device_forward(self.model, self.layers, self.config)
        self.model_input = model_info(self.model).input
        self.shapes = {entry.name: tuple(entry.output_shape) for entry in self.layers}

    def compute(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch of ``index``/``path`` (read here) or of read items (from :func:`_decode_batch`) -> one row
        per image: its summaries by ``layer|key``, ``ok``/``reason``, and which node read and computed it."""
        if self.read is not None:
            batch = _decode_batch(batch, **self.read)
        started = time.perf_counter()
        assembled = assemble(_items(batch), self.model_input, self.device)
        bad = {index: reason for index, _, reason in assembled.bad}
        order = [int(index) for index in batch["index"]]
        good_rows = {item["index"]: row for row, item in enumerate(assembled.good)}
        out: dict[str, Any] = {"index": batch["index"], "path": batch["path"],
                               "ok": np.asarray([index in good_rows for index in order]),
                               "reason": np.asarray([bad.get(index, "") for index in order], dtype=object),
                               "width": batch["width"], "height": batch["height"], "sha256": batch["sha256"],
                               "read_node": batch["read_node"], "read_seconds": batch["read_seconds"],
                               "node": np.asarray([self.node] * len(order), dtype=object)}
        if assembled.batch is None:
            out["forward_seconds"] = np.full(len(order), (time.perf_counter() - started) / max(len(order), 1))
            return out
        x = assembled.batch.contiguous(memory_format=torch.channels_last)
        with autocast_for(self.config, self.device):
            reduced = self.forward(x)
        summaries = host_summaries(reduced, self.shapes, self.config.pool)
        rows = np.asarray([good_rows.get(index, -1) for index in order])
        present = rows >= 0
        for name, part in summaries.items():
            for key, value in part.items():
                if value is None or key == "positions":
                    continue
                value = np.asarray(value)
                full = np.zeros((len(order), *value.shape[1:]), dtype=value.dtype)
                full[present] = value[rows[present]]
                out[f"{name}|{key}"] = full
            out[f"{name}|positions"] = np.full(len(order), part["positions"])
        out["forward_seconds"] = np.full(len(order), (time.perf_counter() - started) / max(len(order), 1))
        return out


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


@contextlib.contextmanager
def _stdout_to_stderr() -> Any:
    """Ray's processes and threads write to this process's stdout (lines such as "Raylet is terminated"): while
    Ray runs, file descriptor 1 points at stderr, so that stdout carries only featuremaps' own output."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable stdout: nothing to protect
        yield
        return
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


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
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

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


_LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_RUN_TOKEN = secrets.token_hex(32)  # this process's private Rays: token auth, with no file written


@contextlib.contextmanager
def _private_ray(private: bool) -> Any:
    """For a private Ray (no ``--ray-address``), two settings that Ray's processes read from the environment,
    set for the run and put back after it:

    - every Ray server binds 127.0.0.1 and the node reports it: Ray does so when
      ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which this process also read when it imported Ray (that value is
      set and put back too: a later run that joins a real cluster must announce a reachable address);
    - token authentication (other users of this machine cannot send it work) with a token held in the
      environment: left to itself, Ray writes a new ``~/.ray/auth_token``, which stays after the run and keeps
      this machine from joining a cluster that has another token.
    """
    if not private:
        yield
        return
    constants: Any = sys.modules.get("ray._private.ray_constants")  # imported with ray by run_ray
    variables = {_LOOPBACK_VARIABLE: "0", "RAY_AUTH_TOKEN": _RUN_TOKEN}  # Ray turns token mode on itself
    saved = {name: os.environ.get(name) for name in variables}
    saved_constant = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ.update(variables)
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if constants is not None and saved_constant is not None:
            constants.ENABLE_RAY_CLUSTER = saved_constant


def _connect(config: ExtractConfig) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    import ray

    address = config.ray_address  # ExtractConfig refuses ray:// (Ray Client)
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.WARNING)
    if address is None:  # a private Ray on this machine, on the loopback interface (_private_ray)
        ray.init(address="local", include_dashboard=False,
                 log_to_driver=False, _node_ip_address="127.0.0.1")
    else:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise SettingsError(f"--ray-address {address}: no Ray cluster answers there "
                                f"({' '.join(str(error).split())[:300]})") from None
    return True


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


def run_ray(sources: list[str], out: str | os.PathLike[str], config: ExtractConfig, *, resume: bool = False,
            on_progress: Callable[[int, int], None] | None = None) -> ExtractSummary:
    """:func:`featuremaps.batch.run_extract` on a Ray cluster (see the module docstring); ``sources`` are
    absolute."""
    private = config.ray_address is None
    try:
        import ray
    except ImportError:
        raise SettingsError("the ray engine needs the ray extra: pip install 'featuremaps[ray]'") from None
    started = time.perf_counter()
    model = load_model(config.model, weights=config.weights)  # a wrong model, layer or store fails before Ray starts
    info = model_info(model)
    layers = layer_table(model, config.layers)
    del model
    names = [entry.name for entry in layers]
    read = {"model_input": info.input.to_dict(), "defer_jpeg": config.decode_on_device}
    store = Store(out)
    manifest = make_manifest(config, info, layers, sources)
    todo = store.open(manifest, sources, resume=resume)
    indices, expected = shard_plan(todo, config.shard_size, len(sources))
    zarr_write = open_maps(store, layers, len(sources), config.precision != "fp32") if config.pool == "none" else None
    collector = ShardCollector(store, manifest, expected, config, zarr_write)
    nodes = _Nodes()
    stages = {"setup": 0.0, "waiting for results": 0.0, "writing": 0.0}
    cuda = config.device.startswith("cuda")
    # readers beside the actors as the local engine's worker processes: for --decode workers or device
    readers_per_actor = config.workers if config.decode_place in ("workers", "device") else 0
    actors: list[Any] = []
    readers: list[Any] = []
    with _stdout_to_stderr(), _private_ray(private):
        started_ray = _connect(config)
        try:
            resources = ray.cluster_resources()
            count = max(1, int(resources.get("GPU", 0))) if cuda else max(1, int(resources.get("CPU", 1)))
            actor_class = ray.remote(FeatureActor).options(
                **FeatureActor.OPTIONS, num_gpus=1 if cuda else 0, num_cpus=0 if cuda else 1)
            actor_config = {**asdict(config), "device": "cuda" if cuda else "cpu", "engine": "local",
                            "ray_address": None, "compile": config.compile}
            actors = [actor_class.remote(model=config.model, weights=config.weights, layers=names,
                                         config=actor_config, read=None if readers_per_actor else read)
                      for _ in range(count)]
            order = np.asarray(indices, dtype=np.int64)
            batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
            reader_class = ray.remote(ReadActor).options(**ReadActor.OPTIONS)
            readers = [reader_class.remote(**read) for _ in range(count * readers_per_actor)]
            dispatcher = _Dispatcher(actors, readers, batches, sources, max(2, readers_per_actor + 1))
            stages["setup"] = time.perf_counter() - started
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
        finally:
            for handle in [*actors, *readers]:  # the cluster's CPUs are free for the next job at once
                with contextlib.suppress(Exception):
                    ray.kill(handle)
            if started_ray:
                ray.shutdown()
    seconds = time.perf_counter() - started
    errors = store_errors(store, manifest)
    summary = ExtractSummary(str(store.root), len(sources), len(sources) - errors, errors, manifest.shards,
                             manifest.shards - len(todo), round(seconds, 3),
                             round(len(indices) / seconds, 2) if seconds else 0.0, layers=names,
                             seconds_by_stage={k: round(v, 3) for k, v in stages.items()},
                             shards_redone=redone_shards(store), nodes=nodes.summary(addresses))
    store.finalise(manifest, summary.to_dict())
    return summary

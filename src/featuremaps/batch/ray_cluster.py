"""The Ray engine's start, without torch: join (or start) Ray and start the forward actors.

:func:`~featuremaps.batch.run_extract` enters :class:`RayCluster` before it imports the rest of the engine, so the
actors import torch and build the model in their own processes (3 to 4 s each, on their nodes) while this
process imports torch and checks the model, the layers and the store (about 3 s), instead of after it. The
actors are shells here: their work (:mod:`featuremaps.batch.ray_work`) is imported in their processes only. A
check that fails in the driver (a layer that does not exist, a store that is not featuremaps') stops the actors
again: leaving :class:`RayCluster` kills every actor of the run, and shuts down a Ray that it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from types import TracebackType
from typing import Any

import numpy as np

from featuremaps.batch.config import ExtractConfig
from featuremaps.errors import SettingsError

__all__ = ["FeatureActor", "RayCluster", "ReadActor"]


class FeatureActor:
    """Ray actor: the model's forward pass on one CPU (or GPU) of the cluster; a shell, so that the driver
    needs no torch to start it (its work, :class:`~featuremaps.batch.ray_work.FeatureWork`, is imported in the
    actor's own process)."""

    # Ray's actor options for it: a lost actor is not restarted (its batches go to the others)
    OPTIONS: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0}

    def __init__(self, model: str, weights: str | None, layers: list[str], config: dict[str, Any],
                 reads: bool) -> None:
        from featuremaps.batch.ray_work import FeatureWork  # torch: in this actor's process

        self.work = FeatureWork(model, weights, layers, config, reads)

    def compute(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch of ``index``/``path`` (read here) or of read items -> one row per image: its summaries by
        ``layer|key``, ``ok``/``reason``, and which node read and computed it."""
        return self.work.compute(batch)


class ReadActor:
    """Ray actor (``--decode workers`` or ``device``): reads batches ahead of the forward actors, as the local
    engine's worker processes do. A process that lives for the run (a task per batch would start a process,
    and import torch, again and again); one thread, as it takes no CPU of Ray's."""

    OPTIONS: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0, "num_cpus": 0,
                               "scheduling_strategy": "SPREAD"}

    def __init__(self, model_input: dict[str, Any], defer_jpeg: bool) -> None:
        from featuremaps.batch.ray_work import BatchReader  # torch: in this actor's process

        self.reader = BatchReader(model_input, defer_jpeg)

    def read(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """One batch read, hashed, checked and decoded (or its JPEGs' bytes for the device)."""
        return self.reader.read(batch)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
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


_LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_RUN_TOKEN = secrets.token_hex(32)  # this process's private Rays: token auth, with no file written


@contextlib.contextmanager
def _private_ray(private: bool) -> Iterator[None]:
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
    constants: Any = sys.modules.get("ray._private.ray_constants")  # imported with ray by RayCluster
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


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server (Ray's head is one) answers with its own
# SETTINGS frame (9 bytes, type 4 in the fourth)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


NOT_GRPC = "a server answers there, but it is not a Ray head (it does not speak gRPC)"


def unanswered(address: str, timeout: float, grpc: bool = False) -> str | None:
    """Why nothing accepts a TCP connection at ``HOST:PORT`` within ``timeout`` seconds (None: something does);
    with ``grpc``, why what answers is not a gRPC server, as a Ray head is. None for an address without a port
    (``auto``: Ray finds the cluster itself)."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as connection:
            if not grpc:
                return None
            connection.sendall(_HTTP2_PREFACE)
            answer = b""
            while len(answer) < 9:
                chunk = connection.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
    except TimeoutError:
        return f"no answer within {timeout:.0f} s"
    except OSError as error:
        return error.strerror or type(error).__name__
    if len(answer) == 9 and answer[3] == 4:
        return None
    return NOT_GRPC


def _connect(config: ExtractConfig) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    import ray

    address = config.ray_address  # ExtractConfig refuses ray:// (Ray Client)
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.WARNING)
    if address is None:  # a private Ray on this machine, on the loopback interface (_private_ray)
        # its token is ours (_private_ray): Ray's warning that it turned token authentication on says nothing new
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 _node_ip_address="127.0.0.1")
    else:
        # Ray would retry a port where no Ray answers for minutes, saying nothing: ask once first (over TLS, when
        # Ray is set to use it, only whether the port answers)
        reason = unanswered(address, timeout=5.0, grpc=os.environ.get("RAY_USE_TLS", "0").lower() not in ("1", "true"))
        if reason == NOT_GRPC:
            raise SettingsError(f"--ray-address {address}: {reason}; a head listens on port 6379 unless it was "
                                "started with another --port (8265 is its dashboard)")
        if reason is not None:
            raise SettingsError(f"--ray-address {address}: no Ray cluster answers there ({reason}); start one "
                                "with 'ray start --head', or give its head's address (HEAD_IP:6379)")
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise SettingsError(f"--ray-address {address}: no Ray cluster answers there "
                                f"({' '.join(str(error).split())[:300]})") from None
    return True


class RayCluster:
    """A run's hold on Ray: entering joins the cluster (or starts a private Ray on 127.0.0.1) and starts one
    forward actor per CPU of the cluster (per GPU with ``--device cuda``); leaving kills the run's actors (the
    cluster's CPUs are free for the next job at once) and shuts down a Ray it started. While inside, Ray's
    own output goes to stderr.

    Attributes: ``actors`` and ``readers`` (actor handles), ``started`` (``time.perf_counter()`` on entering:
    the run's clock starts there).
    """

    def __init__(self, config: ExtractConfig) -> None:
        if config.engine != "ray":
            raise SettingsError(f"RayCluster is for engine ray; got {config.engine!r}")
        self.config = config
        self.actors: list[Any] = []
        self.readers: list[Any] = []
        self.started = 0.0
        self._exit = contextlib.ExitStack()
        self._started_ray = False

    def __enter__(self) -> RayCluster:
        self.started = time.perf_counter()
        try:
            import ray
        except ImportError:
            raise SettingsError("the ray engine needs the ray extra: pip install 'featuremaps[ray]'") from None
        with contextlib.ExitStack() as stack:
            stack.enter_context(_stdout_to_stderr())
            stack.enter_context(_private_ray(self.config.ray_address is None))
            self._started_ray = _connect(self.config)
            stack.callback(self._stop)
            self._start_actors(ray)
            self._exit = stack.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._exit.close()

    def _start_actors(self, ray: Any) -> None:
        config = self.config
        cuda = config.device.startswith("cuda")
        resources = ray.cluster_resources()
        if cuda and not resources.get("GPU"):
            raise SettingsError(f"--device {config.device}: the Ray cluster has no GPU "
                                f"({int(resources.get('CPU', 0))} CPUs); use --device cpu")
        count = max(1, int(resources.get("GPU", 0))) if cuda else max(1, int(resources.get("CPU", 1)))
        actor_class = ray.remote(FeatureActor).options(**FeatureActor.OPTIONS, num_gpus=1 if cuda else 0,
                                                      num_cpus=0 if cuda else 1)
        actor_config = {**asdict(config), "device": "cuda" if cuda else "cpu", "engine": "local",
                        "ray_address": None}
        # with --decode workers or device, reader actors read for them (started by start_readers)
        reads = self.readers_per_actor == 0
        self.actors = [actor_class.remote(model=config.model, weights=config.weights, layers=list(config.layers),
                                          config=actor_config, reads=reads) for _ in range(count)]

    @property
    def readers_per_actor(self) -> int:
        """Reader actors per forward actor: ``--workers`` with ``--decode workers`` or ``device`` (as the local
        engine's worker processes), none otherwise (each forward actor reads its own batches)."""
        return self.config.workers if self.config.decode_place in ("workers", "device") else 0

    def start_readers(self, model_input: dict[str, Any]) -> list[Any]:
        """Start :attr:`readers_per_actor` reader actors per forward actor, spread over the cluster."""
        import ray

        reader_class = ray.remote(ReadActor).options(**ReadActor.OPTIONS)
        self.readers = [reader_class.remote(model_input, self.config.decode_on_device)
                        for _ in range(len(self.actors) * self.readers_per_actor)]
        return self.readers

    def _stop(self) -> None:
        import ray

        for handle in [*self.actors, *self.readers]:  # the cluster's CPUs are free for the next job at once
            with contextlib.suppress(Exception):
                ray.kill(handle)
        if self._started_ray:
            ray.shutdown()

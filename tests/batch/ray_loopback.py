"""A real multi-node Ray cluster on this machine's loopback interface only, for the cluster tests.

Every node is a separate ``ray start`` (head + workers), each in its own process session so that a node can
be lost as a machine is lost: all of its processes killed at once. Ray is kept hermetic (its own HOME and
temp dir: a token in ``~/.ray`` from another run cannot break it) and on 127.0.0.1: with
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` every Ray server binds the loopback address; ``ray start --address``
then refuses to add a worker, so the workers are started through a wrapper that lets that one check pass
(their own processes still see the variable). :meth:`LoopbackCluster.check_loopback` verifies every node and
every listening socket before a test sends any work.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

_START = """
import sys, types
import ray._private.ray_constants as constants
import ray.scripts.scripts as scripts
allowed = types.ModuleType("ray_constants_for_start")
allowed.__dict__.update(vars(constants))
allowed.ENABLE_RAY_CLUSTER = True  # only `ray start --address`'s own check sees this
scripts.ray_constants = allowed
sys.exit(scripts.main())
"""

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LoopbackCluster:
    """``nodes`` Ray nodes of ``cpus`` CPUs each, all on 127.0.0.1."""

    def __init__(self, root: Path, nodes: int = 3, cpus: int = 1) -> None:
        self.root, self.count, self.cpus = root, nodes, cpus
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.temp = Path(f"/tmp/fmray-{os.getpid()}-{self.port}")  # short: Ray's socket paths are limited
        self.env = {**os.environ, "HOME": str(home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                    "RAY_USAGE_STATS_ENABLED": "0"}
        for variable in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            self.env.pop(variable, None)  # no token or address from outside the test
        self.sessions: list[int] = []  # one process session per node: index 0 is the head

    def _ray(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-c", _START, "start", *args, "--disable-usage-stats",
                               "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}", "--num-gpus=0"],
                              env=self.env, capture_output=True, text=True, timeout=120, start_new_session=True)
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> LoopbackCluster:
        before = {p.pid for p in psutil.process_iter()}
        self._ray("--head", f"--port={self.port}", f"--temp-dir={self.temp}", "--include-dashboard=false")
        self.sessions.append(self._new_session(before))
        for _ in range(self.count - 1):
            self.add_node()
        self.wait_for_nodes(self.count)
        return self

    def add_node(self) -> int:
        """Start one more worker node (:meth:`wait_for_nodes` waits for it to join); its index."""
        before = {p.pid for p in psutil.process_iter()}
        self._ray(f"--address={self.address}")
        self.sessions.append(self._new_session(before))
        return len(self.sessions) - 1

    @staticmethod
    def _new_session(before: set[int]) -> int:
        """The session of the raylet this ``ray start`` left running (each start has its own session)."""
        for _ in range(50):
            for process in psutil.process_iter(["name"]):
                if process.pid not in before and process.info["name"] == "raylet":
                    return os.getsid(process.pid)
            time.sleep(0.2)
        raise RuntimeError("the new node's raylet did not start")

    def processes(self, node: int) -> list[psutil.Process]:
        """Every process of a node: its session's, and the workers its raylet started."""
        found = {}
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == self.sessions[node]:
                    found[process.pid] = process
                    for child in process.children(recursive=True):
                        found[child.pid] = child
            except (OSError, psutil.Error):
                continue
        return list(found.values())

    def driver(self, code: str, timeout: float = 120) -> str:
        """Run ``code`` in a Ray driver connected to the cluster; its stdout."""
        script = f"import ray\nray.init(address={self.address!r}, log_to_driver=False)\n{code}\nray.shutdown()\n"
        done = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"driver failed: {done.stderr[-2000:]}")
        return done.stdout

    def nodes(self) -> list[dict]:
        code = ("import json\nprint(json.dumps([{'id': n['NodeID'], 'address': n['NodeManagerAddress'], "
                "'alive': n['Alive'], 'cpus': n['Resources'].get('CPU', 0)} for n in ray.nodes()]))")
        return json.loads(self.driver(code).strip().splitlines()[-1])

    def wait_for_nodes(self, alive: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(node["alive"] for node in self.nodes()) == alive:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not reach {alive} live nodes")

    def check_loopback(self) -> list[str]:
        """Every node reports 127.0.0.1 and every socket a node's process listens on is a loopback one:
        the problems found (empty when the cluster is safe to use)."""
        problems = [f"node {n['id'][:8]} reports address {n['address']}" for n in self.nodes()
                    if n["alive"] and n["address"] != "127.0.0.1"]
        for node in range(len(self.sessions)):
            for process in self.processes(node):
                try:
                    connections = process.net_connections(kind="inet")
                except (psutil.Error, OSError):
                    continue
                for connection in connections:
                    if connection.status == psutil.CONN_LISTEN and connection.laddr.ip not in LOOPBACK:
                        problems.append(f"{process.name()} (pid {process.pid}) listens on "
                                        f"{connection.laddr.ip}:{connection.laddr.port}")
        return problems

    def kill(self, node: int) -> None:
        """Lose a node as a machine is lost: every one of its processes killed at once."""
        for process in self.processes(node):
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.Error:
                continue
        psutil.wait_procs(self.processes(node), timeout=10)

    def stop(self) -> None:
        for node in range(len(self.sessions)):
            self.kill(node)
        subprocess.run(["rm", "-rf", str(self.temp)], check=False)

"""Every command of the README's command blocks runs as written, top to bottom, in an empty folder.

The blocks are the README's ``bash`` blocks and the ``$`` lines of its ``console`` blocks (the
``text`` block is the command synopsis, with placeholders; ``shell`` blocks are for other machines, such as
the nodes of a Ray cluster, and are not run). Two kinds of line are not run here:
``make ...`` (``make test`` is this suite; ``make demo`` is ``tests/test_demo.py``) and, unless
``FEATUREMAPS_README_LONG=1`` (``make readme-check``), the commands listed in ``LONG``, which take
minutes each on a 2-core machine. ``featuremaps serve`` lines are started, asked ``/api/health``
on 127.0.0.1 once they say they are ready, and stopped with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
LONG = {
    "featuremaps hierarchy builtin:objects --dataset objects": "90 s idle, up to 3 min loaded",
    "featuremaps hierarchy builtin:objects --dataset objects --where": "about 3 min",
    "featuremaps visualize --model builtin:objects --layer stage2 --channels 0-15 -o vis.png":
        "about 1 min (16 channels optimised in turn); the README's other visualize lines run",
}
"""Commands run only with FEATUREMAPS_README_LONG=1, and why."""


def readme_commands(text: str) -> list[str]:
    """The commands of the README's bash blocks and console blocks, in order, comments kept (bash drops them)."""
    commands = []
    for kind, body in re.findall(r"```(bash|console)\n(.*?)```", text, re.S):
        for line in body.splitlines():
            line = line.strip()
            if kind == "console":
                if line.startswith("$ "):
                    commands.append(line[2:])
            elif line and not line.startswith("#"):
                commands.append(line)
    return commands


def _without_comment(command: str) -> str:
    """A command as it is matched against LONG and ``make``: its comment off."""
    return command.split("#")[0].strip()


def test_the_readme_has_the_blocks_this_test_runs():
    commands = readme_commands(README.read_text())
    assert len(commands) >= 25
    assert not any("IMAGE" in c or "[--" in c for c in commands), "a synopsis line would be run: fence it as text"
    assert not any(c.startswith("ray ") or "HEAD" in c for c in commands), \
        "a cluster command would start Ray on this machine's network: fence it as shell"
    bare = {_without_comment(command) for command in commands}  # as the run matches them
    for command in LONG:
        assert command in bare, f"LONG names a command the README no longer has: {command}"


def _environment(home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's featuremaps
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "NO_COLOR": "1",
            "COLUMNS": "120"}


def _serve(command: str, folder: Path, env: dict[str, str]) -> None:
    port = int(match.group(1)) if (match := re.search(r"--port (\d+)", command)) else 8000
    process = subprocess.Popen(shlex.split(command), cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 180
        lines = []
        while time.time() < deadline:
            line = process.stderr.readline() if process.stderr else ""
            if not line and process.poll() is not None:
                break
            lines.append(line)
            if "ready on http://127.0.0.1:" in line:
                break
        assert any("ready on http://127.0.0.1:" in line for line in lines), f"{command}: never ready: {lines}"
        assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=30).json()["status"] == "ok"
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=60) == 130, f"{command}: exit {process.returncode}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.timeout(1800)
def test_every_readme_command_runs_as_written_in_an_empty_folder(tmp_path):
    folder = tmp_path / "newcomer"
    folder.mkdir()
    env = _environment(tmp_path)
    long_too = os.environ.get("FEATUREMAPS_README_LONG") == "1"
    ran, failures = [], []
    for command in readme_commands(README.read_text()):
        bare = _without_comment(command)
        if bare.startswith("make ") or (bare in LONG and not long_too):
            continue
        started = time.perf_counter()
        if bare.startswith("featuremaps serve"):
            _serve(bare, folder, env)
            ran.append((bare, time.perf_counter() - started))
            print(f"{ran[-1][1]:6.1f} s  {bare}", flush=True)
            continue
        result = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        ran.append((bare, time.perf_counter() - started))
        print(f"{ran[-1][1]:6.1f} s  {bare}", flush=True)
        output = result.stdout + result.stderr
        if result.returncode != 0 or "Traceback" in output or "unexpected" in output:
            failures.append(f"{command}\n  exit {result.returncode}: {output[-800:]}")
    assert not failures, "README commands that fail as written:\n" + "\n".join(failures)
    assert len(ran) >= 25

"""Progress on stderr for the commands: a bar for counted work (images, patches, frames)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["CountBar", "Status", "StepBars", "stderr"]

stderr = Console(stderr=True, soft_wrap=True)  # status lines are never cut at 80 columns


class CountBar:
    """``with CountBar("extract", "img") as bar: bar.update(done, total)``; the bar appears on the first update
    (after the checks that may still refuse the job) and shows the rate and the time left."""

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._entered = time.perf_counter()
        self._first = (0.0, 0)  # (time, done) of the first update

    def __enter__(self) -> CountBar:
        self._entered = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, done: int, total: int) -> None:
        if self._bar is None or self._task is None:
            self._bar = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(f"{{task.fields[speed]:.1f}} {self.unit}/s"), TimeRemainingColumn(),
                                 console=stderr)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total, speed=0.0)
            self._first = (time.perf_counter(), done)
        self._bar.update(self._task, completed=done, total=total, speed=self.rate(done))

    def rate(self, done: int) -> float:
        """Units per second: since the first update once half a second has passed, else since the job began
        (work that arrives in one update is never divided by a microsecond)."""
        now = time.perf_counter()
        since, at = self._first
        if now - since >= 0.5 and done > at:
            return (done - at) / (now - since)
        return done / max(now - self._entered, 1e-3)


class StepBars:
    """A bar per step of a long job: ``on_progress(step, done, total)`` closes the last step's bar when a new
    step begins (``with StepBars("hierarchy") as bars: hierarchy(..., on_progress=bars)``)."""

    def __init__(self, command: str) -> None:
        self.command = command
        self._step: str | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> StepBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._task = None

    def __call__(self, step: str, done: int, total: int) -> None:
        if step != self._step:
            self._close()
            self._step = step
            self._bar = Progress(TextColumn(f"{self.command}: {step}"), BarColumn(bar_width=16), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=stderr)
            self._bar.start()
            self._task = self._bar.add_task(step, total=max(total, 1))
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=max(total, 1))


class Status:
    """Status lines on stderr for the steps of a long start-up or job: ``status.step("loading torch")`` prints
    ``serve: loading torch...`` and ``status.done("ready")`` prints ``serve: ready (4.2 s)``."""

    def __init__(self, command: str) -> None:
        self.command = command
        self._start = self._last = time.perf_counter()

    def step(self, text: str) -> None:
        stderr.print(f"{self.command}: {text}...", markup=False, highlight=False)

    def note(self, text: str) -> None:
        """A line with the seconds since the last line (``demo:   made conv-diagram (1.2 s)``)."""
        now = time.perf_counter()
        stderr.print(f"{self.command}: {text} ({now - self._last:.1f} s)", markup=False, highlight=False)
        self._last = now

    @contextmanager
    def working(self) -> Iterator[Callable[[str], None]]:
        """``with status.working() as step: step("1/7 convolution")``: each step prints its line and, in a
        terminal, a spinner with the time spent on it stays under the lines until the next step."""
        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=stderr,
                            transient=True)
        task: list[TaskID] = []

        def step(text: str) -> None:
            self._last = time.perf_counter()
            progress.console.print(f"{self.command}: {text}...", markup=False, highlight=False)
            if task:
                progress.remove_task(task.pop())
            task.append(progress.add_task(f"{self.command}: {text}"))

        with progress:
            yield step

    def done(self, text: str) -> None:
        seconds = time.perf_counter() - self._start
        stderr.print(f"{self.command}: {text} ({seconds:.1f} s)", markup=False, highlight=False)

"""Truncated FX graphs: a model cut right after the layers asked for (torchvision's feature extraction idea).

A model is traced once with ``torch.fx`` (in eval mode). The tracer records, for every module
call, the graph node that holds its output: ``(module name, call number) -> node``, the same
numbering as the hooks' (a ReLU that runs twice has calls 0 and 1). For a selection, a new
graph returns those nodes and drops everything after the deepest one, so later layers are
never computed; the result is an ``nn.Module`` that ``torch.compile`` takes as it is.

In-place operations: a captured output that a later operation may change in place (ResNet's
``ReLU(inplace=True)`` after ``bn1``, ``out += identity``) is protected: the operations after it
get a copy, and the graph returns the original, untouched values (and, with gradients, the
original is what the rest of the model was computed from, through the copy).

Threads: while ``torch.fx`` traces, it replaces ``nn.Module.__call__`` for the whole process, so
a forward pass of *any* module in another thread would run into the tracer ("... is not
installed as a submodule"). A trace therefore holds :data:`FORWARD_PASSES` exclusively, and code
that runs models in threads (the explorer's jobs) holds it shared (:func:`forward_passes`).
Traces are made once per model, so the exclusive moments are rare.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from featuremaps.features.hooks import model_lock
from featuremaps.features.info import structure_key

__all__ = ["FORWARD_PASSES", "OUTPUT", "SharedExclusiveLock", "TracedModel", "forward_passes", "traced",
           "truncated_module"]

OUTPUT = "__output__"
"""The key of the model's own output in a graph built with ``with_output``."""

_VIEW_METHODS = frozenset({"view", "reshape", "flatten", "transpose", "permute", "expand", "squeeze", "unsqueeze",
                           "contiguous", "detach", "narrow", "select", "unflatten", "t", "view_as", "expand_as",
                           "chunk", "split", "unbind", "movedim", "swapaxes", "__getitem__", "as_strided"})
_VIEW_FUNCTIONS = frozenset({torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.squeeze,
                             torch.unsqueeze, torch.narrow, torch.chunk, torch.split, torch.unbind, torch.t,
                             torch.movedim, torch.swapaxes, operator.getitem, torch.select})
_INPLACE_OPERATORS = frozenset({operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                                operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor,
                                operator.ilshift, operator.irshift, operator.imatmul, operator.setitem})


class SharedExclusiveLock:
    """Many holders at once (:meth:`shared`) or one alone (:meth:`exclusive`); writers go first.

    Both nest in one thread; a thread that holds it shared and asks for it exclusively lets go of
    its shared holds while it waits (so two such threads cannot wait for each other), and takes
    them back afterwards.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._writer_depth = 0
        self._waiting_writers = 0
        self._mine = threading.local()

    def _held(self) -> int:
        return getattr(self._mine, "shared", 0)

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._condition:
            if self._writer != me and self._held() == 0:
                while self._writer is not None or self._waiting_writers:
                    self._condition.wait()
            self._readers += 1
            self._mine.shared = self._held() + 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._mine.shared = self._held() - 1
                self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._condition:
            held = self._held() if self._writer != me else 0
            self._readers -= held  # let go of this thread's own shared holds while it waits
            self._waiting_writers += 1
            self._condition.notify_all()
            while (self._writer is not None and self._writer != me) or self._readers:
                self._condition.wait()
            self._waiting_writers -= 1
            self._writer = me
            self._writer_depth += 1
        try:
            yield
        finally:
            with self._condition:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    self._writer = None
                self._readers += held
                self._condition.notify_all()


FORWARD_PASSES = SharedExclusiveLock()
"""Held shared by threads that run models, exclusively by an FX trace (see the module docstring)."""


def forward_passes() -> contextlib.AbstractContextManager[None]:
    """Hold this around model work in a thread that runs beside others (a server's request)."""
    return FORWARD_PASSES.shared()


class _RecordingTracer(fx.Tracer):
    """``torch.fx.Tracer`` that notes the output node of every module call, in call order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple[str, int], fx.Node] = {}
        self._counts: dict[str, int] = {}

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        out = super().call_module(m, forward, args, kwargs)
        name = self.path_of_module(m)
        call = self._counts.get(name, 0)
        self._counts[name] = call + 1
        node = _first_proxy_node(out)
        if node is not None:
            self.calls[(name, call)] = node
        return out


def _first_proxy_node(value: Any) -> fx.Node | None:
    if isinstance(value, fx.Proxy):
        return value.node
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            node = _first_proxy_node(item)
            if node is not None:
                return node
    return None


@dataclass
class TracedModel:
    """A model's traced graph and where each module call's output is in it."""

    root: nn.Module
    graph: fx.Graph
    calls: dict[tuple[str, int], fx.Node]


_TRACES: weakref.WeakKeyDictionary[nn.Module, tuple[int, TracedModel | Exception]] = weakref.WeakKeyDictionary()


def traced(model: nn.Module) -> TracedModel:
    """The model's FX trace (made once, in eval mode, then cached while its layers stay the same:
    :func:`~featuremaps.features.info.structure_key`).

    Raises:
        Exception: whatever ``torch.fx`` raised for a model it cannot trace (data-dependent
            control flow, for example); the caller falls back to hooks.
    """
    key = structure_key(model)
    stored = _TRACES.get(model)
    cached = stored[1] if stored is not None and stored[0] == key else None
    if cached is None:
        with FORWARD_PASSES.exclusive(), model_lock(model):  # no forward pass of any model runs meanwhile
            cached = _trace_now(model, key)
    if isinstance(cached, Exception):
        raise cached
    return cached


def _trace_now(model: nn.Module, key: int) -> TracedModel | Exception:
    """Trace ``model`` unless another thread did it first (the caller holds the locks); a failure is
    returned (and cached) as the exception."""
    stored = _TRACES.get(model)
    if stored is not None and stored[0] == key:
        return stored[1]
    modes = {module: module.training for module in model.modules()}
    tracer = _RecordingTracer()
    cached: TracedModel | Exception
    try:
        model.eval()
        graph = tracer.trace(model)
        cached = TracedModel(model, graph, dict(tracer.calls))
    except Exception as error:  # noqa: BLE001 - any tracing failure means: use hooks
        cached = error
    finally:
        for module, training in modes.items():
            module.train(training)
    _TRACES[model] = (key, cached)
    return cached


def _aliases(graph: fx.Graph) -> dict[fx.Node, set[fx.Node]]:
    """For each node, the earlier nodes whose memory it may share (itself included)."""
    bases: dict[fx.Node, set[fx.Node]] = {}
    for node in graph.nodes:
        shared = {node}
        first = node.args[0] if node.args else None
        is_view = ((node.op == "call_method" and node.target in _VIEW_METHODS)
                   or (node.op == "call_function" and node.target in _VIEW_FUNCTIONS))
        if is_view and isinstance(first, fx.Node):
            shared |= bases.get(first, {first})
        bases[node] = shared
    return bases


def _mutated(node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node | None:
    """The argument ``node`` changes in place, if any."""
    first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if first is None:
        return None
    if node.op == "call_module":
        return first if getattr(modules.get(str(node.target)), "inplace", False) else None
    if node.kwargs.get("inplace") is True:
        return first
    if node.op == "call_function" and node.target in _INPLACE_OPERATORS:
        return first
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if node.op in ("call_method", "call_function") and name.endswith("_") and not name.startswith("_"):
        return first
    return None


def truncated_module(trace: TracedModel, wanted: Sequence[tuple[str, tuple[str, int]]], *,
                     with_output: bool = False, reduce: Callable[[torch.Tensor], Any] | None = None) -> fx.GraphModule:
    """A module returning ``{key: output of module call}`` for ``wanted`` ``(key, (module, call))`` pairs.

    Without ``with_output`` every operation after the deepest wanted node is dropped (as a
    forward pass stopped there would). With ``reduce``, each output is ``reduce(output)``,
    computed right after it (inside the graph, so it compiles with the rest).
    """
    graph = fx.Graph()
    copies: dict[fx.Node, fx.Node] = {}
    original_output = None
    for node in trace.graph.nodes:
        if node.op == "output":
            original_output = node.args[0]
            continue
        copies[node] = graph.node_copy(node, lambda n: copies[n])
    targets = {key: copies[trace.calls[call]] for key, call in wanted}
    if not with_output:
        order = {node: index for index, node in enumerate(graph.nodes)}
        last = max(order[node] for node in targets.values())
        for node in reversed([n for n in graph.nodes if order[n] > last]):
            graph.erase_node(node)  # the nodes after the cut: users of later ones go first
    returned: dict[str, Any] = dict(targets)
    if with_output:
        returned[OUTPUT] = fx.map_arg(original_output, lambda n: copies[n])
    output_node = graph.output(returned)
    _protect_from_inplace(graph, set(targets.values()), dict(trace.root.named_modules()))
    if reduce is not None:
        reduced = dict(returned)  # the graph's output dict, built above
        for key, node in targets.items():
            with graph.inserting_after(node):
                reduced[key] = graph.call_function(reduce, (node,))
        output_node.args = (reduced,)
    graph.lint()
    return fx.GraphModule(trace.root, graph, class_name="TruncatedFeatures")


def _protect_from_inplace(graph: fx.Graph, captured: set[fx.Node], modules: dict[str, nn.Module]) -> None:
    """Give later in-place operations a copy of any captured node they could change."""
    order = {node: index for index, node in enumerate(graph.nodes)}
    bases = _aliases(graph)
    at_risk = set()
    for node in graph.nodes:
        target = _mutated(node, modules)
        if target is None:
            continue
        for base in bases.get(target, {target}):
            if base in captured and order[base] < order[node]:
                at_risk.add(base)
    for node in sorted(at_risk, key=order.__getitem__):
        users = [user for user in node.users if user.op != "output"]
        with graph.inserting_after(node):
            copy = graph.call_method("clone", (node,))
        for user in users:
            user.replace_input_with(node, copy)

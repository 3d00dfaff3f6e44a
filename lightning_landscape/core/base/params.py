"""Parameter selection, saved copies and exact restoration of a module's state.

Every computation in :mod:`lightning_landscape.core` that touches a model runs inside
:func:`preserve_module_state` and :func:`preserve_rng_state`. On exit, parameters and buffers are
restored by *copying the saved tensors back* (never by undoing arithmetic), so they are
bit-identical; train/eval flags and ``requires_grad`` are put back as they were; ``.grad`` is set
aside on entry (inside, no parameter has one, so a loss that calls ``backward()`` itself writes
into fresh tensors) and the very same tensors, values untouched, are put back on exit; and the
torch (CPU and CUDA), numpy and Python random streams are where they were.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "apart_from",
    "deferred_interrupts",
    "module_device",
    "ModuleState",
    "named_tensors",
    "observing",
    "perturbable_parameters",
    "preserve_module_state",
    "preserve_rng_state",
    "selected_parameters",
]


def named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` by name (the names never collide)."""
    return {**dict(model.named_buffers()), **dict(model.named_parameters())}


def perturbable_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters a direction may move: every parameter with ``requires_grad=True``.

    Frozen parameters are left out, so they always get a zero direction. Names are those of
    ``module.named_parameters()`` (shared parameters appear once, under their first name).

    >>> sorted(perturbable_parameters(nn.Linear(2, 3)))
    ['bias', 'weight']
    """
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def selected_parameters(
    module: nn.Module, params: str | Sequence[str] | None = None, *, name: str = "params"
) -> dict[str, nn.Parameter]:
    """The trainable parameters whose names match a glob pattern of ``params`` (all of them for
    ``None``), in the module's order: the one way every function and monitor chooses the
    parameters it varies (e.g. ``"*.lora_*"`` for a low-rank adapter, ``"classifier.*"``).

    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    >>> sorted(selected_parameters(net, "1.*"))
    ['1.bias', '1.weight']
    >>> selected_parameters(net, ["0.weight", "2.*"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `params` pattern '2.*' matches no trainable parameter; they are ['0.weight', ...

    Raises:
        ValueError: naming ``name``: a pattern that matches no trainable parameter.
    """
    from fnmatch import fnmatchcase

    from ..._checks import check_params

    trainable = perturbable_parameters(module)
    patterns = check_params(name, params)
    if patterns is None:
        return trainable
    for pattern in patterns:
        if not any(fnmatchcase(n, pattern) for n in trainable):
            shown = list(trainable)[:6] + (["..."] if len(trainable) > 6 else [])
            raise ValueError(
                f"`{name}` pattern {pattern!r} matches no trainable parameter; they are {shown}."
            )
    return {n: p for n, p in trainable.items() if any(fnmatchcase(n, pattern) for pattern in patterns)}


def apart_from(model: nn.Module, state: Mapping[str, object]) -> dict[str, object]:
    """``state`` with a copy of every tensor that shares memory with ``model``'s parameters or
    buffers (a live ``model.state_dict()``, say), so that writing weights into ``model`` cannot
    change it; other tensors and values are taken as they are.

    >>> net = nn.Linear(2, 1)
    >>> live = net.state_dict()
    >>> kept = apart_from(net, live)
    >>> kept["weight"] is live["weight"], torch.equal(kept["weight"], live["weight"])
    (False, True)
    """
    storages = {t.untyped_storage().data_ptr() for t in named_tensors(model).values() if t.numel()}

    def apart(value: object) -> object:
        if isinstance(value, torch.Tensor) and value.numel() > 0:
            if value.untyped_storage().data_ptr() in storages:
                return value.detach().clone()
        return value

    return {name: apart(value) for name, value in state.items()}


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block is done, then raise it.

    Restores must not be cut in half: a ``KeyboardInterrupt`` landing between two copies would
    leave some tensors or flags changed. In the main thread the SIGINT handler is swapped for one
    that only records the signal; the original handler is put back and, if a signal came, called
    once the block ends. Elsewhere (signals only reach the main thread) it does nothing.

    Example:
        >>> with deferred_interrupts():
        ...     done = True
        >>> done
        True
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, Any]] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append((signum, frame)))
    except ValueError:  # not allowed here (an embedded interpreter): run as is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
        elif received:
            raise KeyboardInterrupt


@dataclass(frozen=True)
class ModuleState:
    """A saved copy of everything a computation on ``module`` could change.

    Attributes:
        parameters: name → detached clone of each parameter (the reference point θ₀).
        buffers: name → detached clone of each buffer (BatchNorm statistics and the like).
        training: the ``training`` flag of every submodule, in ``module.modules()`` order.
        requires_grad: the ``requires_grad`` flag of every parameter.
        grads: the ``.grad`` object of every parameter (the tensor itself, or ``None``).
    """

    parameters: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    training: tuple[bool, ...]
    requires_grad: dict[str, bool]
    grads: dict[str, torch.Tensor | None]

    @classmethod
    def capture(cls, module: nn.Module) -> ModuleState:
        """Save a copy of ``module``'s current state."""
        with torch.no_grad():
            params = dict(module.named_parameters())
            return cls(
                parameters={n: p.detach().clone() for n, p in params.items()},
                buffers={n: b.detach().clone() for n, b in module.named_buffers()},
                training=tuple(m.training for m in module.modules()),
                requires_grad={n: p.requires_grad for n, p in params.items()},
                grads={n: p.grad for n, p in params.items()},
            )

    def restore(self, module: nn.Module) -> None:
        """Copy the saved values back into ``module`` and reset its flags and gradients; a Ctrl-C
        arriving meanwhile is held until the restore is complete (:func:`deferred_interrupts`)."""
        with deferred_interrupts(), torch.no_grad():
            params = dict(module.named_parameters())
            _copy_into(params, self.parameters)
            _copy_into(dict(module.named_buffers()), self.buffers)
            for m, flag in zip(module.modules(), self.training):
                m.training = flag
            for name, p in params.items():
                p.requires_grad_(self.requires_grad[name])
                if p.grad is not self.grads[name]:
                    p.grad = self.grads[name]


def _copy_into(targets: Mapping[str, torch.Tensor], sources: Mapping[str, torch.Tensor]) -> None:
    names = [n for n in sources if n in targets]
    if names:
        torch._foreach_copy_([targets[n] for n in names], [sources[n] for n in names])


@contextlib.contextmanager
def preserve_module_state(module: nn.Module) -> Iterator[ModuleState]:
    """Run a block that may change ``module``; restore it exactly afterwards, even on error.

    Yields the :class:`ModuleState` saved on entry; its ``parameters`` are the reference point θ₀
    that perturbations are computed from. Inside the block no parameter has a ``.grad``; on exit
    each gets its own back, the same tensor with the same values.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
        >>> before = [t.clone() for t in net.state_dict().values()]
        >>> with preserve_module_state(net):
        ...     _ = net.eval()
        ...     with torch.no_grad():
        ...         _ = net[0].weight.add_(1.0)
        >>> net.training, all(torch.equal(a, b) for a, b in zip(before, net.state_dict().values()))
        (True, True)
    """
    state = ModuleState.capture(module)
    try:
        with torch.no_grad():
            for p in module.parameters():  # set aside: user code inside cannot accumulate into them
                p.grad = None
        yield state
    finally:
        state.restore(module)


@contextlib.contextmanager
def preserve_rng_state() -> Iterator[None]:
    """Run a block and put every global random stream back where it was.

    Covers torch's CPU generator, every initialized CUDA device's generator, numpy's legacy global
    generator and Python's ``random`` module.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> with preserve_rng_state():
        ...     _ = torch.rand(3)
        >>> first = torch.rand(1)
        >>> _ = torch.manual_seed(0)
        >>> torch.equal(first, torch.rand(1))
        True
    """
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        yield
    finally:
        with deferred_interrupts():
            torch.set_rng_state(cpu_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextlib.contextmanager
def observing(module: nn.Module) -> Iterator[ModuleState]:
    """Evaluate ``module`` without leaving a trace: eval mode, no gradients, everything restored.

    Combines :func:`preserve_rng_state`, :func:`preserve_module_state` and ``torch.no_grad()`` and
    switches every submodule to eval mode (BatchNorm on running statistics, dropout off). Yields the
    state saved on entry.
    """
    with preserve_rng_state(), preserve_module_state(module) as saved, torch.no_grad():
        module.eval()
        yield saved


@contextlib.contextmanager
def gradient_context(model: nn.Module) -> Iterator[None]:
    """Gradient work on ``model`` without a trace, callable from any hook.

    Leaves inference mode (Lightning validates under it), enables gradients, switches to eval
    mode, and restores the module's state and every random stream on exit. Inside it
    ``scaled_dot_product_attention`` runs on its math kernel: the fused kernels (flash, memory
    efficient, cuDNN) have no double backward, which Hessian-vector products need.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with (
        preserve_rng_state(),
        preserve_module_state(model),
        torch.inference_mode(False),
        torch.enable_grad(),
        sdpa_kernel([SDPBackend.MATH]),
    ):
        model.eval()
        yield


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (or buffer); CPU for a module with neither."""
    for parameter in module.parameters():
        return parameter.device
    for buffer in module.buffers():
        return buffer.device
    return torch.device("cpu")


def chosen_names(model: nn.Module, params: str | Sequence[str] | None) -> list[str] | None:
    """The parameter names ``params`` selects (``None``: every trainable parameter)."""
    return None if params is None else list(selected_parameters(model, params))

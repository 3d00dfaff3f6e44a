"""Curves between minima (Garipov et al. 2018) and the barriers of straight paths (Frankle et al. 2020).

Two solutions θ_a and θ_b of the same network are often joined by a path of low loss that is not
the straight line. :func:`connect` trains such a path: a curve ``φ(t) = Σ_k c_k(t) P_k`` through
control points ``P_0 = θ_a``, ``P_1..P_n`` (the *bends*, trained) and ``P_{n+1} = θ_b``, with

- ``"bezier"``: Bernstein coefficients ``c_k(t) = C(n+1, k) tᵏ (1−t)ⁿ⁺¹⁻ᵏ``;
- ``"polychain"``: straight segments through the bends, at ``t = k/(n+1)``.

The bends start on the straight line (nudged off it by 1% of the distance) and follow SGD
(momentum 0.9) on ``L(φ(t))`` with ``t`` drawn uniformly at every step, each step on the next
batch, the model in train mode as Garipov et al. do
(train-mode BatchNorm on batch statistics, written to copies only). The curve is then evaluated
at ``num_points`` values of ``t`` in eval mode, as is the straight line. Wherever the model has
BatchNorm, its running statistics are re-estimated at every evaluated point (reset, then one
pass over the batches in train mode with a cumulative average): the statistics of neither end
belong to a point between them.

The **barrier** of a path is its largest rise above the straight line between its end losses,
``max_t [L(t) − ((1−t)·L(0) + t·L(1))]`` (0 for a path no worse than that line; Frankle et al.'s
linear mode connectivity). :func:`barrier_matrix` gives it for the straight path between every
pair of a list of solutions.

Trainable parameters follow the curve; frozen parameters and buffers other than BatchNorm
statistics keep ``state_a``'s values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import (
    check_bool,
    check_choice,
    check_fits_in_memory,
    check_int,
    check_params,
    check_positive_float,
    check_seed,
)
from ..base._inputs import evaluation_inputs
from ..base.batches import StreamedBatches, total_samples
from ..base.evaluation import check_model, loss_name
from ..base.losses import LossFn, LossSpec, check_class_logits, is_cross_entropy
from ..base.params import named_tensors, observing, perturbable_parameters, selected_parameters
from ..base.progress import ProgressFn, check_progress, progress_reporter
from ..base.results import ResultFile, library_versions
from ._batched import _LossOf
from ._grid import check_grid_size, evaluate_points
from .interpolation import _state, check_states_hold

__all__ = [
    "barrier",
    "barrier_matrix",
    "BarrierMatrix",
    "connect",
    "ConnectivityResult",
    "curve_coefficients",
    "CURVES",
]

CURVES = ("bezier", "polychain")
State = Mapping[str, torch.Tensor]


def curve_coefficients(curve: str, num_bends: int, t: float) -> list[float]:
    """``c_0(t) .. c_{n+1}(t)``: the weights of the control points at ``t`` (they sum to 1).

    >>> curve_coefficients("bezier", 1, 0.5)
    [0.25, 0.5, 0.25]
    >>> curve_coefficients("polychain", 1, 0.75)
    [0.0, 0.5, 0.5]
    """
    m = num_bends + 1
    if curve == "bezier":
        return [math.comb(m, k) * t**k * (1.0 - t) ** (m - k) for k in range(m + 1)]
    segment = min(int(t * m), m - 1)
    s = t * m - segment
    out = [0.0] * (m + 1)
    out[segment], out[segment + 1] = 1.0 - s, s
    return out


def barrier(t: torch.Tensor, loss: torch.Tensor) -> float:
    """``max_t [L(t) − ((1−t)·L(0) + t·L(1))]`` of a path sampled at ``t`` from 0 to 1 (NaN if any
    loss is NaN).

    >>> barrier(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 3.0, 2.0]))
    1.5
    """
    line = (1 - t) * loss[0] + t * loss[-1]
    return float((loss - line).max()) if bool(torch.isfinite(loss).all()) else math.nan


@dataclass(frozen=True, eq=False)
class ConnectivityResult(ResultFile):
    """A trained curve between two solutions, and the straight line, evaluated along ``t``.

    Attributes:
        t: the evaluated points, 0 to 1.
        curve_loss, linear_loss: the loss along the curve and along the straight line.
        curve_accuracy, linear_accuracy: the accuracy along them (``None`` without one).
        curve_barrier, linear_barrier: each path's :func:`barrier`.
        curve: ``"bezier"`` or ``"polychain"``.
        num_bends: trained control points.
        bends: the trained bends, dicts name → CPU tensor.
        train_loss: the training loss at every step of the bends' SGD.
        num_samples: samples the paths are evaluated on (every process's).
        extra: settings (``steps``, ``lr``, ``seed``, ``loss_name``, ``reestimate_bn``) and versions.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import connect
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> result = connect(a, data, a.state_dict(), b.state_dict(), steps=5, num_points=5)
        >>> result.t.tolist(), len(result.bends)
        ([0.0, 0.25, 0.5, 0.75, 1.0], 1)
    """

    t: torch.Tensor
    curve_loss: torch.Tensor
    linear_loss: torch.Tensor
    curve_accuracy: torch.Tensor | None
    linear_accuracy: torch.Tensor | None
    curve_barrier: float
    linear_barrier: float
    curve: str
    num_bends: int
    bends: list[dict[str, torch.Tensor]]
    train_loss: torch.Tensor
    num_samples: int
    extra: dict[str, Any] = field(default_factory=dict)

    ARRAYS = {
        "t": "float[t]",
        "curve_loss": "float[t]",
        "linear_loss": "float[t]",
        "curve_accuracy": "float[t]",
        "linear_accuracy": "float[t]",
        "bends": "float[*]",
        "train_loss": "float[s]",
    }

    def scalars(self) -> dict[str, float]:
        """The barriers and the highest loss of each path."""
        return {
            "curve_barrier": self.curve_barrier,
            "linear_barrier": self.linear_barrier,
            "curve_max_loss": float(self.curve_loss.max()),
            "linear_max_loss": float(self.linear_loss.max()),
        }


@dataclass(frozen=True, eq=False)
class BarrierMatrix(ResultFile):
    """Pairwise straight-path barriers of a list of solutions (symmetric, zero diagonal).

    Attributes:
        barriers: ``(n, n)`` float64.
        num_points: points evaluated along each straight path.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import barrier_matrix
        >>> nets = [nn.Linear(3, 2) for _ in range(3)]
        >>> matrix = barrier_matrix(nets[0], data, [n.state_dict() for n in nets], num_points=5)
        >>> tuple(matrix.barriers.shape), float(matrix.barriers.diagonal().abs().max())
        ((3, 3), 0.0)
    """

    barriers: torch.Tensor
    num_points: int

    ARRAYS = {"barriers": "float[n,n]"}

    def scalars(self) -> dict[str, float]:
        upper = self.barriers[torch.triu(torch.ones_like(self.barriers, dtype=torch.bool), diagonal=1)]
        return {"mean_barrier": float(upper.mean()), "max_barrier": float(upper.max())}


def _ends(model: nn.Module, names: list[str], state_a: State, state_b: State) -> tuple[list, list]:
    tensors = named_tensors(model)
    check_states_hold(names, {"state_a": state_a, "state_b": state_b})
    a = [state_a[n].detach().to(tensors[n]).clone() for n in names]
    b = [state_b[n].detach().to(tensors[n]).clone() for n in names]
    return a, b


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@torch.no_grad()
def _reestimate_batchnorm(model: nn.Module, batches: Sequence[Any], loss_fn: LossFn | None) -> None:
    """Running statistics of every BatchNorm recomputed at the current weights: reset, one pass over
    ``batches`` in train mode with a cumulative average; the model is left in eval mode."""
    norms = _batch_norms(model)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the pass
    model.train()
    try:
        for batch in batches:
            model(batch[0]) if is_cross_entropy(loss_fn) else loss_fn(model, batch)  # noqa: B018
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()


def _curve_point(coefficients: Sequence[float], points: Sequence[Sequence[torch.Tensor]], i: int):
    """``Σ_k c_k P_k`` for the ``i``-th tensor of the control points (terms with ``c_k = 0`` left out)."""
    return sum(c * p[i] for c, p in zip(coefficients, points) if c != 0.0)


def _path_writer(
    model: nn.Module,
    names: list[str],
    points: list[list[torch.Tensor]],
    curve: str,
    batches: Sequence[Any],
    loss_fn: LossFn | None,
    reestimate_bn: bool,
) -> Callable[[tuple[float, ...]], None]:
    """Writes ``φ(t)`` of the control ``points`` into ``model`` (and re-estimates BatchNorm)."""
    tensors = named_tensors(model)
    targets = [tensors[n] for n in names]
    num_bends = len(points) - 2

    def write(point: tuple[float, ...]) -> None:
        coefficients = curve_coefficients(curve, num_bends, float(point[0]))
        with torch.no_grad():
            for i, target in enumerate(targets):
                target.copy_(_curve_point(coefficients, points, i))
        if reestimate_bn and _batch_norms(model):
            _reestimate_batchnorm(model, batches, loss_fn)

    return write


def _noise(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=torch.float64).to(like)


def _train_bends(
    model: nn.Module,
    batches: Sequence[Any],
    names: list[str],
    ends: tuple[list, list],
    *,
    curve: str,
    num_bends: int,
    steps: int,
    lr: float,
    seed: int,
    loss_fn: LossFn | None,
    on_step: Callable[[int], None] | None,
) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
    """SGD on the bends of ``E_t L(φ(t))``; returns the bends and the loss of every step."""
    with torch.inference_mode(False), torch.enable_grad():
        return _sgd_on_bends(model, batches, names, ends, curve, num_bends, steps, lr, seed, loss_fn, on_step)


def _sgd_on_bends(model, batches, names, ends, curve, num_bends, steps, lr, seed, loss_fn, on_step):
    from torch.func import functional_call

    a, b = ends
    generator = torch.Generator().manual_seed(seed)
    # on the straight line, nudged off it by 1% of the distance per coordinate (a symmetric loss
    # has no gradient off the line on it)
    distance = math.sqrt(sum(float((tb - ta).double().square().sum()) for ta, tb in zip(a, b)))
    scale = 0.01 * distance / math.sqrt(max(sum(t.numel() for t in a), 1))
    bends = [
        [
            (ta + (k / (num_bends + 1)) * (tb - ta) + scale * _noise(ta, generator))
            .detach()
            .requires_grad_(True)
            for ta, tb in zip(a, b)
        ]
        for k in range(1, num_bends + 1)
    ]
    leaves = [t for bend in bends for t in bend]
    optimizer = torch.optim.SGD(leaves, lr=lr, momentum=0.9)
    chosen = set(names)
    fixed = {n: t.detach().clone() for n, t in named_tensors(model).items() if n not in chosen}
    target, prefix = (model, "") if is_cross_entropy(loss_fn) else (_LossOf(model, loss_fn), "model.")
    history = torch.empty(steps, dtype=torch.float64)
    ends_finite = all(bool(torch.isfinite(t).all()) for t in (*a, *b))  # a diverged solution's path is NaN
    model.train()
    for step in range(steps):
        t = float(torch.rand((), generator=generator, dtype=torch.float64))
        batch = batches[step % len(batches)]
        points = [a, *bends, b]
        coefficients = curve_coefficients(curve, num_bends, t)
        theta = {prefix + n: _curve_point(coefficients, points, i) for i, n in enumerate(names)}
        tensors = {**{prefix + n: v for n, v in fixed.items()}, **theta}
        # dropout draws, seeded per step, so every form of the loss sees the same masks (a user's
        # loss runs with the streams put back after it; the caller's are restored afterwards)
        torch.manual_seed((seed + step) % 2**63)
        if is_cross_entropy(loss_fn):
            logits = functional_call(target, tensors, (batch[0],))
            check_class_logits(logits, batch[1])
            loss = F.cross_entropy(logits, batch[1])
        else:
            loss = functional_call(target, tensors, (batch,))[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history[step] = float(loss.detach())
        if ends_finite and not math.isfinite(history[step]):
            raise ValueError(
                f"`lr` {lr:g}: the bends' training diverged (loss {float(history[step])} at step "
                f"{step + 1} of {steps}, between two finite solutions): lower `lr`."
            )
        if on_step is not None:
            on_step(step + 1)
    model.eval()
    return [[t.detach() for t in bend] for bend in bends], history


def _evaluate_path(model, batches, names, points, curve, t, loss_fn, reestimate_bn):
    writer = _path_writer(model, names, points, curve, batches, loss_fn, reestimate_bn)
    return evaluate_points(model, batches, [(float(v),) for v in t], writer, loss_fn)


def _check_training(model: nn.Module, curve: str, num_bends: int, steps: int, lr: float, seed: int) -> None:
    """The model and the settings of the bends' training, checked before any work."""
    check_model(model)
    check_choice("curve", curve, CURVES)
    check_int("num_bends", num_bends, minimum=1)
    check_int("steps", steps, minimum=1)
    check_fits_in_memory("steps", steps, 8.0 * steps, "the training loss of every step")
    largest = min(
        (torch.finfo(p.dtype).max for p in model.parameters() if p.is_floating_point()), default=None
    )
    check_positive_float("lr", lr, maximum=largest)  # an optimizer step scales by it in the weights' dtype
    check_seed("seed", seed)


def _training_inputs(
    model: nn.Module, batches: Iterable[Any], loss_fn: LossSpec, num_samples: int | None
) -> tuple[LossFn, list[Any]]:
    """The resolved loss and the cached batches: the bends train step by step, never on a stream."""
    if isinstance(batches, StreamedBatches) and num_samples is None:
        raise ValueError(
            "`batches`: connect trains the bends step by step on cached batches, not on a stream; pass a "
            "loader or a list (and `num_samples` to cap what is cached)."
        )
    loss, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    return loss, cast(list[Any], cached)  # a stream is refused above, or cached up to num_samples


def connect(
    model: nn.Module,
    batches: Iterable[Any],
    state_a: Any,
    state_b: Any,
    *,
    curve: Literal["bezier", "polychain"] = "bezier",
    num_bends: int = 1,
    steps: int = 500,
    lr: float = 0.01,
    seed: int = 0,
    num_points: int = 21,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    reestimate_bn: bool = True,
    progress_bar: bool | ProgressFn = False,
    params: str | Sequence[str] | None = None,
) -> ConnectivityResult:
    """Train a curve of low loss from ``state_a`` to ``state_b`` and compare it with the straight line.

    Args:
        model: a module of the architecture of both states (its own weights do not matter; it is
            left exactly as it was).
        batches: the training data for the bends and the evaluation data of both paths; second,
            as in every core function.
        state_a: θ_a: a ``state_dict()``, a module, or a Lightning checkpoint dict.
        state_b: θ_b, likewise.
        curve: ``"bezier"`` or ``"polychain"``.
        num_bends: control points between the ends (trained).
        steps: SGD steps on the bends (each on the next batch, at a uniformly drawn ``t``).
        lr: their learning rate (momentum 0.9).
        seed: seed of the ``t`` draws and of dropout during training.
        num_points: evenly spaced ``t`` in [0, 1] at which both paths are evaluated.
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        num_samples: read at most this many samples of ``batches``.
        reestimate_bn: re-estimate BatchNorm statistics at every evaluated point (see the module
            docstring); without it the statistics are ``state_a``'s everywhere.
        progress_bar: show a progress bar of the bends' training (``True``) or call
            ``progress_bar(steps_done)`` after each step.
        params: train bends for the trainable parameters matching these glob patterns only (e.g.
            an adapter); the others keep the model's own values along both paths.

    Returns:
        A :class:`ConnectivityResult`.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> result = connect(a, data, a.state_dict(), b.state_dict(), steps=20, num_points=5)
        >>> result.t.tolist(), result.curve_barrier <= result.linear_barrier + 1e-6
        ([0.0, 0.25, 0.5, 0.75, 1.0], True)
    """
    _check_training(model, curve, num_bends, steps, lr, seed)
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, 1)
    check_bool("reestimate_bn", reestimate_bn)
    check_progress("progress_bar", progress_bar)
    names = list(selected_parameters(model, params))
    ends = _ends(model, names, _state(state_a, "state_a", model), _state(state_b, "state_b", model))
    loss_fn, cached = _training_inputs(model, batches, loss_fn, num_samples)
    t = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64)
    with observing(model), progress_reporter(progress_bar, steps, "curve") as on_step:
        bends, history = _train_bends(
            model,
            cached,
            names,
            ends,
            curve=curve,
            num_bends=num_bends,
            steps=steps,
            lr=lr,
            seed=seed,
            loss_fn=loss_fn,
            on_step=on_step,
        )
        curve_loss, curve_accuracy = _evaluate_path(
            model, cached, names, [ends[0], *bends, ends[1]], curve, t, loss_fn, reestimate_bn
        )
        linear_loss, linear_accuracy = _evaluate_path(
            model, cached, names, [ends[0], ends[1]], "polychain", t, loss_fn, reestimate_bn
        )
    settings = {
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "loss_name": loss_name(loss_fn),
        "reestimate_bn": reestimate_bn,
        **({} if params is None else {"params": check_params("params", params)}),
    }
    return ConnectivityResult(
        t=t,
        curve_loss=curve_loss,
        linear_loss=linear_loss,
        curve_accuracy=curve_accuracy,
        linear_accuracy=linear_accuracy,
        curve_barrier=barrier(t, curve_loss),
        linear_barrier=barrier(t, linear_loss),
        curve=curve,
        num_bends=num_bends,
        bends=[{n: v.cpu().clone() for n, v in zip(names, bend)} for bend in bends],
        train_loss=history,
        num_samples=total_samples(cached),
        extra={**settings, "versions": library_versions()},
    )


def barrier_matrix(
    model: nn.Module,
    batches: Iterable[Any],
    states: Sequence[Any],
    *,
    num_points: int = 11,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    reestimate_bn: bool = True,
) -> BarrierMatrix:
    """The straight-path :func:`barrier` between every pair of ``states`` (at least two), each
    path evaluated at ``num_points`` points as :func:`connect` evaluates its straight line.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> nets = [nn.Linear(3, 2) for _ in range(3)]
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> barrier_matrix(nets[0], data, [n.state_dict() for n in nets], num_points=5).barriers.shape
        torch.Size([3, 3])
    """
    check_model(model)
    check_int("num_points", num_points, minimum=2)
    check_grid_size("num_points", num_points, 1)
    check_bool("reestimate_bn", reestimate_bn)
    if isinstance(states, (Mapping, nn.Module, str)) or not isinstance(states, Sequence) or len(states) < 2:
        raise ValueError(
            "`states` must be a sequence of at least two states (state dicts, modules or checkpoints)."
        )
    names = list(perturbable_parameters(model))
    loaded = [_state(s, f"states[{i}]", model) for i, s in enumerate(states)]
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    t = torch.linspace(0.0, 1.0, num_points, dtype=torch.float64)
    n = len(loaded)
    out = torch.zeros(n, n, dtype=torch.float64)
    with observing(model):
        for i in range(n):
            for j in range(i + 1, n):
                a, b = _ends(model, names, loaded[i], loaded[j])
                loss, _ = _evaluate_path(model, cached, names, [a, b], "polychain", t, loss_fn, reestimate_bn)
                out[i, j] = out[j, i] = barrier(t, loss)
    return BarrierMatrix(barriers=out, num_points=num_points)

"""Sharpness measures around the current weights θ₀, on a fixed set of batches.

``L`` is the per-sample mean loss over the batches in eval mode; ``L₀ = L(θ₀)``. Every measure runs
inside :func:`~lightning_landscape.core.base.params.gradient_context`, so the model, ``.grad`` and every
random stream are exactly as before, and it can be called from validation hooks too.

- ``"keskar"`` (Keskar et al. 2017, Metric 2.1): ``100 · (max_δ L(θ₀+δ) − L₀) / (1 + L₀)`` over
  the box ``|δᵢ| ≤ ε(|θ₀ᵢ| + 1)``. The maximum is sought by ``num_ascent_steps`` steps of sign-projected
  gradient ascent (each moves every coordinate by ``step_size`` of its box half-width, then clips)
  from a random interior point (a start at δ = 0 can stall on a zero gradient at a minimum); the
  largest loss seen is reported. The paper used 10 L-BFGS-B iterations.
- ``"adaptive_worst"`` (Andriushchenko et al. 2023): ``max L(θ₀ + |θ₀|⊙u) − L₀`` over
  ``‖u‖_p ≤ ρ``, ``p ∈ {2, ∞}``, by projected (normalized, for p = 2) gradient ascent in ``u``.
  Invariant to rescalings of layers that leave the function unchanged.
- ``"average"``: ``E_δ[L(θ₀+δ)] − L₀`` with ``δᵢ ~ N(0, (ρ|θ₀ᵢ|)²)``, with its standard error.
- ``"filter_normalized_eigenvalue"`` (Huang et al. 2020): top eigenvalue of ``D H D``, where
  ``D`` scales every coordinate by the norm of its filter (the ``ndim ≥ 2`` weights only).
- ``"basin_volume"`` (Huang et al. 2020): along ``num_probes`` random filter-normalized
  directions (biases and norm layers fixed), the radius ``r`` where ``L(θ₀ + r·d)`` first reaches
  ``threshold`` (scan + bisection); the log-volume ``log E[rⁿ] = logsumexp(n log rᵢ) − log N`` with
  ``n`` the number of perturbed coordinates. Directions that never cross within ``max_radius`` are
  flagged and counted at ``max_radius``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, cast

import torch
from torch import nn

from ..._checks import check_choice, check_int, check_params, check_positive_float, check_seed
from ..base._inputs import evaluation_inputs
from ..base.evaluation import check_model, evaluate
from ..base.losses import LossSpec, check_loss_spec
from ..base.params import (
    gradient_context,
    perturbable_parameters,
    preserve_module_state,
    preserve_rng_state,
    selected_parameters,
)
from ..curvature.eigenvalues import check_eigenvalue_options, hessian_eigenvalues
from ..curvature.trace import check_trace_options, hessian_trace
from ..landscapes.directions import iter_random_directions
from ..landscapes.normalization import normalize_directions
from ..linalg._risk import EmpiricalRisk
from ..linalg.hessian import HessianOperator
from ..linalg.spectrum import lanczos_eigenpairs, standard_error, warn_nonfinite, warn_unconverged
from .registry import (
    BasinVolumeResult,
    SharpnessResult,
    check_measure_options,
    register_measure,
    registered_measure,
)

__all__ = [
    "adaptive_worst_sharpness",
    "average_sharpness",
    "basin_volume",
    "BasinVolumeResult",
    "filter_normalized_eigenvalue",
    "keskar_sharpness",
    "sharpness",
    "top_eigenvalue_sharpness",
    "trace_sharpness",
]


def _uniform_like(tensors: Sequence[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Independent uniform(−1, 1) entries shaped like ``tensors``."""
    return [torch.rand(t.shape, generator=generator, device=t.device, dtype=t.dtype) * 2 - 1 for t in tensors]


def _worst(best: float, value: float) -> float:
    """The larger loss, NaN if either is NaN (a perturbation where the loss is undefined makes the
    worst case undefined: never ``-inf`` from ``max`` skipping NaN)."""
    return math.nan if math.isnan(best) or math.isnan(value) else max(best, value)


def _warn_if_undefined(measure: str, best: float) -> None:
    if math.isnan(best):
        warn_nonfinite(f"sharpness {measure!r}: a perturbed loss", stacklevel=4)


def _keskar(
    obj: EmpiricalRisk, center: float, *, epsilon: float, num_ascent_steps: int, step_size: float, seed: int
):
    half_widths = [epsilon * (b.abs() + 1.0) for b in obj.base]
    generator = torch.Generator(device=obj.base[0].device).manual_seed(seed)
    delta = [0.5 * u * h for u, h in zip(_uniform_like(obj.base, generator), half_widths)]
    best = -math.inf
    for _ in range(num_ascent_steps):
        value, grads = obj.loss_and_grad(delta)
        best = _worst(best, value)
        delta = [
            torch.maximum(torch.minimum(d + step_size * h * g.sign(), h), -h)
            for d, h, g in zip(delta, half_widths, grads)
        ]
    best = _worst(best, obj.loss(delta))
    _warn_if_undefined("keskar", best)
    details = {
        "epsilon": epsilon,
        "num_ascent_steps": num_ascent_steps,
        "step_size": step_size,
        "max_loss": best,
    }
    return 100.0 * (best - center) / (1.0 + center), details


def _adaptive(
    obj: EmpiricalRisk,
    center: float,
    *,
    rho: float,
    p: float,
    num_ascent_steps: int,
    step_size: float,
    seed: int,
):
    scale = [b.abs() for b in obj.base]
    generator = torch.Generator(device=obj.base[0].device).manual_seed(seed)
    u = [0.1 * rho * t for t in _uniform_like(obj.base, generator)]
    if p == 2:
        norm = math.sqrt(sum(float(t.square().sum()) for t in u))
        u = [t * (0.1 * rho / max(norm, 1e-30)) for t in u]
    best = -math.inf
    for _ in range(num_ascent_steps):
        value, grads = obj.loss_and_grad([s * t for s, t in zip(scale, u)])
        best = _worst(best, value)
        g_u = [s * g for s, g in zip(scale, grads)]
        if p == math.inf:
            u = [torch.clamp(t + step_size * rho * g.sign(), -rho, rho) for t, g in zip(u, g_u)]
        else:
            g_norm = math.sqrt(sum(float(g.square().sum()) for g in g_u))
            u = [t + step_size * rho * g / max(g_norm, 1e-30) for t, g in zip(u, g_u)]
            u_norm = math.sqrt(sum(float(t.square().sum()) for t in u))
            if u_norm > rho:
                u = [t * (rho / u_norm) for t in u]
    best = _worst(best, obj.loss([s * t for s, t in zip(scale, u)]))
    _warn_if_undefined("adaptive_worst", best)
    details = {
        "rho": rho,
        "p": p,
        "num_ascent_steps": num_ascent_steps,
        "step_size": step_size,
        "max_loss": best,
    }
    return best - center, details


def _average(obj: EmpiricalRisk, center: float, *, rho: float, num_probes: int, seed: int):
    generator = torch.Generator(device=obj.base[0].device).manual_seed(seed)
    rises = torch.empty(num_probes, dtype=torch.float64)
    for i in range(num_probes):
        delta = [
            rho * b.abs() * torch.randn(b.shape, generator=generator, device=b.device, dtype=b.dtype)
            for b in obj.base
        ]
        rises[i] = obj.loss(delta) - center
    return float(rises.mean()), standard_error(rises), {"rho": rho, "num_probes": num_probes}


def _filter_norm_scales(weights: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per coordinate, the norm of its dim-0 slice (its filter)."""
    scales = []
    for w in weights.values():
        norms = torch.linalg.vector_norm(w.flatten(1), dim=1)
        scales.append(norms.reshape((-1,) + (1,) * (w.ndim - 1)).expand_as(w).reshape(-1))
    return scales


def _filter_normalized_eigenvalue(
    model, batches, loss_fn, *, tol: float, max_iter: int, seed: int, names: Sequence[str]
):
    chosen = set(names)
    trainable = perturbable_parameters(model)
    weights = {n: p.detach() for n, p in trainable.items() if p.ndim >= 2 and n in chosen}
    if not weights:
        raise ValueError(
            "`params`: the filter-normalized eigenvalue scales filters of weights with ndim >= 2, and "
            f"none is among the chosen parameters {list(names)[:6]}."
        )
    op = HessianOperator(model, batches, loss_fn, names=list(weights))
    d = torch.cat(_filter_norm_scales(weights))
    result = lanczos_eigenpairs(
        op.sandwiched(d),
        k=1,
        tol=tol,
        max_iter=max_iter,
        seed=seed,
        start=op.lanczos_start("largest", seed, scale=d),
    )
    details = {"tol": tol, "max_iter": max_iter, "num_matvecs": op.num_matvecs, "converged": result.converged}
    if not result.converged and bool(torch.isfinite(result.eigenvalues).all()):
        warn_unconverged(
            "sharpness 'filter_normalized_eigenvalue'",
            max_iter,
            f"tol={tol:g} (extra['converged'] is False).",
            stacklevel=4,
        )
    return float(result.eigenvalues[0]), details


def _first_crossing(
    obj: EmpiricalRisk,
    direction: list[torch.Tensor],
    threshold: float,
    max_radius: float,
    num_scan: int,
    num_bisect: int,
):
    """Smallest r in (0, max_radius] with L(θ₀ + r·d) ≥ threshold, or (max_radius, False); third,
    whether the scan's crossing point had a NaN loss (counted as crossed: the loss left the basin)."""
    low = 0.0
    for j in range(1, num_scan + 1):
        radius = max_radius * (j / num_scan) ** 2  # finer near θ₀, as in Huang et al.'s code
        value = obj.loss([radius * t for t in direction])
        if not value < threshold:  # NaN counts as crossed: the loss left the basin
            high = radius
            for _ in range(num_bisect):
                mid = 0.5 * (low + high)
                if obj.loss([mid * t for t in direction]) < threshold:
                    low = mid
                else:
                    high = mid
            return 0.5 * (low + high), True, math.isnan(value)
        low = radius
    return max_radius, False, False


def _basin_volume(
    obj: EmpiricalRisk,
    center: float,
    names,
    *,
    num_probes: int,
    threshold: float | None,
    max_radius: float,
    num_scan: int,
    num_bisect: int,
    seed: int,
):
    level = center + 1.0 if threshold is None else threshold
    if not center < level:
        raise ValueError(f"`threshold` ({level}) must exceed the loss at the weights ({center}).")
    reference = dict(zip(names, obj.base))
    radii, crossed = [], []
    count = nan_crossings = 0
    for raw in iter_random_directions(reference, num_probes, seed):
        direction = normalize_directions(raw, reference, "filter", ignore_bias_and_norm=True)
        count = sum(int(torch.count_nonzero(t)) for t in direction.values())
        radius, hit, by_nan = _first_crossing(
            obj, [direction[n] for n in names], level, max_radius, num_scan, num_bisect
        )
        nan_crossings += by_nan
        radii.append(radius)
        crossed.append(hit)
    r = torch.tensor(radii, dtype=torch.float64)
    log_volume = float(torch.logsumexp(count * r.log(), dim=0) - math.log(len(radii)))
    details = {
        "threshold": level,
        "num_probes": num_probes,
        "max_radius": max_radius,
        "dimension": count,
        "num_not_crossed": int(len(crossed) - sum(crossed)),
        "num_nan_crossings": nan_crossings,
    }
    not_crossed = details["num_not_crossed"]
    if not_crossed:
        warnings.warn(
            f"sharpness 'basin_volume': along {not_crossed} of {num_probes} directions the loss never "
            f"reached the threshold {level:.6g} within `max_radius` ({max_radius:g}); their radius counts "
            "as max_radius, so the log-volume is a lower bound (extra['num_not_crossed']): raise "
            "`max_radius` or lower `threshold`.",
            RuntimeWarning,
            stacklevel=3,
        )
    if nan_crossings:
        warnings.warn(
            f"sharpness 'basin_volume': along {nan_crossings} of {num_probes} directions the loss "
            "became NaN before reaching the threshold; those count as crossed there (the loss left the "
            "basin): see extra['num_nan_crossings'].",
            RuntimeWarning,
            stacklevel=3,
        )
    return log_volume, r, torch.tensor(crossed), details


def _check_threshold(threshold: Any) -> None:
    finite = (
        isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and math.isfinite(threshold)
    )
    if threshold is not None and not finite:
        raise ValueError(f"`threshold` must be a finite number or None, got {threshold!r}.")


_OPTION_CHECKS: dict[str, Callable[[Any], object]] = {
    "seed": lambda v: check_seed("seed", v),
    "epsilon": lambda v: check_positive_float("epsilon", v),
    "rho": lambda v: check_positive_float("rho", v),
    "p": lambda v: check_choice("p", v, (2, math.inf)),
    "num_ascent_steps": lambda v: check_int("num_ascent_steps", v, minimum=1),
    "step_size": lambda v: check_positive_float("step_size", v),
    "num_probes": lambda v: check_int("num_probes", v, minimum=1),
    "tol": lambda v: check_positive_float("tol", v),
    "max_iter": lambda v: check_int("max_iter", v, minimum=1),
    "threshold": _check_threshold,
    "max_radius": lambda v: check_positive_float("max_radius", v),
    "num_scan": lambda v: check_int("num_scan", v, minimum=1),
    "num_bisect": lambda v: check_int("num_bisect", v, minimum=0),
    "params": lambda v: check_params("params", v),
}
"""The check of every sharpness option, by name (one place, for every measure's function)."""


def check_sharpness_options(**options: Any) -> None:
    """The checks of the sharpness options given (others are ignored), usable before a model
    exists: monitors run them at construction.

    >>> check_sharpness_options(epsilon=-1)
    Traceback (most recent call last):
    ...
    ValueError: `epsilon` must be a finite number > 0, got -1.
    """
    for name, value in options.items():
        if name in _OPTION_CHECKS and not (value is None and name in ("threshold", "params")):
            _OPTION_CHECKS[name](value)


def _measured(
    measure: str,
    model: nn.Module,
    batches: Iterable[Any],
    loss_fn: LossSpec,
    num_samples: int | None,
    compute: Callable[[EmpiricalRisk, float], SharpnessResult],
    *,
    threshold: float | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """``compute(risk, L₀)`` inside :func:`~lightning_landscape.core.base.params.gradient_context`, the
    part every measure shares: the batches cached once, the risk over every trainable parameter,
    ``L₀``, and a NaN result with a warning where the weights have diverged (nothing to measure
    around). ``params`` (glob patterns) chooses the parameters a measure perturbs (default all
    trainable ones). The filter-normalized eigenvalue reads no ``L₀`` first (a Lanczos run reports
    NaN itself)."""
    check_model(model)
    names = list(selected_parameters(model, params))
    loss_fn, cached = evaluation_inputs(model, batches, loss_fn, num_samples)
    with gradient_context(model):
        risk = EmpiricalRisk(model, cached, loss_fn, names)
        if measure == "filter_normalized_eigenvalue":
            return compute(risk, math.nan)
        center = risk.loss()
        unmeasurable = measure == "basin_volume" and threshold is None and not center < center + 1.0
        if not math.isfinite(center) or unmeasurable:
            warn_nonfinite(f"sharpness {measure!r}")
            stderr = math.nan if measure == "average" else None
            kind = BasinVolumeResult if measure == "basin_volume" else SharpnessResult
            return kind(measure, math.nan, center, stderr=stderr, extra={"diverged": True})
        return compute(risk, center)


# ------------------------------------------------------------------ one function per measure
# Each takes only its own options and holds its measure's logic; sharpness() dispatches to them by
# name through the registry (.registry), which checks options against them.
def keskar_sharpness(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    epsilon: float = 1e-3,
    num_ascent_steps: int = 20,
    step_size: float = 0.25,
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """Keskar et al.'s ε-sharpness (the module docstring's ``"keskar"``).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> data = [(torch.randn(32, 3), torch.randint(0, 2, (32,)))]
        >>> keskar_sharpness(net, data, num_ascent_steps=5).value >= 0
        True
    """
    check_sharpness_options(
        epsilon=epsilon, num_ascent_steps=num_ascent_steps, step_size=step_size, seed=seed
    )

    def compute(risk: EmpiricalRisk, center: float) -> SharpnessResult:
        value, details = _keskar(
            risk, center, epsilon=epsilon, num_ascent_steps=num_ascent_steps, step_size=step_size, seed=seed
        )
        return SharpnessResult("keskar", value, center, extra=details)

    return _measured("keskar", model, batches, loss_fn, num_samples, compute, params=params)


def adaptive_worst_sharpness(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    rho: float = 0.05,
    p: float = 2,
    num_ascent_steps: int = 20,
    step_size: float = 0.25,
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """Adaptive worst-case sharpness (the module docstring's ``"adaptive_worst"``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import adaptive_worst_sharpness
        >>> result = adaptive_worst_sharpness(net, data, rho=0.05, num_ascent_steps=3)
        >>> result.measure, result.value >= -1e-6
        ('adaptive_worst', True)
    """
    options: dict[str, Any] = {
        "rho": rho,
        "p": p,
        "num_ascent_steps": num_ascent_steps,
        "step_size": step_size,
    }
    check_sharpness_options(**options, seed=seed)

    def compute(risk: EmpiricalRisk, center: float) -> SharpnessResult:
        value, details = _adaptive(risk, center, **options, seed=seed)
        return SharpnessResult("adaptive_worst", value, center, extra=details)

    return _measured("adaptive_worst", model, batches, loss_fn, num_samples, compute, params=params)


def average_sharpness(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    rho: float = 0.05,
    num_probes: int = 20,
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """Average sharpness under relative Gaussian noise, with its standard error (``"average"``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import average_sharpness
        >>> result = average_sharpness(net, data, num_probes=4)
        >>> result.measure, result.stderr is not None
        ('average', True)
    """
    check_sharpness_options(rho=rho, num_probes=num_probes, seed=seed)

    def compute(risk: EmpiricalRisk, center: float) -> SharpnessResult:
        value, stderr, details = _average(risk, center, rho=rho, num_probes=num_probes, seed=seed)
        return SharpnessResult("average", value, center, stderr=stderr, extra=details)

    return _measured("average", model, batches, loss_fn, num_samples, compute, params=params)


def filter_normalized_eigenvalue(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """Top eigenvalue of ``D H D``, ``D`` the filter norms (``"filter_normalized_eigenvalue"``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import filter_normalized_eigenvalue
        >>> result = filter_normalized_eigenvalue(net, data, max_iter=20)
        >>> result.measure, result.extra["converged"]
        ('filter_normalized_eigenvalue', True)
    """
    check_sharpness_options(tol=tol, max_iter=max_iter, seed=seed)

    def compute(risk: EmpiricalRisk, _: float) -> SharpnessResult:
        value, details = _filter_normalized_eigenvalue(
            model, risk.batches, loss_fn, tol=tol, max_iter=max_iter, seed=seed, names=risk.names
        )
        return SharpnessResult("filter_normalized_eigenvalue", value, risk.loss(), extra=details)

    return _measured(
        "filter_normalized_eigenvalue", model, batches, loss_fn, num_samples, compute, params=params
    )


def basin_volume(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_probes: int = 50,
    threshold: float | None = None,
    max_radius: float = 1.0,
    num_scan: int = 30,
    num_bisect: int = 20,
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> BasinVolumeResult:
    """Huang et al.'s basin log-volume along ``num_probes`` random filter-normalized directions
    (``"basin_volume"``).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import basin_volume
        >>> result = basin_volume(net, data, num_probes=3, max_radius=50.0, num_scan=5, num_bisect=3)
        >>> tuple(result.radii.shape), result.measure
        ((3,), 'basin_volume')
    """
    options: dict[str, Any] = {"num_probes": num_probes, "threshold": threshold, "max_radius": max_radius}
    options.update(num_scan=num_scan, num_bisect=num_bisect)
    check_sharpness_options(**options, seed=seed)

    def compute(risk: EmpiricalRisk, center: float) -> SharpnessResult:
        log_volume, radii, crossed, details = _basin_volume(risk, center, risk.names, **options, seed=seed)
        return BasinVolumeResult(
            "basin_volume", log_volume, center, extra=details, radii=radii, crossed=crossed
        )

    result = _measured(
        "basin_volume", model, batches, loss_fn, num_samples, compute, threshold=threshold, params=params
    )
    return cast(BasinVolumeResult, result)  # compute and _measured's diverged case build one


def top_eigenvalue_sharpness(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    tol: float = 1e-4,
    max_iter: int = 100,
    min_iter: int = 4,
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """``"top_eigenvalue"``: the largest Hessian eigenvalue
    (:func:`~lightning_landscape.core.curvature.eigenvalues.hessian_eigenvalues`, ``k=1``) with
    the centre loss; ``extra["converged"]`` says whether Lanczos met ``tol``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import hessian_eigenvalues, top_eigenvalue_sharpness
        >>> result = top_eigenvalue_sharpness(net, data, max_iter=20)
        >>> result.measure, result.extra["converged"]
        ('top_eigenvalue', True)
        >>> abs(result.value - float(hessian_eigenvalues(net, data, max_iter=20).eigenvalues[0])) < 1e-9
        True
    """
    common: dict[str, Any] = {"loss_fn": loss_fn, "seed": seed, "num_samples": num_samples, "params": params}
    top = hessian_eigenvalues(model, batches, k=1, tol=tol, max_iter=max_iter, min_iter=min_iter, **common)
    center = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
    return SharpnessResult(
        "top_eigenvalue", float(top.eigenvalues[0]), center, extra={"converged": top.converged}
    )


def trace_sharpness(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    num_probes: int = 99,
    method: Literal["auto", "exact_ggn", "hutch++", "hutchinson"] = "auto",
    seed: int = 0,
    loss_fn: LossSpec = None,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
) -> SharpnessResult:
    """``"trace"``: the Hessian's trace (:func:`~lightning_landscape.core.curvature.trace.hessian_trace`)
    with its standard error and the centre loss.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import trace_sharpness
        >>> result = trace_sharpness(net, data)
        >>> result.measure, result.extra["method"], result.stderr  # a ReLU net: exact
        ('trace', 'exact_ggn', 0.0)
    """
    common: dict[str, Any] = {"loss_fn": loss_fn, "seed": seed, "num_samples": num_samples, "params": params}
    trace = hessian_trace(model, batches, num_probes=num_probes, method=method, **common)
    center = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
    return SharpnessResult(
        "trace", trace.estimate, center, stderr=trace.stderr, extra={"method": trace.method}
    )


def sharpness(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    measure: str = "keskar",
    loss_fn: LossSpec = None,
    seed: int = 0,
    num_samples: int | None = None,
    params: str | Sequence[str] | None = None,
    **options: Any,
) -> SharpnessResult:
    """One sharpness measure of ``model`` at its current weights, by its registered name (see the
    module docstring; :func:`~lightning_landscape.core.measures.registry.register_measure` adds
    measures of one's own).

    Args:
        model: the network.
        batches: evaluation batches (cached on the model's device once).
        measure: a registered name: ``"keskar"``, ``"adaptive_worst"``, ``"average"``,
            ``"filter_normalized_eigenvalue"``, ``"basin_volume"``, ``"top_eigenvalue"``,
            ``"trace"``, or one registered elsewhere
            (:func:`~lightning_landscape.core.measures.registry.measure_names`).
        loss_fn: the loss: any form of :mod:`~lightning_landscape.core.base.losses`
            (default: the model's own ``training_step``, else the cross-entropy of ``(x, y)`` class logits).
        seed: seed of every random start, perturbation and direction.
        num_samples: read at most this many samples from ``batches`` (needed for an iterable
            without ``len``; default: every batch of a finite collection).
        params: perturb only the trainable parameters matching these glob patterns (e.g.
            ``"*.lora_*"``); default all of them.
        **options: the measure's own options (e.g. ``epsilon`` for ``"keskar"``, ``rho`` and ``p``
            for ``"adaptive_worst"``, ``num_probes`` for ``"average"`` and ``"basin_volume"``); an
            option the measure does not take is refused, naming the ones it does.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> data = [(torch.randn(32, 3), torch.randint(0, 2, (32,)))]
        >>> sharpness(net, data, measure="keskar", epsilon=5e-4).value >= 0
        True
    """
    check_model(model)
    check_loss_spec("loss_fn", loss_fn)
    spec = registered_measure(measure)
    check_measure_options(measure, options, where=None)
    common = {"seed": seed, "loss_fn": loss_fn, "num_samples": num_samples, "params": params}
    if spec.guarded:  # a measure from outside: whatever it does to the model is undone
        with preserve_rng_state(), preserve_module_state(model):
            result = spec.function(model, batches, **common, **options)
    else:
        result = spec.function(model, batches, **common, **options)
    if not isinstance(result, SharpnessResult):
        raise TypeError(
            f"measure {measure!r} returned a {type(result).__name__}; a measure returns a SharpnessResult."
        )
    return result


register_measure(
    "top_eigenvalue",
    top_eigenvalue_sharpness,
    check=lambda **o: check_eigenvalue_options(k=1, which="largest", **{"seed": 0, **o}),
    guarded=False,
)
register_measure(
    "trace", trace_sharpness, check=lambda **o: check_trace_options(**{"seed": 0, **o}), guarded=False
)
register_measure("keskar", keskar_sharpness, check=check_sharpness_options, guarded=False)
register_measure("adaptive_worst", adaptive_worst_sharpness, check=check_sharpness_options, guarded=False)
register_measure("average", average_sharpness, check=check_sharpness_options, guarded=False)
register_measure(
    "filter_normalized_eigenvalue", filter_normalized_eigenvalue, check=check_sharpness_options, guarded=False
)
register_measure("basin_volume", basin_volume, check=check_sharpness_options, guarded=False)

"""The prior volume of a function: how likely random initialization makes the network compute it.

Zhang, Reid, Valle Pérez & Louis (arXiv 2103.06219) measure a minimum by the *volume* of parameter
space that computes the same function: ``P(f) = Pr_{θ ~ init}[sign(model_θ(x_i)) = s_i for all i]``
for binary labels ``s`` on a fixed set of inputs. Unlike flatness it depends only on the function
and the initialization distribution, so reparameterizations that keep the function (rescaling one
layer up and the next down) cannot change it.

Two estimators:

- ``"monte_carlo"``: draw ``num_init_samples`` networks from ``model_factory()``, count how often
  each sign pattern appears. Exact in the limit, but only patterns with probability well above
  ``1/num_init_samples`` are seen: a reference for tiny input sets.
- ``"nngp_ep"``: treat the initialized network's outputs on the inputs as Gaussian (the NNGP view,
  exact for infinitely wide nets), with mean and covariance estimated from the same
  ``num_init_samples`` random networks (so any architecture works), and compute the orthant
  probability ``Pr_{z ~ N(m, K)}[s_i z_i > 0 ∀i]`` by expectation propagation with step-function
  sites (Cunningham, Hennig & Lacoste-Julien 2011). This reaches probabilities far below what
  sampling can see (``log P`` of −100 nats and less), which is what trained networks on hundreds of
  inputs need.

Outputs are turned into one real score per input whose sign is the label: the output itself for
``(n,)`` or ``(n, 1)``, the logit difference ``z₁ − z₀`` for two classes, or ``output_fn(output)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..._checks import check_callable, check_choice, check_int, check_seed
from ..base.params import module_device, observing, preserve_rng_state
from ..base.results import ResultFile

__all__ = [
    "binary_scores",
    "function_volume",
    "orthant_log_probability",
    "VolumeResult",
]


@dataclass(frozen=True)
class VolumeResult(ResultFile):
    """``log P(f)`` of a sign pattern under the initialization distribution, in nats.

    Attributes:
        log_probability: ``log P(f)`` (−inf when Monte Carlo never saw the pattern).
        method: ``"nngp_ep"`` or ``"monte_carlo"``.
        target: the labels (0/1) whose probability this is.
        num_init_samples: random networks drawn.
        stderr: Monte Carlo only: the standard error of ``log P`` (delta method), else None.
        patterns: Monte Carlo only: every sign pattern seen, ``(m, n)`` booleans.
        counts: Monte Carlo only: how often each of ``patterns`` was seen.
        mean: NNGP only: the estimated output mean on the inputs.
        kernel: NNGP only: the estimated ``(n, n)`` output covariance.
        extra: settings and diagnostics (EP sweeps, convergence).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> from lightning_landscape import function_volume
        >>> make = lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> margin = lambda out: out[:, 1] - out[:, 0]
        >>> target = torch.tensor([0, 1, 1, 0])
        >>> inputs = torch.randn(4, 2)
        >>> result = function_volume(make, inputs, target=target, num_init_samples=8, output_fn=margin)
        >>> result.num_init_samples, result.log_probability <= 0
        (8, True)
    """

    log_probability: float
    method: str
    target: torch.Tensor
    num_init_samples: int
    stderr: float | None = None
    patterns: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    kernel: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    ARRAYS = {
        "target": "number[n]",
        "patterns": "bool[m,n]",
        "counts": "int[m]",
        "mean": "float[n]",
        "kernel": "float[n,n]",
    }

    @property
    def log10_probability(self) -> float:
        """``log10 P(f)``, the unit of Zhang et al.'s figures."""
        return self.log_probability / math.log(10)


def binary_scores(output: torch.Tensor) -> torch.Tensor:
    """One real score per input whose sign is the predicted label.

    >>> binary_scores(torch.tensor([[0.0, 2.0], [1.0, -1.0]]))
    tensor([ 2., -2.])
    """
    if output.ndim == 1:
        return output
    if output.ndim == 2 and output.shape[1] == 1:
        return output[:, 0]
    if output.ndim == 2 and output.shape[1] == 2:
        return output[:, 1] - output[:, 0]
    raise ValueError(
        f"binary labels need outputs of shape (n,), (n, 1) or (n, 2), got {tuple(output.shape)}; "
        "pass `output_fn` to turn the output into one score per input."
    )


def _init_scores(
    model_factory: Callable[[], nn.Module],
    inputs: torch.Tensor,
    num: int,
    seed: int,
    score: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``(num, n)`` scores of ``num`` networks from ``model_factory()`` (global streams restored)."""
    rows = []
    with preserve_rng_state(), torch.no_grad():
        torch.manual_seed(seed)
        for _ in range(num):
            net = model_factory().to(inputs.device).eval()
            rows.append(score(net(inputs)).reshape(-1).double())
    return torch.stack(rows)


def orthant_log_probability(
    mean: torch.Tensor,
    cov: torch.Tensor,
    signs: torch.Tensor,
    *,
    max_sweeps: int = 500,
    tol: float = 1e-10,
    damping: float = 0.7,
) -> tuple[float, dict[str, Any]]:
    """``log Pr_{z ~ N(mean, cov)}[signs_i · z_i > 0 for all i]`` by expectation propagation.

    Parallel EP with one step-function site per coordinate: each sweep matches, for every
    coordinate at once, the mean and variance of the cavity distribution truncated to the wanted
    half-line (a truncated normal), then recomputes the Gaussian posterior from the site
    precisions ``τ`` and shifts ``ν`` (damped). The log normalizer is assembled in a form that stays
    finite as sites become uninformative (``τ → 0``).

    Returns:
        ``(log probability, {"sweeps": ..., "converged": ...})``.

    Example:
        >>> cov = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
        >>> value, _ = orthant_log_probability(torch.zeros(2, dtype=torch.float64), cov, torch.ones(2))
        >>> round(math.exp(value), 2)  # exactly 1/4 + asin(0.5)/(2π) = 1/3
        0.33
    """
    mean, cov = mean.double(), cov.double()
    signs = signs.double()
    n = mean.shape[0]
    eye = torch.eye(n, dtype=torch.float64, device=mean.device)
    chol_k = torch.linalg.cholesky(cov)
    k_inv_m = torch.cholesky_solve(mean.unsqueeze(1), chol_k).squeeze(1)
    tau = torch.zeros(n, dtype=torch.float64, device=mean.device)
    nu = torch.zeros_like(tau)
    sigma, mu = cov.clone(), mean.clone()
    converged, sweep = False, 0
    for sweep in range(1, max_sweeps + 1):  # noqa: B007 - reported
        v_cav = 1.0 / (1.0 / sigma.diagonal() - tau)
        m_cav = v_cav * (mu / sigma.diagonal() - nu)
        z = signs * m_cav / v_cav.sqrt()
        ratio = torch.exp(-0.5 * z.square() - 0.5 * math.log(2 * math.pi) - torch.special.log_ndtr(z))
        m_hat = m_cav + signs * v_cav.sqrt() * ratio
        v_hat = v_cav * (1.0 - ratio * (z + ratio))
        tau_new = (1.0 / v_hat - 1.0 / v_cav).clamp_min(0.0)
        nu_new = m_hat / v_hat - m_cav / v_cav
        step = max(float((tau_new - tau).abs().max()), float((nu_new - nu).abs().max()))
        tau = damping * tau_new + (1 - damping) * tau
        nu = damping * nu_new + (1 - damping) * nu
        root = tau.sqrt()
        chol_b = torch.linalg.cholesky(eye + root.unsqueeze(1) * cov * root.unsqueeze(0))
        solved = torch.cholesky_solve(root.unsqueeze(1) * cov, chol_b)  # B⁻¹ T½ K
        sigma = cov - (cov * root.unsqueeze(0)) @ solved
        mu = sigma @ (k_inv_m + nu)
        if step < tol:
            converged = True
            break
    # final cavities and site normalizers, then the Gaussian integral of prior × sites
    v_cav = 1.0 / (1.0 / sigma.diagonal() - tau)
    m_cav = v_cav * (mu / sigma.diagonal() - nu)
    z = signs * m_cav / v_cav.sqrt()
    b_cav = m_cav / v_cav + nu
    log_c = (
        torch.special.log_ndtr(z)
        + 0.5 * torch.log1p(v_cav * tau)
        - 0.5 * b_cav.square() / (1.0 / v_cav + tau)
        + 0.5 * m_cav.square() / v_cav
    )
    log_det_b = 2.0 * chol_b.diagonal().log().sum()
    b = k_inv_m + nu
    value = log_c.sum() - 0.5 * log_det_b + 0.5 * (mu @ b) - 0.5 * (mean @ k_inv_m)
    return float(value), {"sweeps": sweep, "converged": converged}


def function_volume(
    model_factory: Callable[[], nn.Module],
    inputs: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    model: nn.Module | None = None,
    num_init_samples: int = 2000,
    method: Literal["nngp_ep", "monte_carlo"] = "nngp_ep",
    output_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
) -> VolumeResult:
    """``log P(f)``: how likely a network from ``model_factory()`` labels ``inputs`` as ``target``.

    Args:
        model_factory: returns a freshly initialized network (the initialization distribution),
            e.g. ``lambda: MyNet()``; it is called ``num_init_samples`` times with the global torch
            stream seeded from ``seed`` (and restored afterwards).
        inputs: one tensor of ``n`` inputs (a batch).
        target: ``n`` binary labels (0/1 or booleans); default: the labels ``model`` predicts.
        model: the trained network whose function is measured when ``target`` is None.
        num_init_samples: random networks drawn (the kernel's or the count's sample size).
        method: ``"nngp_ep"`` or ``"monte_carlo"`` (see the module docstring).
        output_fn: output → one score per input (default :func:`binary_scores`).
        seed: seed of the random networks.

    Example:
        >>> factory = lambda: nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
        >>> x = torch.randn(3, 2)
        >>> mc = function_volume(factory, x, target=torch.ones(3), num_init_samples=400, method="monte_carlo")
        >>> int(mc.counts.sum())
        400
    """
    check_callable("model_factory", model_factory)
    check_int("num_init_samples", num_init_samples, minimum=2)
    check_choice("method", method, ("nngp_ep", "monte_carlo"))
    check_callable("output_fn", output_fn)
    check_seed("seed", seed)
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"`inputs` must be a tensor holding a batch of inputs, got {type(inputs).__name__}.")
    score = output_fn or binary_scores
    if target is None:
        if model is None:
            raise ValueError(
                "give `target` (binary labels) or `model` (whose predicted labels are the target)."
            )
        with observing(model):
            target = score(model(inputs.to(module_device(model)))) > 0
    target = torch.as_tensor(target).reshape(-1).to("cpu")
    if target.numel() != inputs.shape[0] or not bool(((target == 0) | (target == 1)).all()):
        raise ValueError(
            f"`target` must hold {inputs.shape[0]} binary labels (0/1), got {target.numel()} values "
            f"{sorted(set(target.tolist()))[:5]}."
        )
    wanted = target.bool()
    if method == "nngp_ep" and num_init_samples <= wanted.numel():
        raise ValueError(
            f"`num_init_samples` ({num_init_samples}) must exceed the number of inputs ({wanted.numel()}) "
            "for `method='nngp_ep'`: the estimated kernel would be singular."
        )
    scores = _init_scores(model_factory, inputs, num_init_samples, seed, score).cpu()
    settings = {"seed": seed, "num_inputs": int(wanted.numel())}
    if method == "monte_carlo":
        patterns, counts = torch.unique(scores > 0, dim=0, return_counts=True)
        hits = int(counts[(patterns == wanted).all(dim=1)].sum())
        p = hits / num_init_samples
        log_p = math.log(p) if hits else float("-inf")
        stderr = math.sqrt((1 - p) / hits) if hits else float("nan")
        return VolumeResult(log_p, method, wanted, num_init_samples, stderr, patterns, counts, extra=settings)
    mean = scores.mean(dim=0)
    centred = scores - mean
    kernel = centred.T @ centred / (num_init_samples - 1)
    if not bool((kernel.diagonal() > 0).all()):
        raise ValueError(
            "the random networks from `model_factory` give the same output on some input every time "
            "(zero variance): does the factory seed the random generator itself? It must draw a new "
            "initialization at each call."
        )
    jitter = 1e-6 * float(kernel.diagonal().mean())
    kernel = kernel + jitter * torch.eye(kernel.shape[0], dtype=kernel.dtype)
    signs = wanted.double() * 2 - 1
    log_p, diagnostics = orthant_log_probability(mean, kernel, signs)
    return VolumeResult(
        log_p,
        method,
        wanted,
        num_init_samples,
        mean=mean,
        kernel=kernel,
        extra={**settings, **diagnostics, "jitter": jitter},
    )

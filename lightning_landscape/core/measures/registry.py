"""The one registry of named sharpness measures, and what a measure returns.

A *measure* is a function ``measure(model, batches, *, loss_fn=None, seed=0, num_samples=None,
params=None, **options) -> SharpnessResult``: the loss, seed, data cap and parameter choice every
measure shares, then options of its own, each with a default. :func:`register_measure` adds one
under a name; from then on :func:`~lightning_landscape.core.measures.sharpness.sharpness`,
``SharpnessMonitor(measures=[...])`` (from Python or YAML) and ``lightning-landscape sharpness
--measures [...]`` compute it by that name, and its options are checked before any work, as ours
are: names against its signature, values by the ``check`` it registers with (called with the
function's defaults and the options given).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from lightning_landscape.core.base.evaluation import evaluate
    >>> def loss_at_center(model, batches, *, loss_fn=None, seed=0, num_samples=None, params=None,
    ...                    scale=1.0):
    ...     loss = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
    ...     return SharpnessResult("loss_at_center", scale * loss, loss)
    >>> def check(scale, **_):
    ...     if not scale > 0:
    ...         raise ValueError(f"`scale` must be > 0, got {scale}.")
    >>> _ = register_measure("loss_at_center", loss_at_center, check=check)
    >>> check_measure_options("loss_at_center", {"scale": -1.0})
    Traceback (most recent call last):
    ...
    ValueError: `measure_kwargs['loss_at_center']`: `scale` must be > 0, got -1.0.
    >>> unregister_measure("loss_at_center")
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..base.results import ResultFile

__all__ = [
    "BasinVolumeResult",
    "check_measure_kwargs",
    "check_measure_options",
    "measure_defaults",
    "measure_names",
    "MeasureSpec",
    "register_measure",
    "registered_measure",
    "SharpnessResult",
    "unregister_measure",
]


@dataclass(frozen=True)
class SharpnessResult(ResultFile):
    """One sharpness measure at θ₀.

    Attributes:
        measure: the measure's name.
        value: its value (for ``"basin_volume"``: the log-volume ``log E[rⁿ]``).
        center_loss: ``L₀``.
        stderr: standard error where the measure is an average (``"average"``), else ``None``.
        extra: free-form metadata: the settings used and by-products (e.g. ``max_loss`` for ascent
            measures, ``converged`` for a Lanczos run), as ``extra`` in every result.

    Example:
        >>> SharpnessResult("keskar", 0.5, 0.1).scalars()
        {'keskar': 0.5, 'center_loss': 0.1}
    """

    measure: str
    value: float
    center_loss: float
    stderr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """What a monitor logs: ``<measure>``, ``center_loss``, ``<measure>_stderr`` (when there is
        one), ``<measure>_converged`` (when a Lanczos run reports it) and, for the basin volume,
        ``basin_volume_not_crossed`` (the keys depend on the measure, never on the values)."""
        values = {self.measure: float(self.value), "center_loss": float(self.center_loss)}
        if self.stderr is not None:
            values[f"{self.measure}_stderr"] = float(self.stderr)
        if isinstance(self.extra.get("converged"), bool):
            values[f"{self.measure}_converged"] = float(self.extra["converged"])
        return values


def _empty(dtype: torch.dtype):
    return field(default_factory=lambda: torch.zeros(0, dtype=dtype))


@dataclass(frozen=True)
class BasinVolumeResult(SharpnessResult):
    """Huang et al.'s basin volume: a :class:`SharpnessResult` (``value`` is the log-volume
    ``log E[rⁿ]``) with the radius along every direction.

    Attributes:
        radii: the radius along every direction (float64; empty where the weights diverged).
        crossed: whether each direction reached the threshold (bool).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
        >>> from lightning_landscape import basin_volume
        >>> result = basin_volume(net, data, num_probes=3, max_radius=50.0, num_scan=5, num_bisect=3)
        >>> sorted(result.scalars())
        ['basin_volume', 'basin_volume_not_crossed', 'center_loss']
    """

    radii: torch.Tensor = _empty(torch.float64)
    crossed: torch.Tensor = _empty(torch.bool)

    ARRAYS = {"radii": "float[m]", "crossed": "bool[m]"}

    def scalars(self) -> dict[str, float]:
        """As :meth:`SharpnessResult.scalars`, with ``basin_volume_not_crossed``: directions that
        never reached the threshold, which make the volume a lower bound."""
        return {**super().scalars(), "basin_volume_not_crossed": float(self.extra.get("num_not_crossed", 0))}


SHARED_ARGUMENTS = ("model", "batches", "loss_fn", "seed", "num_samples", "params")
"""What every measure takes; the caller gives the first five, ``params`` may be an option too."""

_GIVEN_BY_CALLER = {"model", "batches", "loss_fn", "seed", "num_samples"}


@dataclass(frozen=True)
class MeasureSpec:
    """A registered measure.

    Attributes:
        name: the name it is computed by.
        function: ``function(model, batches, *, loss_fn, seed, num_samples, params, **options)``,
            returning a :class:`SharpnessResult`.
        check: ``check(**options)`` raises ``ValueError``/``TypeError`` on a bad option value (it is
            given the function's defaults with the options over them); ``None``: names only.
        options: the function's own options with their defaults (``params`` among them).
        guarded: whether :func:`~lightning_landscape.core.measures.sharpness.sharpness` runs it
            inside a guard that restores the model, its gradients and every random stream
            (measures registered from outside; ours restore everything themselves, tested).
    """

    name: str
    function: Callable[..., SharpnessResult]
    check: Callable[..., Any] | None
    options: dict[str, Any]
    guarded: bool = True


_REGISTRY: dict[str, MeasureSpec] = {}


def register_measure(
    name: str,
    function: Callable[..., SharpnessResult],
    *,
    check: Callable[..., Any] | None = None,
    replace: bool = False,
    guarded: bool = True,
) -> MeasureSpec:
    """Add ``function`` to the registry under ``name`` (see the module docstring for its form).

    A measure from outside runs ``guarded``: whatever it does to the model (weights written in
    place, train mode, ``.grad``) and to the random streams is undone when it returns or raises.

    Raises:
        ValueError: ``name`` is not an identifier, is taken (unless ``replace``), or ``function``
            lacks one of the shared keyword arguments, or has an option without a default.
        TypeError: ``function`` or ``check`` is not callable.

    Example:
        >>> from lightning_landscape import SharpnessResult, evaluate, measure_names, unregister_measure
        >>> def loss_at_center(model, batches, *, loss_fn=None, seed=0, num_samples=None, params=None):
        ...     loss = evaluate(model, batches, loss_fn=loss_fn, num_samples=num_samples).loss
        ...     return SharpnessResult("loss_at_center", loss, loss)
        >>> spec = register_measure("loss_at_center", loss_at_center)
        >>> "loss_at_center" in measure_names(), spec.options
        (True, {'params': None})
        >>> unregister_measure("loss_at_center")
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"`name` must be an identifier such as 'my_sharpness', got {name!r}.")
    if name in _REGISTRY and not replace:
        raise ValueError(
            f"`name` {name!r} is a registered measure already; pass `replace=True` to replace it."
        )
    if not callable(function):
        raise TypeError(f"`function` must be callable, got {type(function).__name__}.")
    if check is not None and not callable(check):
        raise TypeError(f"`check` must be None or callable, got {type(check).__name__}.")
    parameters = inspect.signature(function).parameters
    missing = [a for a in SHARED_ARGUMENTS if a not in parameters]
    if missing:
        raise ValueError(
            f"`function` of measure {name!r} must take the shared arguments {list(SHARED_ARGUMENTS)}; "
            f"it lacks {missing}."
        )
    options = {}
    for p in parameters.values():
        if p.name in _GIVEN_BY_CALLER or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is inspect.Parameter.empty:
            raise ValueError(f"option `{p.name}` of measure {name!r} needs a default value.")
        options[p.name] = p.default
    spec = MeasureSpec(name, function, check, options, bool(guarded))
    _REGISTRY[name] = spec
    return spec


def unregister_measure(name: str) -> None:
    """Remove the measure ``name`` from the registry (a no-op for a name that is not there).

    Example:
        >>> from lightning_landscape import measure_names
        >>> unregister_measure("never_registered")  # a no-op
        >>> "keskar" in measure_names()
        True
    """
    _REGISTRY.pop(name, None)


def measure_names() -> tuple[str, ...]:
    """Every registered measure name, in the order of registration (ours first).

    Example:
        >>> names = measure_names()
        >>> names[:3]
        ('top_eigenvalue', 'trace', 'keskar')
    """
    return tuple(_REGISTRY)


def registered_measure(name: Any, where: str = "measure") -> MeasureSpec:
    """The registered measure ``name``; an unknown one is refused naming ``where``."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"`{where}` names an unknown measure {name!r}; choose from {measure_names()}.")
    return _REGISTRY[name]


def measure_defaults(name: str) -> dict[str, Any]:
    """The options of the measure ``name`` with their defaults."""
    return dict(registered_measure(name).options)


def check_measure_options(
    name: str, options: Mapping[str, Any], where: str | None = "measure_kwargs"
) -> dict[str, Any]:
    """Refuse an unknown measure, an option its function does not take, or a bad option value
    (through the check it was registered with, given its defaults), naming ``where[name]`` (the
    bare option for ``where=None``).

    >>> check_measure_options("trace", {"num_probes": 0})
    Traceback (most recent call last):
    ...
    ValueError: `measure_kwargs['trace']`: `num_probes` must be an integer >= 3, got 0.
    """
    spec = registered_measure(name, "measure" if where is None else where)
    if not isinstance(options, Mapping):
        raise TypeError(f"the options of measure {name!r} must be a dict, got {type(options).__name__}.")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        place = f"measure {name!r}" if where is None else f"`{where}[{name!r}]`"
        raise ValueError(f"{place} has unknown option(s) {unknown}; allowed: {sorted(spec.options)}.")
    if spec.check is not None:
        try:
            spec.check(**{**spec.options, **options})
        except (TypeError, ValueError) as exc:
            if where is None:
                raise
            raise type(exc)(f"`{where}[{name!r}]`: {exc}") from exc
    return dict(options)


def check_measure_kwargs(
    kwargs: Mapping[str, Mapping[str, Any]] | None,
    measures: Any,
    params: Any = None,
) -> dict[str, dict[str, Any]]:
    """``measures`` (registered names) and their options ``kwargs`` (measure name → options), each
    checked (:func:`check_measure_options`); options for a measure not in ``measures`` are refused.
    Returns every measure's options, with ``params`` for those that do not choose their own.

    >>> check_measure_kwargs({"keskar": {"epsilon": 5e-4}}, ["keskar", "trace"])
    {'keskar': {'epsilon': 0.0005}, 'trace': {}}
    """
    if isinstance(measures, str) or not isinstance(measures, (list, tuple)) or not measures:
        raise ValueError(f"`measures` must be a non-empty list of measure names, got {measures!r}.")
    for name in measures:
        registered_measure(name, "measures")
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, Mapping) or not all(isinstance(o, Mapping) for o in kwargs.values()):
        raise TypeError(
            "`measure_kwargs` must be None or a dict measure name -> dict of its options (e.g. "
            f"{{'keskar': {{'epsilon': 5e-4}}}}), got {kwargs!r}."
        )
    unasked = [name for name in kwargs if name not in measures]
    if unasked:
        raise ValueError(
            f"`measure_kwargs` names {unasked[0]!r}, which is not in `measures` {tuple(measures)}."
        )
    checked = {name: check_measure_options(name, kwargs.get(name, {})) for name in measures}
    if params is not None:
        checked = {name: {"params": params, **options} for name, options in checked.items()}
    return checked

"""``VolumeMonitor``: the prior volume of the learned function and the Laplace evidence."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import nn
from typing_extensions import override

from .._checks import check_callable, check_choice, check_int, check_positive_float
from ..core.base._inputs import check_loss_fn
from ..core.base.batches import evaluation_subset
from ..core.base.params import observing, preserve_rng_state
from ..core.measures.evidence import log_evidence
from ..core.measures.volume import binary_scores, function_volume
from ..user_module import CROSS_ENTROPY, batch_transfer
from ._base import EpochMonitor, trainer_datamodule

__all__ = ["VolumeMonitor"]


class VolumeMonitor(EpochMonitor):
    """Log ``log P(f)`` (Zhang et al.'s volume) and the Laplace log evidence (Smith & Le).

    Every ``every_n_epochs`` epochs (and at the end of training):

    - ``{tag}/log_prior``: ``log P(f)`` in nats, the log-probability that a network from
      ``model_factory()`` computes the labels the model now predicts on a fixed set of
      ``num_inputs`` training inputs (binary classifiers: one output, or two logits), by
      ``method`` (:func:`~lightning_landscape.function_volume`); computed on global rank zero;
    - ``{tag}/log_evidence``, ``{tag}/data_term``, ``{tag}/occam_term``, ``{tag}/prior_term``: the
      Laplace evidence of the model on the monitor's evaluation subset of ``num_samples`` training
      samples with prior precision ``prior_precision``
      (:func:`~lightning_landscape.log_evidence`), shards reduced under DDP;
    - ``{tag}/log_evidence_ratio`` against the uniform-label model, for class logits.

    Args:
        model_factory: returns a freshly initialized network of the same architecture (the prior);
            default ``type(module)(**hparams)`` with the module's saved hyperparameters that its
            constructor takes (LightningCLI's extra keys are dropped), which needs a module that
            called ``self.save_hyperparameters()``. Checked at setup: it must build a network
            whose outputs on the inputs have the module's shape.
        num_inputs: inputs the function is measured on (fixed, drawn once with ``seed``).
        num_init_samples: random networks behind the volume estimate (> ``num_inputs`` for
            ``"nngp_ep"``).
        method: ``"nngp_ep"`` or ``"monte_carlo"``.
        output_fn: output → one score per input whose sign is the label (default: the output for
            one unit, the logit difference for two).
        prior_precision: λ of the evidence's Gaussian prior (``N·weight_decay`` matches an L2
            penalty on the mean loss).
        evidence_method: ``"slq"`` or ``"exact"``.
        curvature: ``"ggn"`` (default: the Gauss-Newton matrix of the cross-entropy, defined
            wherever training is) or ``"hessian"`` (NaN Occam term where the Hessian form has
            eigenvalues ≤ 0). ``"ggn"`` needs the cross-entropy: ``loss_fn="cross_entropy"``, or
            ``None`` for a module whose own training loss is the cross-entropy of its outputs
            (checked at setup on one batch; otherwise setup fails naming ``loss_fn``).
        num_samples: evaluation subset of the evidence.

        **kwargs: the options every monitor shares, declared once in
            :class:`~lightning_landscape.callbacks._base.EpochMonitor`: ``every_n_epochs``,
            ``budget``, ``at_train_end``, ``eval_batch_size``, ``seed``, ``loss_fn``, ``data``,
            ``tag``.
    Example:
        >>> monitor = VolumeMonitor(every_n_epochs=5, num_inputs=32, prior_precision=10.0)
        >>> VolumeMonitor(num_inputs=64, num_init_samples=64)
        Traceback (most recent call last):
        ...
        ValueError: `num_init_samples` (64) must exceed `num_inputs` (64) for method='nngp_ep'.
    """

    DEFAULT_TAG = "volume"

    def __init__(
        self,
        model_factory: Callable[[], nn.Module] | None = None,
        num_inputs: int = 64,
        num_init_samples: int = 2000,
        method: Literal["nngp_ep", "monte_carlo"] = "nngp_ep",
        output_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        prior_precision: float = 1.0,
        evidence_method: Literal["slq", "exact"] = "slq",
        curvature: Literal["hessian", "ggn"] = "ggn",
        *,
        num_samples: int = 512,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            num_samples=num_samples,
            **kwargs,
        )
        self.model_factory = check_callable("model_factory", model_factory)
        self.num_inputs = check_int("num_inputs", num_inputs, minimum=1)
        self.num_init_samples = check_int("num_init_samples", num_init_samples, minimum=2)
        self.method = check_choice("method", method, ("nngp_ep", "monte_carlo"))
        if method == "nngp_ep" and num_init_samples <= num_inputs:
            raise ValueError(
                f"`num_init_samples` ({num_init_samples}) must exceed `num_inputs` ({num_inputs}) "
                "for method='nngp_ep'."
            )
        self.output_fn = check_callable("output_fn", output_fn)
        self.prior_precision = check_positive_float("prior_precision", prior_precision)
        self.evidence_method = check_choice("evidence_method", evidence_method, ("slq", "exact"))
        self.curvature = check_choice("curvature", curvature, ("hessian", "ggn"))
        if curvature == "ggn" and self.loss_fn not in (None, CROSS_ENTROPY):
            raise ValueError(
                "`curvature='ggn'` is the Gauss-Newton matrix of the cross-entropy: pass "
                "`loss_fn='cross_entropy'` (or None) or use curvature='hessian'; "
                f"got `loss_fn={self.loss_fn!r}`."
            )
        self._inputs: torch.Tensor | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(tag=self.tag, method=self.method, num_inputs=self.num_inputs)

    def cost_units(self) -> float:
        """The random networks' forward passes over the inputs, in subset passes, plus a rough 90
        for the evidence's log-determinant (corrected by every measured run)."""
        return self.num_init_samples * self.num_inputs / self.num_samples + 90.0

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.model_factory is None and not getattr(pl_module, "hparams", None):
            raise ValueError(
                f"{type(self).__name__} needs `model_factory` (a function returning a freshly initialized "
                f"network) because {type(pl_module).__name__} saved no hyperparameters to rebuild "
                "itself from (call self.save_hyperparameters() in its __init__)."
            )

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Fail fast: the loss, the GGN's cross-entropy, the output shape and the model factory."""
        super().on_train_start(trainer, pl_module)
        batch = self.evaluation_batches(trainer, pl_module)[0]
        if self.curvature == "ggn" and self.loss_fn is None:
            self._check_own_loss_is_cross_entropy(pl_module, batch)
        inputs = self.function_inputs(trainer, pl_module)
        score = self.output_fn or binary_scores
        with observing(pl_module):
            try:
                score(pl_module(inputs[:2]))
            except (ValueError, RuntimeError, TypeError) as exc:
                raise ValueError(f"{type(self).__name__} cannot score the module's outputs: {exc}") from exc
        with preserve_rng_state():
            try:
                prior = self._factory(pl_module)()
            except Exception as exc:
                raise ValueError(
                    f"{type(self).__name__}'s `model_factory` failed to build a network: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        prior = prior.to(pl_module.device)
        with observing(prior), observing(pl_module):
            got, want = tuple(prior(inputs[:2]).shape), tuple(pl_module(inputs[:2]).shape)
        if got != want:
            raise ValueError(
                f"{type(self).__name__}'s `model_factory` builds a network with outputs of shape {got}; the "
                f"module's are {want}: it must build the module's architecture."
            )

    def _check_own_loss_is_cross_entropy(self, pl_module: pl.LightningModule, batch: Any) -> None:
        own = check_loss_fn(pl_module, batch, self.loss_function(pl_module))
        try:
            fused = check_loss_fn(pl_module, batch)  # the default: cross-entropy of class logits
        except ValueError:  # not (x, y) batches of class logits
            fused = float("nan")
        if not abs(own - fused) <= 1e-5 * max(1.0, abs(own)):
            raise ValueError(
                f"{type(self).__name__}(curvature='ggn') needs the cross-entropy of class logits, and the "
                f"module's own training loss ({own:.6g}) is not that ({fused:.6g}) on an evaluation "
                "batch: set `loss_fn='cross_entropy'` to use it anyway, or curvature='hessian'."
            )

    def _factory(self, pl_module: pl.LightningModule) -> Callable[[], nn.Module]:
        if self.model_factory is not None:
            return self.model_factory
        cls, hparams = type(pl_module), copy.deepcopy(dict(pl_module.hparams))
        parameters = inspect.signature(cls.__init__).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            hparams = {k: v for k, v in hparams.items() if k in parameters}
        return lambda: cls(**hparams)

    def function_inputs(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> torch.Tensor:
        """The fixed inputs of the volume: the same ``num_inputs`` inputs on every process."""
        if self._inputs is None or self._inputs.device != pl_module.device:
            batches = evaluation_subset(
                self.loader(trainer),
                self.num_inputs,
                self.num_inputs,
                self.seed,
                pl_module.device,
                transfer=batch_transfer(pl_module, pl_module.device, trainer_datamodule(trainer)),
            )
            if not all(isinstance(b, (list, tuple)) and isinstance(b[0], torch.Tensor) for b in batches):
                raise ValueError(
                    f"{type(self).__name__} measures the function on the inputs x of (x, y, ...) batches of "
                    f"tensors; the {self.data} loader gives batches of type {type(batches[0]).__name__}."
                )
            self._inputs = torch.cat([b[0] for b in batches])
        return self._inputs

    shards_compute = False  # the evidence is summed over processes, the volume is rank zero's

    @property
    def last_values(self) -> dict[str, float]:
        """The last run's tagged values (empty before the first run)."""
        return self.last_result or {}

    @override
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """The scalars (the volume only on global rank zero)."""
        values: dict[str, Any] = {}
        with self.sharded(trainer):
            evidence = log_evidence(
                pl_module,
                self.evaluation_batches(trainer, pl_module),
                prior_precision=self.prior_precision,
                loss_fn=CROSS_ENTROPY if self.curvature == "ggn" else self.loss_function(pl_module),
                method=self.evidence_method,
                curvature=self.curvature,
                seed=self.seed,
            )
        values.update(
            {
                f"{self.tag}/log_evidence": evidence.log_evidence,
                f"{self.tag}/data_term": evidence.data_term,
                f"{self.tag}/occam_term": evidence.occam_term,
                f"{self.tag}/prior_term": evidence.prior_term,
            }
        )
        if evidence.log_evidence_ratio is not None:
            values[f"{self.tag}/log_evidence_ratio"] = evidence.log_evidence_ratio
        log_prior = None
        if trainer.is_global_zero:
            volume = function_volume(
                self._factory(pl_module),
                self.function_inputs(trainer, pl_module),
                model=pl_module,
                num_init_samples=self.num_init_samples,
                method=self.method,
                output_fn=self.output_fn,
                seed=self.seed,
            )
            log_prior = volume.log_probability
        if trainer.world_size > 1:  # every process logs the same names and values
            log_prior = trainer.strategy.broadcast(log_prior)
        values[f"{self.tag}/log_prior"] = log_prior
        return values

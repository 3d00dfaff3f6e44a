"""``lightning-landscape``: landscapes, interpolations and sharpness of saved checkpoints.

Commands (``lightning-landscape <command> --help`` lists every option; options may also come from a
YAML file given with ``--config``, jsonargparse's convention, as in LightningCLI):

- ``surface``: the 1D/2D landscape of a checkpoint;
- ``interpolate``: the loss along the line between two checkpoints;
- ``sharpness``: curvature and sharpness measures of a checkpoint;
- ``plot``: redraw a saved landscape result with other options, without the model;
- ``export-vtk``: a saved 2D result as a ``.vts``/``.vtp`` surface for ParaView;
- ``animate``: the monitors' GIFs (the path, the landscape epoch by epoch) from a run's folder;
- ``report``: one interactive HTML page of a run's results, to open offline.

The model and data come from the LightningCLI configuration the model was trained with
(``--model_config``, e.g. the ``config.yaml`` LightningCLI saves beside the logs): its ``model``
and ``data`` sections, each either ``{class_path, init_args}`` or plain keyword arguments for the
class given with ``--model_class`` / ``--data_class`` (a dotted import path; the configuration's
folder and the working directory are searched first). The weights come from the checkpoint's
``state_dict``. Every command writes into ``--output_dir`` and prints what it wrote.

A mistake in the input (a missing checkpoint, a configuration that names no model, a loss that
cannot read the batches) is said in one line, with exit status 2; ``--debug`` shows the traceback.

The loss is the module's own ``training_step`` loss by default (the cross-entropy for a plain
module without one), on batches passed through the
module's and the data module's batch hooks as in training; ``--loss_fn`` takes the other forms of
the monitors (:mod:`lightning_landscape.user_module`): ``cross_entropy`` (fused, with accuracy), a
method name of the module, a dotted path of a function ``loss_fn(model, batch)`` or of a loss
class (``torch.nn.MSELoss``), or ``{class_path: ..., init_args: ...}`` of a loss module.

Example:
    lightning-landscape surface --model_config example_projects/digits/config.yaml \\
        --model_class digits.DigitsClassifier --data_class digits.DigitsDataModule \\
        --ckpt_path lightning_logs/digits/version_0/checkpoints/last.ckpt --output_dir surface
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal, cast

import torch

from .core.base._inputs import check_loss_fn
from .core.base.batches import evaluation_subset, stream_batches
from .core.base.distributed import sharded
from .core.base.evaluation import loss_name
from .core.base.results import LandscapeResult, load_result
from .core.landscapes.chunked import compute_landscape_in_chunks
from .core.landscapes.interpolation import interpolate as interpolate_states
from .core.measures.registry import check_measure_kwargs
from .core.measures.report import SharpnessReport
from .export import export_vtk as write_vtk
from .user_module import (
    LossSpec,
    batch_transfer,
    check_loss_spec,
    describe_loss,
    move_criterion,
    resolve_loss_fn,
)

__all__ = [
    "animate",
    "connect",
    "export_vtk",
    "interpolate",
    "main",
    "plot",
    "report",
    "run",
    "sharpness",
    "surface",
]


# ------------------------------------------------------------------ loading
def _import(path: str, what: str = "class") -> Any:
    module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"`{what}` must be a dotted path 'package.module.Class', got {path!r}.")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"`{what}` {path!r} cannot be imported: {exc}") from exc


def _instantiate(section: Any, class_path: str | None, what: str) -> Any:
    if section is not None and not isinstance(section, dict):
        raise ValueError(
            f"`model_config`: its `{what}` section must be a mapping, got {type(section).__name__}."
        )
    section = dict(section or {})
    if "class_path" in section:
        class_path = section["class_path"]
        section = dict(section.get("init_args") or {})
    if class_path is None:
        raise ValueError(
            f"the configuration's `{what}` section has no class_path: give --{what}_class "
            "(a dotted path such as 'digits.DigitsClassifier')."
        )
    kind = _import(class_path, f"{what}_class")
    try:
        return kind(**section)
    except TypeError as exc:
        raise ValueError(
            f"`model_config`: {class_path}({', '.join(section)}) cannot be built: {exc}"
        ) from exc


LossOption = str | dict | None
"""``--loss_fn`` on the command line: a name (``cross_entropy``, a method, a dotted path of a
function or a loss class) or ``{class_path, init_args}`` of a loss module."""


def _loss_spec(option: LossOption) -> LossSpec:
    """The core's ``loss_fn`` form of ``--loss_fn``: a ``{class_path, init_args}`` mapping builds
    the loss module it names (an ``nn.Module`` class, nothing else)."""
    if not isinstance(option, dict):
        return option
    if "class_path" not in option:
        raise ValueError(
            f"`loss_fn` as a mapping must be {{class_path, init_args}} of a loss module, got {option!r}."
        )
    kind = _import(str(option["class_path"]), "loss_fn")
    if not (isinstance(kind, type) and issubclass(kind, torch.nn.Module)):
        raise ValueError(
            f"`loss_fn` {option['class_path']!r} is not a loss module (a torch.nn.Module class)."
        )
    return kind(**dict(option.get("init_args") or {}))


def load_model_and_data(
    model_config: str,
    ckpt_path: str | None,
    model_class: str | None,
    data_class: str | None,
    device: torch.device,
) -> tuple[torch.nn.Module, Any]:
    """The model (weights from ``ckpt_path``, on ``device``, eval mode) and the data module."""
    import yaml

    if not os.path.isfile(model_config):
        raise ValueError(f"`model_config` {model_config!r} is not a file.")
    if ckpt_path is not None and not os.path.isfile(ckpt_path):
        raise ValueError(f"`ckpt_path` {ckpt_path!r} is not a file.")
    with open(model_config) as fh:
        try:
            config = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ValueError(
                f"`model_config` {model_config!r} is not YAML: {str(exc).splitlines()[0]}"
            ) from exc
    for folder in (os.getcwd(), os.path.dirname(os.path.abspath(model_config))):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    if not isinstance(config, dict):
        raise ValueError(f"`model_config` {model_config!r} is not a LightningCLI configuration (a mapping).")
    model = _instantiate(config.get("model"), model_class, "model")
    data = _instantiate(config.get("data"), data_class, "data")
    if ckpt_path is not None:
        try:
            model.load_state_dict(_state_dict(ckpt_path))
        except RuntimeError as exc:  # other names or shapes: another model's checkpoint
            first = str(exc).strip().splitlines()[:2]
            raise ValueError(
                f"`ckpt_path` {ckpt_path!r} does not fit the model of `model_config`: {' '.join(first)[:300]}"
            ) from exc
    return model.to(device).eval(), data


def _state_dict(ckpt_path: str, name: str = "ckpt_path") -> dict[str, torch.Tensor]:
    """The weights of a Lightning checkpoint or a plain state dict, read without running its code.

    ``torch.load(weights_only=True)`` unpickles tensors and plain containers only; a file that needs
    more (an object whose unpickling would call arbitrary functions) is refused.
    """
    import pickle

    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as exc:
        raise ValueError(
            f"`{name}` {ckpt_path!r} cannot be read as tensors and plain containers only "
            "(torch.load(weights_only=True) refused it): it holds other objects, whose unpickling could "
            "run code. Only the weights are needed: save them with torch.save(model.state_dict(), path) "
            f"or re-save the checkpoint without custom objects. ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"`{name}` {ckpt_path!r} is neither a Lightning checkpoint nor a state dict (name → tensor)."
        )
    return state


class _Engine:
    """The processes a command runs on, launched by Lightning Fabric: this process's device, rank
    and the sum over processes (``None`` with one process)."""

    def __init__(self, accelerator: str, devices: Any, num_nodes: int, strategy: str) -> None:
        from lightning.fabric import Fabric

        self.fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy)
        self.fabric.launch()  # under ddp: starts the other processes, each running this command
        self.device = self.fabric.device
        self.rank, self.world_size = self.fabric.global_rank, self.fabric.world_size

    @property
    def is_writer(self) -> bool:
        """Only global rank zero writes files and prints."""
        return self.rank == 0

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        total = self.fabric.all_reduce(tensor, reduce_op="sum")
        return cast(torch.Tensor, total)  # Fabric returns what it is given: a tensor in, a tensor out

    def sharded(self):
        """The context in which core functions sum over this engine's processes."""
        return sharded(self.reduce_sum if self.world_size > 1 else None)

    def barrier(self) -> None:
        if self.world_size > 1:
            self.fabric.barrier()

    def from_rank_zero(self, read: Any) -> Any:
        """``read()`` on rank zero, its value (or its error) on every process: the others may not
        see rank zero's files (other nodes), and an error raised on one rank alone would leave the
        others waiting."""
        value = error = None
        if self.is_writer:
            try:
                value = read()
            except Exception as exc:  # raised below, on every process
                error = exc
        if self.world_size > 1:
            value, error = self.fabric.broadcast((value, error), src=0)
        if error is not None:
            raise error
        return value


def _data(
    data: Any,
    model: torch.nn.Module,
    num_samples: int | str,
    eval_batch_size: int,
    seed: int,
    engine: _Engine,
    *,
    stream: bool,
    num_workers: int | None = None,
) -> Any:
    """This process's shard of the training data, through the batch hooks training uses: a cached
    subset of ``num_samples``, or with ``num_samples="all"`` every sample (streamed when ``stream``,
    else cached)."""
    if num_samples != "all" and (
        isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1
    ):
        raise ValueError(f"`num_samples` must be an integer >= 1 or 'all', got {num_samples!r}.")
    if hasattr(data, "prepare_data") and engine.is_writer:
        data.prepare_data()
    engine.barrier()
    if hasattr(data, "setup"):
        data.setup("fit")
    loader = data.train_dataloader()
    transfer = batch_transfer(model, engine.device, data)
    if num_samples == "all" and stream:
        return stream_batches(
            loader,
            eval_batch_size,
            engine.device,
            rank=engine.rank,
            world_size=engine.world_size,
            num_workers=num_workers,
            transfer=transfer,
        )
    count = _data_set_size(loader) if num_samples == "all" else int(num_samples)
    return evaluation_subset(
        loader,
        count,
        eval_batch_size,
        seed,
        engine.device,
        rank=engine.rank,
        world_size=engine.world_size,
        transfer=transfer,
    )


def _data_set_size(loader: Any) -> int:
    dataset = getattr(loader, "dataset", None)
    if dataset is None or not hasattr(dataset, "__len__"):
        raise ValueError(
            "`num_samples='all'` needs a loader over a data set with a length; "
            f"{type(dataset if dataset is not None else loader).__name__} has none: give an integer "
            "`num_samples`."
        )
    return len(dataset)


def _file_hash(path: str) -> str:
    """SHA-256 of a file's bytes (what identifies a checkpoint in a resumable result)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _loss(loss_fn: LossOption, model: torch.nn.Module, device: torch.device, batches: Any):
    """The core's ``loss_fn(model, batch)`` for the ``--loss_fn`` form (the default: the module's
    own training loss, or the cross-entropy of a model without a ``training_step``), checked on
    the first batch before any work (an error names ``loss_fn``)."""
    spec = _loss_spec(loss_fn)
    check_loss_spec("loss_fn", spec)
    move_criterion(spec, device)
    loss = resolve_loss_fn(spec, model)
    check_loss_fn(model, next(iter(batches)), loss, finite=False)
    return loss


def _written(paths: Sequence[str]) -> list[str]:
    for path in paths:
        print(path)
    return list(paths)


def _save_figures(figures: dict[str, Any], output_dir: str, prefix: str) -> list[str]:
    paths = []
    for name, figure in figures.items():
        path = os.path.join(output_dir, f"{prefix}-{name}.png")
        figure.savefig(path, dpi=120)
        paths.append(path)
    return paths


# ------------------------------------------------------------------ commands
_ENGINE_ARGS = """
        accelerator: auto, cpu, gpu, mps... (Lightning Fabric's).
        devices: devices per node: a number, a list of indices or auto.
        num_nodes: machines, each running devices processes.
        strategy: auto or ddp...: each process takes a shard; rank zero writes."""


def surface(
    model_config: str,
    ckpt_path: str,
    output_dir: str = "landscape",
    model_class: str | None = None,
    data_class: str | None = None,
    dims: Literal[1, 2] = 2,
    num_points: int = 21,
    span: tuple[float, float] = (-1.0, 1.0),
    normalization: Literal["filter", "layer"] | None = "filter",
    num_samples: int | Literal["all"] = 1024,
    eval_batch_size: int = 256,
    seed: int = 0,
    points_per_forward: int | Literal["auto"] = 1,
    autocast: Literal["bf16", "fp16"] | None = None,
    chunk_points: int = 64,
    resume: bool = False,
    num_workers: int | None = None,
    log_scale: bool = False,
    accelerator: str = "auto",
    devices: int | list[int] | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    loss_fn: LossOption = None,
    params: list[str] | None = None,
    directions: Literal["random", "hessian", "hessian_extremes"] = "random",
) -> list[str]:
    """The filter-normalized landscape of a checkpoint: ``surface.npz`` and its figures.

    The grid is evaluated in chunks of ``chunk_points`` points; after each chunk the result so far
    (a ``computed`` mask, the losses, accuracies, directions and settings) replaces
    ``surface.npz`` whole (written to a temporary file, then renamed), so a killed run loses at
    most one chunk: run the same command with ``--resume true`` to continue it.

    ``--num_samples all`` streams the whole training set; ``--resume true`` continues a partial
    result; ``--directions hessian`` takes Hessian eigenvectors (of 1024 samples) as axes.

    Args:
        model_config: LightningCLI config (model, data).
        ckpt_path: checkpoint with the weights.
        output_dir: folder for the result and figures.
        model_class: the module's class, if the config names none.
        data_class: the data's class, if the config names none.
        dims: 1 or 2 directions.
        num_points: grid points per axis.
        span: coefficient range per axis.
        normalization: filter, layer or null.
        num_samples: training samples evaluated, or all.
        eval_batch_size: evaluation batch size.
        seed: seed of directions and subset.
        points_per_forward: grid points per forward, or auto.
        autocast: bf16, fp16 or null.
        chunk_points: points per pass and per save.
        resume: continue the partial result in output_dir.
        num_workers: loader workers of streamed data.
        log_scale: draw log10 of the loss.{engine}
        loss_fn: training_step (default), cross_entropy, a method, a dotted path.
        params: glob patterns of the parameters to vary.
        directions: the axes.
    """
    from .plotting.landscape import landscape_figures

    engine = _Engine(accelerator, devices, num_nodes, strategy)
    path = os.path.join(output_dir, "surface.npz")
    earlier = engine.from_rank_zero(lambda: _earlier_result(path, resume))
    model, data = load_model_and_data(model_config, ckpt_path, model_class, data_class, engine.device)
    batches = _data(
        data, model, num_samples, eval_batch_size, seed, engine, stream=True, num_workers=num_workers
    )
    loss = _loss(loss_fn, model, engine.device, batches)  # refused before any bar or work
    settings = {
        "checkpoint_sha256": _file_hash(ckpt_path),
        "data": "train",
        "num_samples": num_samples,
        "eval_batch_size": eval_batch_size,
        "loss_fn": describe_loss(loss_fn),
    }
    grid = dict(dims=dims, num_points=num_points, span=span, normalization=normalization, seed=seed)
    grid.update(chunk_points=chunk_points, points_per_forward=points_per_forward, autocast=autocast)
    grid.update(directions=directions, params=params, settings=settings)
    result = _surface_in_chunks(model, batches, loss, grid, earlier, path, engine)
    if not engine.is_writer:
        return []
    paths = [result.save(path)]
    paths += _save_figures(landscape_figures(result, log_scale=log_scale), output_dir, "surface")
    return _written(paths)


def _surface_in_chunks(
    model: Any,
    batches: Any,
    loss: Any,
    grid: dict[str, Any],
    earlier: LandscapeResult | None,
    path: str,
    engine: _Engine,
) -> LandscapeResult:
    """The landscape chunk by chunk, each partial result saved to ``path`` (by the writing
    process) with a bar of the points done, and the speed reported at the end."""
    total = grid["num_points"] ** grid["dims"]
    done = 0 if earlier is None else _points_done(earlier)
    bar = _points_bar(total, done, engine.is_writer)

    def save(partial: LandscapeResult) -> None:
        if engine.is_writer:
            partial.save(path)
            bar.update(_points_done(partial) - bar.n)

    started = time.perf_counter()
    with engine.sharded():
        result = compute_landscape_in_chunks(
            model, batches, loss_fn=loss, resume=earlier, on_chunk=save, **grid
        )
    bar.close()
    if engine.is_writer:
        seconds = time.perf_counter() - started
        print(
            f"lightning-landscape: {total - done} grid points in {seconds:.1f} s "
            f"({(total - done) / seconds:.4g} points/s) on {engine.world_size} process(es)",
            file=sys.stderr,
        )
    return result


surface.__doc__ = (surface.__doc__ or "").format(engine=_ENGINE_ARGS)


def _earlier_result(path: str, resume: bool) -> LandscapeResult | None:
    """The partial result to continue with ``resume``; a partial one without it is refused."""
    if not os.path.exists(path):
        return None
    earlier = LandscapeResult.load(path)
    if resume:
        return earlier
    if not earlier.is_complete:
        raise ValueError(
            f"`resume` is false but {path!r} holds a partial landscape "
            f"({_points_done(earlier)} of {earlier.loss.numel()} points): give `--resume true` to "
            "continue it, or another `--output_dir` (or delete the file) to start afresh."
        )
    return None


def _points_done(result: LandscapeResult) -> int:
    return result.loss.numel() if result.computed is None else int(result.computed.sum())


def _points_bar(total: int, done: int, show: bool):
    """A progress bar over grid points (points/s and ETA), on the writing process only."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="loss landscape", unit="pt", disable=not show, smoothing=0.1)


def interpolate(
    model_config: str,
    start: str,
    end: str,
    output_dir: str = "interpolation",
    model_class: str | None = None,
    data_class: str | None = None,
    num_points: int = 51,
    span: tuple[float, float] = (-0.5, 1.5),
    num_samples: int | Literal["all"] = 1024,
    eval_batch_size: int = 256,
    seed: int = 0,
    num_workers: int | None = None,
    accelerator: str = "auto",
    devices: int | list[int] | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    loss_fn: LossOption = None,
    params: list[str] | None = None,
) -> list[str]:
    """The loss along ``(1−α)·start + α·end`` (every float buffer too): ``interpolation.npz`` + figure.

    Args:
        model_config: LightningCLI YAML with the ``model`` and ``data`` sections.
        start: checkpoint at α = 0.
        end: checkpoint at α = 1.
        output_dir: folder for the result and figure.
        model_class: dotted path of the LightningModule when the config names none.
        data_class: dotted path of the LightningDataModule when the config names none.
        num_points: points along the line.
        span: α range (both end points are always on the grid).
        num_samples: evaluation subset drawn from the training data; ``all``: the whole training
            set, streamed from the loader for every point.
        eval_batch_size: evaluation batch size.
        seed: seed of the subset.
        num_workers: loader workers of the streamed data (default: the data module's loader's).{engine}
        loss_fn: default: the module's own training_step loss (cross-entropy for a plain
            module); ``cross_entropy``, a method name, a dotted path of a function
            ``loss_fn(model, batch)`` or of a loss class, or ``{{class_path, init_args}}``.
        params: glob patterns of the parameters to vary (e.g. ``'*.lora_*'``); default all.
    """
    from .plotting.trajectory import plot_interpolation

    engine = _Engine(accelerator, devices, num_nodes, strategy)
    model, data = load_model_and_data(model_config, None, model_class, data_class, engine.device)
    batches = _data(
        data, model, num_samples, eval_batch_size, seed, engine, stream=True, num_workers=num_workers
    )
    loss = _loss(loss_fn, model, engine.device, batches)
    states = _state_dict(start, "start"), _state_dict(end, "end")
    with engine.sharded():
        result = interpolate_states(
            model,
            batches,
            *states,
            num_points=num_points,
            span=span,
            loss_fn=loss,
            progress_bar=engine.is_writer,
            params=params,
        )
    if not engine.is_writer:
        return []
    os.makedirs(output_dir, exist_ok=True)
    paths = [result.save(os.path.join(output_dir, "interpolation.npz"))]
    figure = plot_interpolation(result)
    paths.append(os.path.join(output_dir, "interpolation.png"))
    figure.savefig(paths[-1], dpi=120)
    return _written(paths)


interpolate.__doc__ = (interpolate.__doc__ or "").format(engine=_ENGINE_ARGS)


def connect(
    model_config: str,
    start: str,
    end: str,
    output_dir: str = "connect",
    model_class: str | None = None,
    data_class: str | None = None,
    curve: Literal["bezier", "polychain"] = "bezier",
    num_bends: int = 1,
    steps: int = 500,
    lr: float = 0.01,
    num_points: int = 21,
    num_samples: int | Literal["all"] = 1024,
    eval_batch_size: int = 128,
    seed: int = 0,
    accelerator: str = "auto",
    loss_fn: LossOption = None,
    params: list[str] | None = None,
) -> list[str]:
    """A curve of low loss between two checkpoints (Garipov et al.), against the straight line:
    ``connect.npz``, ``connect.png`` and the figure in a TensorBoard event file in ``output_dir``.

    The bends are trained on a cached subset of the training data (through the batch hooks), on one
    device, and both paths are evaluated on it with BatchNorm statistics re-estimated at every point.

    Args:
        model_config: LightningCLI YAML with the ``model`` and ``data`` sections.
        start: checkpoint at t = 0.
        end: checkpoint at t = 1.
        output_dir: folder for the result, the figure and the event file.
        model_class: dotted path of the LightningModule when the config names none.
        data_class: dotted path of the LightningDataModule when the config names none.
        curve: ``bezier`` or ``polychain``.
        num_bends: trained control points between the ends.
        steps: SGD steps on the bends.
        lr: their learning rate (momentum 0.9).
        num_points: points of ``t`` in [0, 1] at which both paths are evaluated.
        num_samples: the training subset (``all``: every training sample, cached).
        eval_batch_size: batch size of that subset (the bends' training batches too).
        seed: seed of the subset, the ``t`` draws and dropout.
        accelerator: ``auto``, ``cpu``, ``gpu``/``cuda``, ``mps``... (one device).
        loss_fn: default: the module's own training_step loss (cross-entropy for a plain
            module); ``cross_entropy``, a method name, a dotted path of a function
            ``loss_fn(model, batch)`` or of a loss class, or ``{class_path, init_args}``.
        params: glob patterns of the parameters the bends move (e.g. ``'*.lora_*'``); default all.
    """
    from torch.utils.tensorboard import SummaryWriter

    from .core.landscapes.connectivity import connect as connect_states
    from .plotting.connectivity import plot_connectivity

    engine = _Engine(accelerator, 1, 1, "auto")
    model, data = load_model_and_data(model_config, None, model_class, data_class, engine.device)
    batches = _data(data, model, num_samples, eval_batch_size, seed, engine, stream=False)
    loss = _loss(loss_fn, model, engine.device, batches)
    states = _state_dict(start, "start"), _state_dict(end, "end")
    result = connect_states(
        model,
        batches,
        *states,
        curve=curve,
        num_bends=num_bends,
        steps=steps,
        lr=lr,
        seed=seed,
        num_points=num_points,
        loss_fn=loss,
        progress_bar=True,
        params=params,
    )
    os.makedirs(output_dir, exist_ok=True)
    paths = [result.save(os.path.join(output_dir, "connect.npz"))]
    figure = plot_connectivity(result)
    paths.append(os.path.join(output_dir, "connect.png"))
    figure.savefig(paths[-1], dpi=120)
    with SummaryWriter(log_dir=output_dir) as writer:
        writer.add_figure("connect/curve_vs_line", figure, global_step=0)
        for name, value in result.scalars().items():
            writer.add_scalar(f"connect/{name}", value, global_step=0)
    print(
        f"lightning-landscape: barrier {result.linear_barrier:.4g} along the straight line, "
        f"{result.curve_barrier:.4g} along the {curve} curve",
        file=sys.stderr,
    )
    return _written(paths)


def sharpness(
    model_config: str,
    ckpt_path: str,
    output_dir: str = "sharpness",
    model_class: str | None = None,
    data_class: str | None = None,
    measures: list[str] | None = None,
    measure_kwargs: dict[str, dict[str, Any]] | None = None,
    per_layer: bool = False,
    per_batch: bool = False,
    num_samples: int | Literal["all"] = 1024,
    eval_batch_size: int = 256,
    seed: int = 0,
    accelerator: str = "auto",
    devices: int | list[int] | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    loss_fn: LossOption = None,
    params: list[str] | None = None,
) -> list[str]:
    """Curvature and sharpness of a checkpoint: a table of the values, ``sharpness.json`` with
    each of them and ``sharpness.npz`` (a ``SharpnessReport``, as a ``SharpnessMonitor`` writes:
    ``lightning-landscape plot`` draws its figures).

    Args:
        model_config: LightningCLI YAML with the ``model`` and ``data`` sections.
        ckpt_path: Lightning checkpoint with the weights.
        output_dir: folder for the results.
        model_class: dotted path of the LightningModule when the config names none.
        data_class: dotted path of the LightningDataModule when the config names none.
        measures: registered measures: top_eigenvalue, trace, keskar, adaptive_worst, average,
            filter_normalized_eigenvalue, basin_volume, or one registered by an imported module
            (default: the first three).
        measure_kwargs: per-measure options, e.g. ``'{{"keskar": {{"epsilon": 5e-4}}}}'``.
        per_layer: also the top eigenvalue and trace of each layer's diagonal Hessian block.
        per_batch: also the top eigenvalue of each batch of ``eval_batch_size`` on its own.
        num_samples: evaluation subset drawn from the training data; ``all``: the whole training
            set (each process caches its shard on its device).
        eval_batch_size: evaluation batch size.
        seed: seed of the subset and the estimators.{engine}
        loss_fn: default: the module's own training_step loss (cross-entropy for a plain
            module); ``cross_entropy``, a method name, a dotted path of a function
            ``loss_fn(model, batch)`` or of a loss class, or ``{{class_path, init_args}}``.
        params: glob patterns of the parameters to measure (e.g. ``'*.lora_*'``); default all.
    """
    from .core.base.batches import total_samples

    measures = list(measures or ["top_eigenvalue", "trace", "keskar"])
    engine = _Engine(accelerator, devices, num_nodes, strategy)
    model, data = load_model_and_data(model_config, ckpt_path, model_class, data_class, engine.device)
    # after the config's classes are imported: a user's module may register measures
    options = check_measure_kwargs(measure_kwargs, measures, params)
    batches = _data(data, model, num_samples, eval_batch_size, seed, engine, stream=False)
    loss = _loss(loss_fn, model, engine.device, batches)
    settings: dict[str, Any] = {"measures": measures, "measure_kwargs": options, "seed": seed}
    settings.update(loss=loss_name(loss), data="train", checkpoint=os.path.abspath(ckpt_path))
    with engine.sharded():
        settings["num_samples"] = total_samples(batches)  # what exists, every process's together
        parts = _sharpness_parts(model, batches, measures, options, per_layer, per_batch, loss, seed, engine)
    if not engine.is_writer:
        return []
    report = SharpnessReport(settings=settings, **parts)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "sharpness.json")
    with open(path, "w") as fh:
        json.dump({**settings, "values": report.scalars()}, fh, indent=2)
    print(_table(report.scalars()))
    return _written([path, report.save(os.path.join(output_dir, "sharpness.npz"))])


def _sharpness_parts(
    model: Any, batches: list[Any], measures: list[str], options: dict[str, dict[str, Any]], per_layer: bool,
    per_batch: bool, loss: Any, seed: int, engine: _Engine,
) -> dict[str, Any]:  # fmt: skip
    """Each measure and view, in the order asked, with a progress bar on the writing process."""
    from tqdm.auto import tqdm

    from .core.measures.report import per_batch as per_batch_view
    from .core.measures.report import per_layer as per_layer_view
    from .core.measures.sharpness import sharpness as measure

    common = {"loss_fn": loss, "seed": seed}
    tasks: list[tuple[str, Callable[[], Any]]] = [
        (name, partial(measure, model, batches, measure=name, **common, **options[name])) for name in measures
    ]
    if per_layer:
        tasks.append(
            (
                "per_layer",
                partial(per_layer_view, model, batches, measures, "module", **common, options=options),
            )
        )
    if per_batch:
        tasks.append(("per_batch", partial(per_batch_view, model, batches, **common, options=options)))
    parts: dict[str, Any] = {"measures": {}}
    for name, task in tqdm(tasks, desc="sharpness", leave=False, disable=not engine.is_writer):
        if name in ("per_layer", "per_batch"):
            parts[name] = task()
        else:
            parts["measures"][name] = task()
    return parts


def _table(values: dict[str, float]) -> str:
    """The values as an aligned two-column table (what a terminal shows)."""
    width = max((len(name) for name in values), default=5)
    rows = [f"{'measure':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    rows += [f"{name:<{width}}  {value:.6g}" for name, value in values.items()]
    return "\n".join(rows)


sharpness.__doc__ = (sharpness.__doc__ or "").format(engine=_ENGINE_ARGS)


def plot(
    result: str,
    output_dir: str = "figures",
    kind: str = "all",
    log_scale: bool = False,
    levels: int = 20,
    elev: float = 30.0,
    azim: float = -60.0,
) -> list[str]:
    """Redraw any result file this package writes (``.npz``), without the model: a landscape, an
    interpolation, a trajectory, a sharpness record, a curve between minima, a barrier matrix, a
    spectral density, a ratio map, basin radii, per-batch or per-layer curvature. A file of
    numbers only is named as such, with its values.

    Args:
        result: the result file (a monitor's, a command's or a function's ``save``).
        output_dir: folder for the PNGs.
        kind: which figure (``all``: each; the names depend on the result: ``curve``,
            ``contour``, ``contour_filled``, ``surface_3d``, ``interpolation``, ``pca_plane``,
            ``hessian_density``, ``basin_radii``, ``eigenvalue_ratio_map``, ``per_layer``,
            ``per_batch_top_eigenvalue``, ``curve_vs_line``, ``barrier_matrix``).
        log_scale: draw log10 of the loss.
        levels: number of contour levels.
        elev: elevation of the 3D view, in degrees.
        azim: azimuth of the 3D view, in degrees.
    """
    from .plotting.results import result_figures

    loaded = load_result(result)
    drawers = result_figures(loaded, log_scale=log_scale, levels=levels, elev=elev, azim=azim)
    if not drawers:
        values = loaded.scalars() if hasattr(loaded, "scalars") else {}
        shown = ", ".join(f"{k} = {v:.6g}" for k, v in list(values.items())[:8]) or "none"
        raise ValueError(
            f"`result` {result!r} holds a {type(loaded).__name__} of numbers only, with no figure to "
            f"draw (its values: {shown})."
        )
    return _draw(drawers, kind, result, output_dir, f"this {type(loaded).__name__}")


def _draw(drawers: dict[str, Any], kind: str, result: str, output_dir: str, what: str) -> list[str]:
    if kind != "all" and kind not in drawers:
        raise ValueError(f"`kind` {kind!r} does not fit {what}; choose from {sorted(drawers)}.")
    chosen = drawers if kind == "all" else {kind: drawers[kind]}
    os.makedirs(output_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(result))[0]
    return _written(_save_figures({name: draw() for name, draw in chosen.items()}, output_dir, stem))


def export_vtk(result: str, output: str, log_scale: bool = False) -> list[str]:
    """Write a saved 2D landscape result as a VTK XML surface (``.vts`` or ``.vtp``) for ParaView.

    Args:
        result: a 2D ``LandscapeResult`` file.
        output: the file to write; its extension picks the format.
        log_scale: heights are log10 of the loss.
    """
    return _written([write_vtk(LandscapeResult.load(result), output, log_scale=log_scale)])


def animate(log_dir: str, output_dir: str | None = None, log_scale: bool = False) -> list[str]:
    """The monitors' animations from a run's result files, without the model: the path of every
    ``TrajectoryMonitor`` (``{tag}-path.gif``, from its last result) and the landscape of every
    ``LossLandscapeMonitor`` epoch by epoch (``{tag}-epochs.gif``).

    Args:
        log_dir: the run's folder (a logger's version folder, or ``landscape_logs/version_N``).
        output_dir: folder for the GIFs (default ``<log_dir>/animations``).
        log_scale: draw log10 of the loss.
    """
    from .core.landscapes.trajectory import TrajectoryResult
    from .plotting.animation import landscape_frames, trajectory_frames, write_gif
    from .reporting import result_files

    if not os.path.isdir(log_dir):
        raise ValueError(f"`log_dir` {log_dir!r} is not a folder.")
    out = output_dir or os.path.join(log_dir, "animations")
    written = []
    for tag, files in result_files(log_dir, "trajectory").items():
        frames = trajectory_frames(TrajectoryResult.load(files[-1]), log_scale=log_scale)
        written.append(write_gif(frames, os.path.join(out, f"{tag}-path.gif")))
    for tag, files in result_files(log_dir, "landscapes").items():
        frames = landscape_frames([LandscapeResult.load(f) for f in files], log_scale=log_scale)
        written.append(write_gif(frames, os.path.join(out, f"{tag}-epochs.gif")))
    if not written:
        raise ValueError(
            f"`log_dir` {log_dir!r} holds no result files of a trajectory or landscape monitor "
            "(trajectory/*.npz, landscapes/*.npz)."
        )
    return _written(written)


def report(log_dir: str, output: str | None = None) -> list[str]:
    """One self-contained interactive HTML page of a run (it opens offline): the landscapes as
    rotatable surfaces with an epoch slider, the trajectories on their contours, every scalar over
    the steps, the per-layer and per-batch curvature and the sharpness table. Needs Plotly
    (``pip install "lightning-landscape[report]"``).

    Args:
        log_dir: the run's folder (a logger's version folder, or ``landscape_logs/version_N``).
        output: the HTML file (default ``<log_dir>/report.html``).
    """
    from .html_report import write_report

    if not os.path.isdir(log_dir):
        raise ValueError(f"`log_dir` {log_dir!r} is not a folder.")
    return _written([write_report(log_dir, output or os.path.join(log_dir, "report.html"))])


COMMANDS = {
    "surface": surface,
    "interpolate": interpolate,
    "connect": connect,
    "sharpness": sharpness,
    "plot": plot,
    "export-vtk": export_vtk,
    "animate": animate,
    "report": report,
}


def run(args: Sequence[str] | None = None) -> Any:
    """Parse ``args`` (``sys.argv`` when ``None``), run the command and return what it returns."""
    import matplotlib

    matplotlib.use("Agg")
    from jsonargparse import auto_cli

    commands: dict[str, Any] = dict(COMMANDS)
    return auto_cli(commands, args=None if args is None else list(args), as_positional=False)


USER_ERRORS = (ValueError, TypeError, OSError, ImportError)
"""What a user's input provokes (a missing file, a wrong config, a bad option): said in one line."""


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``lightning-landscape`` console script: exit status 0 on success; a
    user's mistake is said in one line (``lightning-landscape: error: ...``) with exit status 2,
    and ``--debug`` (anywhere among the arguments) shows its traceback instead (:func:`run` returns
    what a command returns)."""
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        run(argv)
    except USER_ERRORS as exc:
        if debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"lightning-landscape: error: {message}", file=sys.stderr)
        print("(run it again with --debug for the traceback)", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

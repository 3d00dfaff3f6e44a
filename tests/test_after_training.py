"""After training, the same library (issue 26): every public function measures the user's module
exactly as the monitors do.

- After ``trainer.fit`` of a label-smoothing CNN and of a regression module with dict batches,
  each function with the default loss gives the number its monitor logged at the end of training
  on the same evaluation subset, and prints no Lightning warning.
- Every loss form (``None``, ``"training_step"``, ``"cross_entropy"``, a method name, a dotted path,
  a function, a criterion module) gives, in every function, the number of the loss it names
  written out by hand; a form that cannot work with the batches is refused with one error naming
  ``loss_fn``, the same in every function, before any work.
- Every batch structure (tuple, list, 1-tuple, dict, namedtuple, dataclass, nested) gives the
  numbers of plain ``(x, y)`` tuples; where the default cross-entropy cannot read it, one error.
- ``barrier_matrix`` and ``connect`` with the live model among the states equal the same calls on
  copies.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer, seed_everything
from problems import mlp
from torch import nn
from user_modules import ImageData, RegressionData, RegressionModule, SmallCNN, dict_mse

import lightning_landscape as ll
from lightning_landscape.core.measures.noise import gradient_noise_scale

SUBSET = dict(num_samples=48, eval_batch_size=16, every_n_epochs=1)


def _fit(module, data):
    monitors = {
        "landscape": ll.LossLandscapeMonitor(dims=1, num_points=3, progress_bar=False, **SUBSET),
        "sharpness": ll.SharpnessMonitor(
            measures=["top_eigenvalue", "keskar"],
            measure_kwargs={"keskar": {"num_ascent_steps": 3}},
            progress_bar=False,
            **SUBSET,
        ),
        "trajectory": ll.TrajectoryMonitor(
            num_points=3, progress_bar=False, num_samples=48, eval_batch_size=16
        ),
        "noise": ll.NoiseScaleMonitor(**SUBSET),
    }
    seed_everything(0)
    trainer = Trainer(
        max_epochs=2,
        callbacks=list(monitors.values()),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    return trainer, monitors


@pytest.fixture(scope="module", params=["label_smoothing_cnn", "regression_dict_batches"])
def trained(request):
    if request.param == "label_smoothing_cnn":
        module, data = SmallCNN(label_smoothing=0.1), ImageData()
    else:
        module, data = RegressionModule(dict_batches=True), RegressionData(dict_batches=True)
    trainer, monitors = _fit(module, data)
    return request.param, trainer, module, monitors


def _lightning_warnings(caught) -> list[str]:
    """Warnings Lightning printed (from its own modules, or about ``self.log``)."""
    ours = ("/lightning/", "/pytorch_lightning/", "/lightning_fabric/")
    return [
        str(w.message)
        for w in caught
        if any(p in (w.filename or "").replace("\\", "/") for p in ours) or "self.log" in str(w.message)
    ]


def test_each_function_gives_the_number_its_monitor_logged(trained):
    name, trainer, module, monitors = trained
    batches = monitors["landscape"].evaluation_batches(trainer, module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        landscape = ll.compute_landscape(module, batches, dims=1, num_points=3)
        top = ll.hessian_eigenvalues(module, monitors["sharpness"].evaluation_batches(trainer, module), k=1)
        keskar = ll.sharpness(
            module,
            monitors["sharpness"].evaluation_batches(trainer, module),
            measure="keskar",
            num_ascent_steps=3,
        )
        trajectory = monitors["trajectory"]
        plane = ll.trajectory_landscape(
            module,
            trajectory.evaluation_batches(trainer, module),
            list(trajectory.snapshots),
            epochs=trajectory.snapshots.epochs,
            num_points=3,
        )
        noise = gradient_noise_scale(module, monitors["noise"].evaluation_batches(trainer, module))
    assert not _lightning_warnings(caught), _lightning_warnings(caught)
    torch.testing.assert_close(landscape.loss, monitors["landscape"].last_result.loss, rtol=1e-6, atol=0)
    logged = monitors["sharpness"].last_values
    assert float(top.eigenvalues[0]) == pytest.approx(logged["top_eigenvalue"], rel=1e-6)
    assert keskar.value == pytest.approx(logged["keskar"], rel=1e-6)
    torch.testing.assert_close(plane.landscape.loss, trajectory.last_result.landscape.loss, rtol=1e-6, atol=0)
    assert noise.b_simple == pytest.approx(monitors["noise"].last_values["noise_scale/b_simple"], rel=1e-6)
    assert landscape.loss_name == "training_step"  # the module's own loss, as the monitors'


# ---------------------------------------------------------------------------------------- loss forms
def _other_state(module):
    return {n: t + 0.01 if t.is_floating_point() else t for n, t in module.state_dict().items()}


FUNCTIONS = {
    "evaluate": lambda m, b, f: ll.evaluate(m, b, loss_fn=f).loss,
    "compute_landscape": lambda m, b, f: ll.compute_landscape(m, b, dims=1, num_points=3, loss_fn=f).loss,
    "compute_landscape_in_chunks": lambda m, b, f: (
        ll.compute_landscape_in_chunks(m, b, dims=1, num_points=3, chunk_points=2, loss_fn=f).loss
    ),
    "interpolate": lambda m, b, f: (
        ll.interpolate(m, b, m.state_dict(), _other_state(m), num_points=3, loss_fn=f).loss
    ),
    "trajectory_landscape": lambda m, b, f: (
        ll.trajectory_landscape(
            m,
            b,
            [
                _other_state(m),
                {n: p + 0.02 * (k % 2) for k, (n, p) in enumerate(m.state_dict().items())},
                m.state_dict(),
            ],
            num_points=2,
            loss_fn=f,
        ).snapshot_loss
    ),
    "hessian_eigenvalues": lambda m, b, f: (
        ll.hessian_eigenvalues(m, b, k=1, max_iter=8, loss_fn=f).eigenvalues
    ),
    "hessian_trace": lambda m, b, f: (
        ll.hessian_trace(m, b, method="hutchinson", num_probes=3, loss_fn=f).estimate
    ),
    "hessian_density": lambda m, b, f: (
        ll.hessian_density(m, b, num_probes=1, num_steps=3, loss_fn=f).quadrature.nodes
    ),
    "eigenvalue_ratio_map": lambda m, b, f: (
        ll.eigenvalue_ratio_map(m, b, num_points=2, max_iter=4, loss_fn=f).lambda_max
    ),
    "keskar_sharpness": lambda m, b, f: ll.keskar_sharpness(m, b, num_ascent_steps=2, loss_fn=f).value,
    "average_sharpness": lambda m, b, f: ll.average_sharpness(m, b, num_probes=2, loss_fn=f).value,
    "basin_volume": lambda m, b, f: (
        ll.basin_volume(
            m, b, num_probes=2, num_scan=3, num_bisect=3, threshold=50.0, max_radius=0.5, loss_fn=f
        ).radii
    ),
    "log_evidence": lambda m, b, f: (
        ll.log_evidence(m, b, prior_precision=1.0, num_probes=1, num_steps=3, loss_fn=f).data_term
    ),
    "gradient_noise_scale": lambda m, b, f: gradient_noise_scale(m, b, loss_fn=f).b_simple,
    "connect": lambda m, b, f: (
        ll.connect(m, b, m.state_dict(), _other_state(m), steps=2, num_points=3, loss_fn=f).curve_loss
    ),
    "barrier_matrix": lambda m, b, f: (
        ll.barrier_matrix(m, b, [m.state_dict(), _other_state(m)], num_points=3, loss_fn=f).barriers
    ),
}


def _smoothed(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], label_smoothing=0.1)


def _plain(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


CNN_FORMS = {  # form → the loss it names, written by hand
    "None": (None, _smoothed),
    "'training_step'": ("training_step", _smoothed),
    "'cross_entropy'": ("cross_entropy", _plain),
    "method name": ("compute_loss", _plain),
    "dotted path": ("user_modules.smoothed_cross_entropy", _smoothed),
    "function": (_smoothed, _smoothed),
    "criterion": (nn.CrossEntropyLoss(label_smoothing=0.1), _smoothed),
}
REGRESSION_FORMS = {
    "None": (None, dict_mse),
    "'training_step'": ("training_step", dict_mse),
    "dotted path": ("user_modules.dict_mse", dict_mse),
    "function": (dict_mse, dict_mse),
    # cannot read dict batches: refused, naming loss_fn
    "'cross_entropy'": ("cross_entropy", None),
    "criterion": (nn.MSELoss(), None),
    "a method whose loss does not reach the weights": ("reference_loss", None),
}


def _numbers(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float64).reshape(-1)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_loss_form_gives_the_number_of_the_loss_it_names_in_every_function(trained, function):
    name, trainer, module, monitors = trained
    module = copy.deepcopy(module).eval()
    batches = monitors["landscape"].evaluation_batches(trainer, module)[:2]
    forms = CNN_FORMS if name == "label_smoothing_cnn" else REGRESSION_FORMS
    call = FUNCTIONS[function]
    errors = {}
    for label, (form, by_hand) in forms.items():
        if function == "evaluate" and form == "reference_loss":
            continue  # a plain evaluation of a loss that does not reach the weights is a fine number
        if by_hand is None:
            with pytest.raises((ValueError, TypeError), match="`loss_fn`") as refused:
                call(module, batches, form)
            errors[label] = str(refused.value)
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = _numbers(call(module, batches, form))
        assert not _lightning_warnings(caught), (label, _lightning_warnings(caught))
        expected = _numbers(call(module, batches, by_hand))
        torch.testing.assert_close(
            got, expected, rtol=1e-6, atol=1e-9, equal_nan=True, msg=f"{function}: {label}"
        )
    for label, message in errors.items():  # one clear error, whatever the function
        assert message == str(_refusal(forms[label][0], module, batches)), (function, label)


def _refusal(form, module, batches):
    """The error ``compute_landscape`` gives for ``form``: every function must give the same."""
    with pytest.raises((ValueError, TypeError)) as refused:
        ll.compute_landscape(module, batches, dims=1, num_points=3, loss_fn=form)
    return refused.value


# ---------------------------------------------------------------------------------------- batch structures
Pair = namedtuple("Pair", ["x", "y"])


@dataclasses.dataclass
class DataclassBatch:
    x: torch.Tensor
    y: torch.Tensor


def _labels(x):  # what a 1-tuple batch's loss derives its targets from
    return (x.sum(1) > 0).long() % 3


STRUCTURES = {  # name → (make a batch of x, y; a loss reading it; whether the default can read it)
    "tuple": (lambda x, y: (x, y), lambda m, b: F.cross_entropy(m(b[0]), b[1]), True),
    "list": (lambda x, y: [x, y], lambda m, b: F.cross_entropy(m(b[0]), b[1]), True),
    "namedtuple": (lambda x, y: Pair(x, y), lambda m, b: F.cross_entropy(m(b.x), b.y), True),
    "dict": (lambda x, y: {"x": x, "y": y}, lambda m, b: F.cross_entropy(m(b["x"]), b["y"]), False),
    "dataclass": (lambda x, y: DataclassBatch(x, y), lambda m, b: F.cross_entropy(m(b.x), b.y), False),
    "nested": (
        lambda x, y: {"inputs": (x,), "labels": {"y": y}},
        lambda m, b: F.cross_entropy(m(b["inputs"][0]), b["labels"]["y"]),
        False,
    ),
}


def _data():
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)) for n in (7, 5)]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_batch_structure_gives_the_numbers_of_plain_tuples(function):
    call = FUNCTIONS[function]
    expected = _numbers(call(mlp(), _data(), None))
    default_refusals = set()
    for name, (make, loss_fn, default_reads) in STRUCTURES.items():
        batches = [make(x, y) for x, y in _data()]
        torch.testing.assert_close(
            _numbers(call(mlp(), batches, loss_fn)), expected, rtol=1e-6, atol=1e-9, msg=name
        )
        if default_reads:
            torch.testing.assert_close(
                _numbers(call(mlp(), batches, None)), expected, rtol=1e-6, atol=1e-9, msg=name
            )
        else:
            with pytest.raises(
                ValueError, match="`loss_fn` \\(cross_entropy\\) fails on an evaluation batch"
            ) as e:
                call(mlp(), batches, None)
            default_refusals.add(str(e.value).split(": ", 1)[0])
    one_tuples = [(x,) for x, _ in _data()]
    by_labels = lambda m, b: F.cross_entropy(m(b[0]), _labels(b[0]))  # noqa: E731
    reference = [(x, _labels(x)) for x, _ in _data()]
    torch.testing.assert_close(
        _numbers(call(mlp(), one_tuples, by_labels)),
        _numbers(call(mlp(), reference, None)),
        rtol=1e-6,
        atol=1e-9,
    )
    with pytest.raises(ValueError, match="expects batches of the form \\(x, y, ...\\)"):
        call(mlp(), one_tuples, None)


# ---------------------------------------------------------------------------------------- live states
def test_the_live_model_among_the_states_gives_the_numbers_of_copies():
    nets = [mlp(seed) for seed in range(3)]
    copies = [copy.deepcopy(n.state_dict()) for n in nets]
    live = ll.barrier_matrix(nets[0], _data(), [n.state_dict() for n in nets], num_points=5)
    apart = ll.barrier_matrix(copy.deepcopy(nets[0]), _data(), copies, num_points=5)
    torch.testing.assert_close(live.barriers, apart.barriers, rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(), copies[0].values()))
    curve = ll.connect(nets[0], _data(), nets[0], copies[1], steps=3, num_points=3)
    reference = ll.connect(copy.deepcopy(nets[0]), _data(), copies[0], copies[1], steps=3, num_points=3)
    torch.testing.assert_close(curve.curve_loss, reference.curve_loss, rtol=0, atol=0)
    snapshots = [copies[1], copies[2], nets[0].state_dict()]
    plane = ll.trajectory_landscape(nets[0], _data(), snapshots, num_points=3)
    again = ll.trajectory_landscape(
        copy.deepcopy(nets[0]), _data(), [copies[1], copies[2], copies[0]], num_points=3
    )
    torch.testing.assert_close(plane.snapshot_loss, again.snapshot_loss, rtol=0, atol=0)
    assert not math.isnan(float(plane.snapshot_loss[-1]))

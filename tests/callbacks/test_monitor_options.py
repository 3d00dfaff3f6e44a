"""The options every monitor shares are declared once (``EpochMonitor``, ``ResultMonitor``) and
reach each monitor through ``**kwargs``, from Python and from a LightningCLI YAML config alike."""

import inspect

import pytest
import yaml
from lightning.pytorch.cli import LightningCLI

import lightning_landscape as ll
from lightning_landscape.callbacks._base import EpochMonitor, ResultMonitor

MONITORS = [
    ll.LossLandscapeMonitor,
    ll.SharpnessMonitor,
    ll.TrajectoryMonitor,
    ll.NoiseScaleMonitor,
    ll.VolumeMonitor,
]
# options whose default differs for one monitor: stated by that monitor itself
OWN_DEFAULTS = {
    ll.TrajectoryMonitor: {"every_n_epochs": 1, "budget": None},
    ll.NoiseScaleMonitor: {"num_samples": 256, "at_train_end": False},
    ll.VolumeMonitor: {"num_samples": 512},
}


def _shared(cls):
    bases = [ResultMonitor, EpochMonitor] if issubclass(cls, ResultMonitor) else [EpochMonitor]
    return {n for b in bases for n in inspect.signature(b.__init__).parameters} - {"self", "kwargs"}


@pytest.mark.parametrize("cls", MONITORS, ids=lambda c: c.__name__)
def test_a_monitor_states_only_its_own_options(cls):
    own = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    assert own & _shared(cls) == set(OWN_DEFAULTS.get(cls, {}))
    for name, value in OWN_DEFAULTS.get(cls, {}).items():
        assert getattr(cls(), name) == value
    assert cls().tag == cls.DEFAULT_TAG


def test_a_monitor_without_result_files_takes_none_of_their_options():
    for cls in (ll.NoiseScaleMonitor, ll.VolumeMonitor):
        with pytest.raises(TypeError, match="unexpected keyword argument 'save_results'"):
            cls(save_results=True)


SHARED = {
    "every_n_epochs": 2,
    "budget": None,
    "at_train_end": False,
    "num_samples": 48,
    "eval_batch_size": 16,
    "seed": 5,
    "loss_fn": "cross_entropy",
    "data": "train",
}
RESULT_OPTIONS = {"params": ["net.*"], "save_results": False, "progress_bar": False}


def test_shared_options_given_in_yaml_reach_every_monitor(tmp_path):
    callbacks = []
    for i, cls in enumerate(MONITORS):
        args = {**SHARED, "tag": f"m{i}"}
        if issubclass(cls, ResultMonitor):
            args.update(RESULT_OPTIONS)
        if cls is ll.VolumeMonitor:
            args.update(loss_fn=None, curvature="hessian")
        callbacks.append({"class_path": f"lightning_landscape.{cls.__name__}", "init_args": args})
    config = {
        "trainer": {"accelerator": "cpu", "max_epochs": 1, "logger": False, "callbacks": callbacks},
        "model": {"class_path": "user_modules.SmallCNN"},
        "data": {"class_path": "user_modules.ImageData"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = LightningCLI(args=["--config", str(path)], run=False, save_config_callback=None)
    found = [c for c in cli.trainer.callbacks if isinstance(c, EpochMonitor)]
    assert [type(c) for c in found] == MONITORS
    for i, monitor in enumerate(found):
        expected = {**SHARED, "tag": f"m{i}"}
        if isinstance(monitor, ll.VolumeMonitor):
            expected["loss_fn"] = None
        for name, value in expected.items():
            assert getattr(monitor, name) == value, (type(monitor).__name__, name)
        if isinstance(monitor, ResultMonitor):
            for name, value in RESULT_OPTIONS.items():
                assert getattr(monitor, name) == value, (type(monitor).__name__, name)
    help_text = _help(ll.SharpnessMonitor)
    assert all(f"--m.{name}" in help_text for name in [*SHARED, "tag", *RESULT_OPTIONS])


def _help(cls) -> str:
    import io

    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(cls, "m")
    out = io.StringIO()
    parser.print_help(out)
    return out.getvalue()

"""NoiseScaleMonitor in a real run."""

import pytest
from lightning.pytorch.loggers import CSVLogger
from problems import GlobalRNG, assert_same_training_end, fit_classifier, training_end

from lightning_landscape import NoiseScaleMonitor
from lightning_landscape.core.measures.noise import gradient_noise_scale


def test_logs_g_for_the_optimizer_and_b_simple_without_perturbing_training(tmp_path):
    _, plain = fit_classifier(tmp_path / "plain", [], seed=5, max_epochs=2)
    rng_plain = GlobalRNG.capture()
    plain_end = training_end(plain)
    monitor = NoiseScaleMonitor(num_samples=48, eval_batch_size=16, every_n_epochs=1)
    logger = CSVLogger(str(tmp_path / "watched"), name="csv")
    trainer, watched = fit_classifier(tmp_path / "watched", [monitor], seed=5, max_epochs=2, logger=logger)
    assert_same_training_end(plain_end, training_end(watched))
    assert rng_plain.equals(GlobalRNG.capture())
    # LitClassifier: SGD lr 0.1, momentum 0.9; 96 samples in batches of 16 → g = 0.1 · (6 − 1) / 0.1
    assert monitor.last_values["noise_scale/g/group_0"] == pytest.approx(5.0)
    direct = gradient_noise_scale(watched, monitor.evaluation_batches(trainer, watched))
    assert monitor.last_values["noise_scale/b_simple"] == pytest.approx(direct.b_simple, rel=1e-6)
    logger.finalize("success")
    assert "noise_scale/b_simple" in open(f"{logger.log_dir}/metrics.csv").read()


def test_invalid_arguments():
    with pytest.raises(ValueError, match="`every_n_epochs`"):
        NoiseScaleMonitor(every_n_epochs=0)
    with pytest.raises(TypeError, match="`measure_gradient_noise`"):
        NoiseScaleMonitor(measure_gradient_noise="yes")


def test_a_monitor_that_writes_no_file_makes_no_folder(tmp_path):
    # without a logger, monitors that save files pick <root>/landscape_logs/version_N; one that
    # saves nothing (NoiseScaleMonitor, VolumeMonitor) must not leave empty folders behind
    fit_classifier(
        tmp_path, [NoiseScaleMonitor(measure_gradient_noise=False)], seed=0, max_epochs=1, logger=False
    )
    assert not (tmp_path / "landscape_logs").exists()


def test_two_monitors_with_their_own_tags_keep_their_own_state_in_a_checkpoint():
    first, second = NoiseScaleMonitor(tag="noise_a"), NoiseScaleMonitor(tag="noise_b")
    assert first.state_key != second.state_key
    assert "noise_a" in first.state_key and "noise_b" in second.state_key

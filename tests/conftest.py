import os
import sys

import matplotlib
import pytest

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The property-based suites' outcome counts (``tests/fuzz_outcomes.py``), and with
    ``LL_FUZZ_REPORT=path`` the same as JSON."""
    from fuzz_outcomes import OUTCOMES

    if not OUTCOMES:
        return
    kinds = ("clean", "unclear", "accepted", "hang")
    terminalreporter.section("fuzzing outcomes (examples)")
    for suite, counts in sorted(OUTCOMES.items()):
        shown = ", ".join(f"{k} {counts.get(k, 0)}" for k in kinds)
        terminalreporter.write_line(f"{suite}: {shown} (total {sum(counts.values())})")
    path = os.environ.get("LL_FUZZ_REPORT")
    if path:
        import json

        with open(path, "w") as fh:
            json.dump({suite: dict(counts) for suite, counts in OUTCOMES.items()}, fh, indent=1)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    """A regression module with dict batches (tests/user_modules.py), two checkpoints, its config."""
    from problems import fit_two_epochs
    from user_modules import RegressionData, RegressionModule

    root = tmp_path_factory.mktemp("regression")
    config = (
        "model:\n  class_path: user_modules.RegressionModule\n  init_args: {dict_batches: true}\n"
        "data:\n  class_path: user_modules.RegressionData\n  init_args: {dict_batches: true}\n"
    )
    return fit_two_epochs(
        root, RegressionModule(dict_batches=True), RegressionData(dict_batches=True), config
    )

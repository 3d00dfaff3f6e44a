import os
import sys

import matplotlib

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

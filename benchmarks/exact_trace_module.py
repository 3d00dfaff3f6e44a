"""The Hessian trace of the digits CNN written as a LightningModule, through its own training_step:
the exact route (the traced graph is piecewise linear, the loss equals the cross-entropy) against
Hutch++, which a module with its own ``forward`` got before issue 26, each with its relative error
against the dense Hessian's trace.

    python benchmarks/exact_trace_module.py [--repeats 3]

The model is ``example_projects/digits``' ``DigitsClassifier`` (BatchNorm CNN) with the weights of
5 epochs of SGD (``benchmarks/landscape.py``), 1024 training samples in one batch, eval mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "example_projects", "digits")
)

from curvature import dense_reference  # noqa: E402
from digits import DigitsClassifier  # noqa: E402
from landscape import trained_model  # noqa: E402

from lightning_landscape import hessian_trace  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    net, x, y = trained_model("cnn", 1024)
    module = DigitsClassifier(arch="cnn")
    module.net.load_state_dict(net.state_dict())
    module.eval()
    _, exact_trace = dense_reference("cnn", net.eval(), x, y)
    rows = []
    for label, options in (("exact (auto)", {}), ("Hutch++ (default probes)", {"method": "hutch++"})):
        times, result = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = hessian_trace(module, [(x, y)], **options)
            times.append(time.perf_counter() - start)
        error = abs(result.estimate - exact_trace) / abs(exact_trace)
        rows.append((label, result.method, statistics.median(times), error, result.stderr))
    print("| route | method | seconds (median) | relative error | stderr |")
    print("|---|---|---|---|---|")
    for label, method, seconds, error, stderr in rows:
        print(f"| {label} | {method} | {seconds:.3f} | {error:.1e} | {stderr:.3g} |")


if __name__ == "__main__":
    main()

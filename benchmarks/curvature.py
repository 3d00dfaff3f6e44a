"""Time the top Hessian eigenvalue and the Hessian trace against PyHessian, hessian-eigenthings and
curvlinops, with each answer's relative error against the dense Hessian.

    pip install -e ".[benchmarks]"
    python benchmarks/curvature.py [--model cnn|mlp|both] [--repeats 3]

Models: the digits MLP and CNN (BatchNorm) of ``example_projects/digits`` after 5 epochs of SGD,
1024 training samples in one batch, float32, eval mode. The dense Hessian (P ≈ 5000) is built once
from P Hessian-vector products and cached under ``benchmarks/.cache/``; its eigenvalues and trace
are the reference. Every tool gets a fresh copy of the model (PyHessian writes ``.grad`` and leaves
the model in eval mode). Times are medians over ``--repeats`` rounds (each round calls every tool
once, so machine noise hits all alike), operator construction included.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from landscape import trained_model  # noqa: E402

from lightning_landscape import hessian_eigenvalues, hessian_trace  # noqa: E402
from lightning_landscape.core.base.params import gradient_context  # noqa: E402
from lightning_landscape.core.linalg.hessian import HessianOperator
from lightning_landscape.core.linalg.spectrum import lanczos_eigenpairs  # noqa: E402

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")


def dense_reference(arch: str, model, x, y) -> tuple[float, float]:
    """(top eigenvalue, trace) of the dense Hessian, cached by architecture and weights."""
    checksum = float(sum(p.double().sum() for p in model.parameters()))
    path = os.path.join(CACHE, f"dense_{arch}.pt")
    if os.path.exists(path):
        cached = torch.load(path, weights_only=True)
        if abs(cached["checksum"] - checksum) < 1e-9:
            return cached["top"], cached["trace"]
    start = time.perf_counter()
    with gradient_context(model):
        dense = HessianOperator(model, [(x, y)]).dense().double()
    dense = 0.5 * (dense + dense.T)
    top, trace = float(torch.linalg.eigvalsh(dense)[-1]), float(dense.trace())
    os.makedirs(CACHE, exist_ok=True)
    torch.save({"checksum": checksum, "top": top, "trace": trace}, path)
    print(
        f"  dense Hessian of the {arch} ({dense.shape[0]} parameters) in {time.perf_counter() - start:.0f} s"
    )
    return top, trace


def _pyhessian(model, x, y):
    from pyhessian import hessian

    return hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)


def _eigenthings_operator(model, x, y):
    from hessian_eigenthings import HessianOperator as EigenthingsOperator
    from hessian_eigenthings import supervised_loss

    return EigenthingsOperator(model.eval(), [(x, y)], supervised_loss(torch.nn.CrossEntropyLoss()))


def _curvlinops_operator(model, x, y):
    from curvlinops import HessianLinearOperator

    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    return HessianLinearOperator(
        model, torch.nn.CrossEntropyLoss(), params, [(x, y)], check_deterministic=False
    )


def _ours_batchnorm_as_written(model, x, y) -> float:
    """``hessian_eigenvalues(model, [(x, y)])`` with ``fold_batchnorm=False``: what folding saves."""
    with gradient_context(model):
        op = HessianOperator(model, [(x, y)], fold_batchnorm=False)
        start = op.lanczos_start("largest", seed=0)
        result = lanczos_eigenpairs(op, start=start)
    return float(result.eigenvalues[0])


def top_eigenvalue_tools():
    from hessian_eigenthings import power_iteration_one
    from scipy.sparse.linalg import eigsh

    return {
        "ours (Lanczos, tol 1e-4, gradient-informed start)": lambda m, x, y: float(
            hessian_eigenvalues(m, [(x, y)], k=1).eigenvalues[0]
        ),
        "ours, BatchNorm not folded (`fold_batchnorm=False`)": _ours_batchnorm_as_written,
        "PyHessian (defaults: power, tol 1e-3)": lambda m, x, y: float(
            _pyhessian(m, x, y).eigenvalues()[0][0]
        ),
        "hessian-eigenthings (power, tol 1e-6)": lambda m, x, y: float(
            power_iteration_one(_eigenthings_operator(m, x, y), max_iter=1000, tol=1e-6, seed=0)[0]
        ),
        "hessian-eigenthings (power, tol 1e-4)": lambda m, x, y: float(
            power_iteration_one(_eigenthings_operator(m, x, y), max_iter=1000, tol=1e-4, seed=0)[0]
        ),
        "curvlinops (scipy eigsh, tol 1e-4)": lambda m, x, y: float(
            eigsh(_curvlinops_operator(m, x, y).to_scipy(), k=1, which="LA", tol=1e-4)[0][0]
        ),
    }


def trace_tools():
    from curvlinops import hutchpp_trace
    from hessian_eigenthings import trace as eigenthings_trace

    return {
        "ours (auto: exact GGN identity)": lambda m, x, y: hessian_trace(m, [(x, y)]).estimate,
        "ours (Hutch++, 99 products)": lambda m, x, y: hessian_trace(m, [(x, y)], method="hutch++").estimate,
        "PyHessian (defaults: Hutchinson, tol 1e-3)": lambda m, x, y: float(
            np.mean(_pyhessian(m, x, y).trace())
        ),
        "hessian-eigenthings (Hutch++, 100 products)": lambda m, x, y: float(
            eigenthings_trace(_eigenthings_operator(m, x, y), num_matvecs=100, seed=0).estimate
        ),
        "curvlinops (Hutch++, 99 products)": lambda m, x, y: float(
            hutchpp_trace(_curvlinops_operator(m, x, y), num_matvecs=99)
        ),
    }


def run(arch: str, repeats: int, pause: float) -> None:
    model, x, y = trained_model(arch, 1024)
    model.eval()
    top, trace = dense_reference(arch, model, x, y)
    params = sum(p.numel() for p in model.parameters())
    heading = f"digits {arch.upper()} ({params} parameters, 1024 samples)"
    print(f"\n### {heading}: λ_max = {top:.6g}, tr H = {trace:.6g}\n")
    for title, tools, exact in (
        ("top eigenvalue", top_eigenvalue_tools(), top),
        ("trace", trace_tools(), trace),
    ):
        print(f"| {title} | median s | relative error |")
        print("|---|---|---|")
        # round by round, every tool once per round, so that machine noise hits all alike
        times = {name: [] for name in tools}
        answers = {name: [] for name in tools}
        for _ in range(repeats):
            for name, tool in tools.items():
                victim = copy.deepcopy(model)
                torch.manual_seed(0)
                start = time.perf_counter()
                answers[name].append(tool(victim, x, y))
                times[name].append(time.perf_counter() - start)
                time.sleep(pause)  # let the last tool's BLAS threads stop spinning (untimed)
        for name in tools:
            error = abs(statistics.median(answers[name]) - exact) / abs(exact)
            print(f"| {name} | {statistics.median(times[name]):.3f} | {error:.1e} |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("cnn", "mlp", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.5,
        help="idle seconds after each call: scipy's OpenBLAS threads (curvlinops' eigsh) keep spinning "
        "for a while after a call and slowed the next tool's 10 ms call 2-3x",
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for arch in ("mlp", "cnn") if args.model == "both" else (args.model,):
        run(arch, args.repeats, args.pause)


if __name__ == "__main__":
    main()

"""Time a 2D landscape (21×21 by default) on the digits CNN or MLP against the floor and `loss-landscapes`.

    pip install -e ".[benchmarks]"
    python benchmarks/landscape.py [--repeats 5] [--points 21] [--samples 1024]

``--chunks 2 8 32 64`` times only ours at those ``points_per_forward`` values instead.

``--model mlp`` times the digits MLP, whose forward pass is so cheap that the figures show each
tool's per-point overhead rather than the forward cost.

``--loss-forms`` times ours only, with the loss forms of the monitors on the same subset: the fused
cross-entropy (``loss_fn="cross_entropy"``), the module's own ``training_step`` (the monitors'
default, every call guarded: ``self.log`` silenced, metric states, attributes and random streams
put back), and a plain unguarded function ``F.cross_entropy(model(x), y)`` to separate the guards'
cost from the loss's.

Three timings, interleaved round by round so that machine noise hits all of them alike:

- floor: ``points²`` plain eval-mode forward passes over the same samples (no perturbation, no loss);
- ours: ``compute_landscape(dims=2, num_points=points)``, exact centred grid, eval mode, restored;
- ours, batched: the same with ``points_per_forward="auto"`` (grid points stacked and mapped with
  ``torch.vmap``, chunks sized by the default 1 GiB budget);
- loss-landscapes: ``random_plane(steps=points, normalization="filter")`` with its ``Loss`` metric.

Also measured, once, for each tool: whether the model's weights, BatchNorm statistics and
``requires_grad`` flags are as before the call, and whether the grid contains the weights themselves.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "example_projects", "digits")
)

from digits import sgd_trained  # noqa: E402

from lightning_landscape import compute_landscape  # noqa: E402


def trained_model(arch: str, samples: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The digits CNN (BatchNorm) or MLP after 5 epochs of SGD, and ``samples`` training images."""
    model, train_set = sgd_trained(arch, epochs=5)
    x, y = train_set.tensors
    return model, x[:samples], y[:samples]


def floor(model, x, points: int) -> None:
    model.eval()
    with torch.no_grad():
        for _ in range(points * points):
            model(x)


def ours(model, x, y, points: int):
    return compute_landscape(model, [(x, y)], dims=2, num_points=points)


def ours_batched(model, x, y, points: int):
    return compute_landscape(model, [(x, y)], dims=2, num_points=points, points_per_forward="auto")


def peer(model, x, y, points: int):
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(torch.nn.CrossEntropyLoss(), x, y)
    return loss_landscapes.random_plane(model, metric, distance=1, steps=points, normalization="filter")


def forward_split(tool, model, x, y, points: int) -> tuple[float, float]:
    """(seconds inside the model's forward passes, seconds outside them) for one call of ``tool``.

    Forward hooks time every forward; what remains of the call is the tool's own overhead
    (perturbation, loss, bookkeeping). This separates "which weights the grid visits" (the forward
    cost depends on them) from "how much work the tool adds".
    """
    spent = [0.0]
    started = [0.0]

    def before(module, args):
        started[0] = time.perf_counter()

    def after(module, args, output):
        spent[0] += time.perf_counter() - started[0]

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        start = time.perf_counter()
        tool(model, x, y, points)
        total = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.remove()
    return spent[0], total - spent[0]


def side_effects(tool, model, x, y, points: int) -> dict[str, object]:
    """Call ``tool`` once on a copy of ``model`` (in train mode, as during training) and compare."""
    victim = copy.deepcopy(model).train()
    params = {k: v.detach().clone() for k, v in victim.named_parameters()}
    buffers = {k: v.clone() for k, v in victim.named_buffers()}
    flags = [p.requires_grad for p in victim.parameters()]
    out = tool(victim, x, y, points)
    after_params, after_buffers = dict(victim.named_parameters()), dict(victim.named_buffers())
    moved = max(float((after_params[k].detach() - v).abs().max()) for k, v in params.items())
    stats_moved = max(
        [float((after_buffers[k] - v).abs().max()) for k, v in buffers.items() if v.is_floating_point()],
        default=0.0,
    )
    tracked = sum(int(after_buffers[k] - v) for k, v in buffers.items() if k.endswith("num_batches_tracked"))
    return {
        "weights unchanged": moved == 0.0,
        "max weight change": moved,
        "BN statistics unchanged": stats_moved == 0.0 and tracked == 0,
        "train-mode BN batches": tracked,
        "requires_grad unchanged": flags == [p.requires_grad for p in victim.parameters()],
        "train flag unchanged": victim.training,
        "output": out,
    }


def loss_forms(model, x, y, args) -> None:
    """Median wall time of ours with each loss form, interleaved round by round, and the floor."""
    from digits import DigitsClassifier

    from lightning_landscape.user_module import resolve_loss_fn

    module = DigitsClassifier(arch=args.model)
    module.net.load_state_dict(model.state_dict())
    module.eval()
    forms = {
        "floor (points² plain forwards)": lambda: floor(module, x, args.points),
        "fused cross-entropy (loss_fn='cross_entropy')": lambda: compute_landscape(
            module, [(x, y)], num_points=args.points
        ),
        "module's own training_step (loss_fn=None)": lambda: compute_landscape(
            module, [(x, y)], num_points=args.points, loss_fn=resolve_loss_fn(None, module)
        ),
        "plain function F.cross_entropy(model(x), y), unguarded": lambda: compute_landscape(
            module, [(x, y)], num_points=args.points, loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1])
        ),
    }
    for run in forms.values():  # warm-up round
        run()
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(args.repeats):
        for name, run in forms.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(
        f"\n{args.points}x{args.points} grid, digits {args.model}, {len(x)} samples, {args.repeats} rounds\n"
    )
    print("| loss | median s | min s |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} |")


def chunk_sweep(model, x, y, args) -> None:
    """Median wall time of ours for each ``points_per_forward`` in ``args.chunks``, 1 and the floor."""

    def timed(run) -> float:
        run()  # warm-up
        values = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            values.append(time.perf_counter() - start)
        return statistics.median(values)

    print(f"\n{args.points}x{args.points} grid, digits {args.model}, {args.repeats} repeats, median wall s\n")
    print("| points_per_forward | s |")
    print("|---|---|")
    print(f"| floor | {timed(lambda: floor(model, x, args.points)):.3f} |")
    for chunk in [1, *args.chunks]:
        run = lambda c=chunk: compute_landscape(model, [(x, y)], num_points=args.points, points_per_forward=c)  # noqa: E731
        print(f"| {chunk} | {timed(run):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="flush denormals to zero for every tool, so that the forward cost no longer depends on "
        "which weights a grid visits",
    )
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=None,
        help="instead of the comparison: time ours with these `points_per_forward` values (and 1)",
    )
    parser.add_argument(
        "--loss-forms",
        action="store_true",
        help="instead of the comparison: time ours with the fused cross-entropy, the module's own "
        "training_step and a plain loss function",
    )
    args = parser.parse_args()
    if args.flush_denormal and not torch.set_flush_denormal(True):
        print("this CPU cannot flush denormals; timing without")

    model, x, y = trained_model(args.model, args.samples)
    model.eval()
    if args.chunks:
        chunk_sweep(model, x, y, args)
        return
    if args.loss_forms:
        loss_forms(model, x, y, args)
        return
    try:
        import loss_landscapes  # noqa: F401

        have_peer = True
    except ImportError:
        have_peer = False
        print(
            "loss-landscapes is not installed (pip install -e '.[benchmarks]'): timing us and the floor only"
        )

    tools = {
        "floor": lambda: floor(model, x, args.points),
        "ours": lambda: ours(model, x, y, args.points),
        "ours, batched (vmap, points_per_forward='auto')": lambda: ours_batched(model, x, y, args.points),
    }
    if have_peer:
        # loss-landscapes moves the model it is given: give it a fresh copy each round (not timed).
        copies = [copy.deepcopy(model) for _ in range(args.repeats + 1)]
        tools["loss-landscapes"] = lambda: peer(copies.pop(), x, y, args.points)

    for run in tools.values():  # warm-up round
        run()
    times: dict[str, list[float]] = {name: [] for name in tools}
    cpu_times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(args.repeats):
        for name, run in tools.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)

    base = statistics.median(times["floor"])
    described = "CNN with BatchNorm" if args.model == "cnn" else "MLP"
    print(
        f"\n{args.points}x{args.points} grid, digits {described} "
        f"({sum(p.numel() for p in model.parameters())} parameters), {args.samples} samples, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} interleaved repeats"
        f"{', denormals flushed' if args.flush_denormal else ''}\n"
    )
    cpu_base = statistics.median(cpu_times["floor"])
    print("| tool | wall median s | wall min s | wall median / floor | CPU median s | CPU median / floor |")
    print("|---|---|---|---|---|---|")
    for name, values in times.items():
        med, cpu = statistics.median(values), statistics.median(cpu_times[name])
        row = [
            name,
            f"{med:.3f}",
            f"{min(values):.3f}",
            f"{med / base:.2f}x",
            f"{cpu:.3f}",
            f"{cpu / cpu_base:.2f}x",
        ]
        print("| " + " | ".join(row) + " |")

    print("\nWhere the time goes (median of 3 calls each; forward = inside the model's forward passes):")
    print("| tool | forward s | outside forward s | outside forward per grid point |")
    print("|---|---|---|---|")
    split_tools = {
        "floor": lambda m, *_: floor(m, x, args.points),
        "ours": ours,
        "ours, batched": ours_batched,
    }
    if have_peer:
        split_tools["loss-landscapes"] = peer
    for name, tool in split_tools.items():
        # each call gets a fresh copy (loss-landscapes moves the model it is given)
        runs = [forward_split(tool, copy.deepcopy(model), x, y, args.points) for _ in range(3)]
        fwd = statistics.median(r[0] for r in runs)
        rest = statistics.median(r[1] for r in runs)
        print(f"| {name} | {fwd:.3f} | {rest:.3f} | {rest / args.points**2 * 1e6:.0f} µs |")

    print("\nSide effects of one call on a model in train mode (as inside training):")
    result = side_effects(ours, model, x, y, args.points)
    print(
        f"- ours: weights unchanged={result['weights unchanged']}, "
        f"BN statistics unchanged={result['BN statistics unchanged']}, "
        f"requires_grad unchanged={result['requires_grad unchanged']}, "
        f"train flag unchanged={result['train flag unchanged']}, "
        f"centre coefficient={float(result['output'].coords[0][args.points // 2])}"
    )
    if have_peer:
        peer_result = side_effects(peer, model, x, y, args.points)
        print(
            f"- loss-landscapes: weights unchanged={peer_result['weights unchanged']} "
            f"(max change {peer_result['max weight change']:.3g}), "
            f"BN statistics unchanged={peer_result['BN statistics unchanged']} "
            f"({peer_result['train-mode BN batches']} train-mode BatchNorm batches tracked), "
            f"requires_grad unchanged={peer_result['requires_grad unchanged']}, "
            f"train flag unchanged={peer_result['train flag unchanged']}"
        )
        # Where is the grid? Its first row starts at θ₀ − d₁ − d₂ + one step: θ₀ itself is never on it
        # for an odd step count (the grid is shifted by one step).
        with torch.no_grad():
            plain = F.cross_entropy(model.eval()(x), y).item()
        grid = torch.as_tensor(peer_result["output"])
        print(
            f"  plain loss at the weights {plain:.6f}; closest value on its grid "
            f"{float(grid.flatten()[(grid - plain).abs().argmin()]):.6f}; "
            f"ours at the centre {result['output'].center_loss:.6f}"
        )


if __name__ == "__main__":
    main()

"""The chunked, resumable, streamed landscape (core/chunked.py) against compute_landscape.

``compute_landscape`` on cached batches is the reference: the chunked engine must give its numbers
on cached and on streamed data, on shards summed over (thread-simulated) processes, and bit for bit
the same result whether it ran through or was continued from any of its partial results.
"""

import copy
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from problems import ThreadWorld, bn_cnn, image_batches, mlp, vector_batches, warm_up_bn
from torch.utils.data import DataLoader, TensorDataset

from lightning_landscape import LandscapeResult, compute_landscape
from lightning_landscape.core.base.batches import StreamedBatches, stream_batches
from lightning_landscape.core.landscapes import _grid as grid
from lightning_landscape.core.landscapes.chunked import compute_landscape_in_chunks


def _bn_problem():
    model = bn_cnn()
    batches = image_batches(sizes=(7, 16, 9))
    warm_up_bn(model, batches)
    return model, batches


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("points_per_forward", [1, "auto"])
def test_chunks_equal_compute_landscape_on_cached_batches(dims, points_per_forward):
    model, batches = _bn_problem()
    expected = compute_landscape(model, batches, dims=dims, num_points=5)
    result = compute_landscape_in_chunks(
        model, batches, dims=dims, num_points=5, chunk_points=4, points_per_forward=points_per_forward
    )
    torch.testing.assert_close(result.loss, expected.loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(result.accuracy, expected.accuracy, rtol=1e-5, atol=1e-7)
    assert result.num_samples == expected.num_samples == 32
    assert result.is_complete and result.computed is None
    for mine, theirs in zip(result.directions, expected.directions):
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[n], theirs[n]) for n in mine)


def test_a_loss_without_accuracy_gives_no_accuracy():
    model, batches = mlp(), vector_batches(sizes=(6, 5))

    def loss_fn(net, batch):
        return F.cross_entropy(net(batch[0]), batch[1])

    expected = compute_landscape(model, batches, num_points=3, loss_fn=loss_fn)
    result = compute_landscape_in_chunks(model, batches, num_points=3, chunk_points=2, loss_fn=loss_fn)
    assert result.accuracy is None and expected.accuracy is None
    torch.testing.assert_close(result.loss, expected.loss, rtol=1e-5, atol=0)


def _dataset(n: int = 50) -> TensorDataset:
    generator = torch.Generator().manual_seed(4)
    return TensorDataset(
        torch.randn(n, 4, generator=generator), torch.randint(0, 3, (n,), generator=generator)
    )


def test_streamed_whole_data_set_equals_compute_landscape_on_all_of_it():
    model, data = mlp(), _dataset()
    loader = DataLoader(data, batch_size=8, shuffle=True)  # its shuffling is not used
    expected = compute_landscape(model, DataLoader(data, batch_size=50), num_points=5)
    stream = stream_batches(loader, 16, torch.device("cpu"))
    before = torch.random.get_rng_state()
    result = compute_landscape_in_chunks(model, stream, num_points=5, chunk_points=6)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.testing.assert_close(result.loss, expected.loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(result.accuracy, expected.accuracy, rtol=1e-5, atol=1e-7)
    assert result.num_samples == 50


def test_a_stream_is_read_once_per_chunk_not_once_per_point():
    model, data = mlp(), _dataset(20)
    passes = []

    class Counting(list):
        def __iter__(self):
            passes.append(0)
            for item in super().__iter__():
                passes[-1] += 1
                yield item

    loader = Counting([(data.tensors[0][i : i + 5], data.tensors[1][i : i + 5]) for i in range(0, 20, 5)])
    stream = StreamedBatches(loader, 20, torch.device("cpu"))
    compute_landscape_in_chunks(model, stream, num_points=5, chunk_points=10)
    # the loss checked once on the first batch, then 25 points in chunks of 10: three whole passes
    assert passes == [1, 4, 4, 4]


def test_shards_summed_over_two_processes_equal_one_process():
    model, data = mlp(), _dataset(30)
    whole = compute_landscape_in_chunks(model, DataLoader(data, batch_size=30), num_points=3, chunk_points=4)
    copies = [copy.deepcopy(model) for _ in range(2)]

    def work(rank):
        stream = stream_batches(DataLoader(data), 7, torch.device("cpu"), rank=rank, world_size=2)
        assert stream.num_samples == 15
        return compute_landscape_in_chunks(copies[rank], stream, num_points=3, chunk_points=4)

    halves = ThreadWorld(2).run(work)
    for half in halves:
        assert not isinstance(half, BaseException), half
        torch.testing.assert_close(half.loss, whole.loss, rtol=1e-5, atol=0)
        assert half.num_samples == 30  # all shards' samples: the count goes through the sum too


def test_partial_results_grow_chunk_by_chunk_and_any_of_them_resumes_bit_identically(tmp_path):
    model, batches = _bn_problem()
    partials = []
    whole = compute_landscape_in_chunks(
        model, batches, num_points=5, chunk_points=7, on_chunk=partials.append
    )
    assert [int(p.computed.sum()) for p in partials[:-1]] == [7, 14, 21]
    assert partials[-1].is_complete
    for partial in partials[:-1]:
        done = partial.computed
        assert torch.isnan(partial.loss[~done]).all() and torch.equal(partial.loss[done], whole.loss[done])
        saved = LandscapeResult.load(partial.save(tmp_path / "partial.npz"))  # through the file
        assert saved == partial and not saved.is_complete
        evaluated = []
        resumed = compute_landscape_in_chunks(
            model, batches, num_points=5, chunk_points=7, resume=saved, on_chunk=evaluated.append
        )
        assert resumed == whole  # every array and every metadata field, exactly
        assert len(evaluated) == 4 - int(done.sum()) // 7  # only the missing chunks were evaluated


def test_a_partial_result_with_other_settings_or_directions_is_refused():
    model, batches = _bn_problem()
    partials = []
    compute_landscape_in_chunks(
        model,
        batches,
        num_points=5,
        chunk_points=7,
        settings={"checkpoint_sha256": "aa"},
        on_chunk=partials.append,
    )
    first = partials[0]
    cases = {
        "seed: 0 in the file, 1 now": dict(seed=1),
        "span: [-1.0, 1.0] in the file, [-0.5, 0.5] now": dict(span=(-0.5, 0.5)),
        "chunk_points: 7 in the file, 5 now": dict(chunk_points=5),
        "checkpoint_sha256: 'aa' in the file, 'bb' now": dict(settings={"checkpoint_sha256": "bb"}),
    }
    for message, change in cases.items():
        arguments = {"num_points": 5, "chunk_points": 7, "settings": {"checkpoint_sha256": "aa"}, **change}
        with pytest.raises(ValueError, match="other settings") as caught:
            compute_landscape_in_chunks(model, batches, resume=first, **arguments)
        assert message in str(caught.value)
    other = bn_cnn(seed=5)  # other weights: other filter-normalized directions
    warm_up_bn(other, batches)
    with pytest.raises(ValueError, match="direction 0 of the partial result differs"):
        compute_landscape_in_chunks(
            other, batches, num_points=5, chunk_points=7, settings={"checkpoint_sha256": "aa"}, resume=first
        )


def test_a_failing_chunk_leaves_the_model_as_it_was_and_the_earlier_chunks_saved(monkeypatch):
    model, batches = _bn_problem()
    before = copy.deepcopy(model.state_dict())
    original, calls, partials = grid._chunk_means, [], []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(grid, "_chunk_means", failing)
    with pytest.raises(RuntimeError, match="killed"):
        compute_landscape_in_chunks(model, batches, num_points=5, chunk_points=7, on_chunk=partials.append)
    assert [int(p.computed.sum()) for p in partials] == [7, 14]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, threading, time, torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from lightning_landscape.core.base.batches import cache_batches, stream_batches
    from lightning_landscape.core.landscapes.chunked import compute_landscape_in_chunks

    class Generated(Dataset):  # samples made from their index: the data set itself takes no memory
        def __init__(self, n):
            self.n = n
        def __len__(self):
            return self.n
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return torch.randn(3, 32, 32, generator=g), int(i % 10)

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

    def peak_growth_mb(work):
        # the largest resident size while ``work`` runs, above the size just before it
        base, peak, running = rss_mb(), [0.0], [True]
        def sample():
            while running[0]:
                peak[0] = max(peak[0], rss_mb())
                time.sleep(0.002)
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            work()
        finally:
            running[0] = False
            sampler.join()
        return max(peak[0], rss_mb()) - base

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    mode = sys.argv[1]

    def landscape(n):
        loader = DataLoader(Generated(n), batch_size=200)
        device = torch.device("cpu")
        data = stream_batches(loader, 200, device) if mode == "stream" else cache_batches(loader, device)
        compute_landscape_in_chunks(model, data, dims=1, num_points=3, chunk_points=3)

    landscape(400)  # warm-up: every code path loaded once
    for n in (2000, 16000):  # 24 MB, then 197 MB of float32 images
        print(peak_growth_mb(lambda: landscape(n)))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_streamed_memory_stays_flat_from_one_to_eight_times_the_data(tmp_path):
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_SCRIPT)

    def growth_mb(mode: str) -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, str(script), mode], capture_output=True, text=True, check=True, env=os.environ
        )
        one, eight = (float(line) for line in out.stdout.split())
        return one, eight

    cached, streamed = growth_mb("cache"), growth_mb("stream")
    assert cached[1] - cached[0] > 120, (
        f"the control (caching) grew by only {cached} MB: the measurement is blind"
    )
    assert streamed[1] - streamed[0] < 15, f"streaming grew from {streamed[0]:.0f} to {streamed[1]:.0f} MB"

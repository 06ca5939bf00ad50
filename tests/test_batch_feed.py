"""Batches prepared ahead by a thread (or DataLoader workers) arrive in the loader's order, errors reach the
consumer, an early stop ends the thread, and only CUDA batches are pinned."""
import threading

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from training import batch_feed
from training.batch_feed import feed, make_loader, pins


def _loader(n=10, batch_size=3, **kw):
    return DataLoader(TensorDataset(torch.arange(n, dtype=torch.float32)), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(1), **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_feed_yields_the_loaders_batches_in_order(workers):
    want = [b[0] for b in _loader()]
    got = [b[0] for b in feed(_loader(num_workers=workers), "cpu")]
    assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))


def test_the_loader_draws_its_seed_in_the_callers_thread_as_a_plain_loop_does():
    torch.manual_seed(0)
    list(DataLoader(TensorDataset(torch.zeros(4)), batch_size=2))
    plain = torch.rand(1)
    torch.manual_seed(0)
    list(feed(DataLoader(TensorDataset(torch.zeros(4)), batch_size=2), "cpu"))
    assert torch.equal(torch.rand(1), plain)


class _Failing(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i == 4:
            raise OSError("frame file gone")
        return torch.tensor(float(i))


def test_an_error_while_assembling_reaches_the_consumer_and_an_early_stop_ends_the_thread():
    before = threading.active_count()
    with pytest.raises(OSError, match="frame file gone"):
        list(feed(DataLoader(_Failing(), batch_size=2), "cpu"))
    batches = feed(_loader(n=100, batch_size=2), "cpu")
    next(batches)
    batches.close()  # what a loop's break or a bounded benchmark does
    assert threading.active_count() == before


def test_only_cuda_batches_are_pinned(monkeypatch):
    assert not pins("cpu")
    assert pins("cuda:0") == torch.cuda.is_available()
    assert make_loader(TensorDataset(torch.zeros(2)), device="cpu", workers=2).pin_memory is False
    # The CUDA path on a CPU machine: pinning is asked for, in the thread, for every tensor of the batch.
    monkeypatch.setattr(batch_feed.torch.cuda, "is_available", lambda: True)
    pinned = []
    monkeypatch.setattr(batch_feed, "_pinned", lambda batch: pinned.append(batch) or batch)
    assert make_loader(TensorDataset(torch.zeros(2)), device="cuda:0", workers=2).pin_memory is True
    assert make_loader(TensorDataset(torch.zeros(2)), device="cuda:0", workers=0).pin_memory is False  # the thread pins
    list(feed(_loader(n=4, batch_size=2), "cuda:0"))
    assert len(pinned) == 2
    monkeypatch.undo()
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: t.clone())
    a, b = torch.zeros(2), torch.ones(1)
    out = batch_feed._pinned([a, (b, 3)])
    assert torch.equal(out[0], a) and out[0] is not a and out[1][1] == 3

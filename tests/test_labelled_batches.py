from collections import Counter

import numpy as np
import pytest
import torch

from training.distributed import DistContext
from training.labelled_batches import LabelledBatchSampler
from training.trainer import train_loader


def batches(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_every_batch_holds_its_labelled_share():
    labelled = [3, 17, 40]
    sampler = LabelledBatchSampler(labelled, n_items=100, batch_size=8, labelled_per_batch=4)
    got = batches(sampler)
    assert len(got) == len(sampler) == 100 // 8
    for batch in got:
        assert len(batch) == 8
        assert all(0 <= i < 100 for i in batch)
        assert sum(i in labelled for i in batch[:4]) == 4  # the labelled part is labelled only


def test_labelled_items_are_cycled_evenly():
    """Oversampling: each labelled item appears once per pass over the labelled pool, not at random."""
    labelled = list(range(5))
    sampler = LabelledBatchSampler(labelled, n_items=200, batch_size=10, labelled_per_batch=5)
    drawn = [i for batch in batches(sampler) for i in batch[:5]]
    assert len(drawn) == 20 * 5
    assert set(Counter(drawn).values()) == {20}
    for start in range(0, len(drawn), 5):  # every pass is a permutation of the pool
        assert sorted(drawn[start:start + 5]) == labelled


def test_rest_is_a_shuffled_pass_over_all_items():
    sampler = LabelledBatchSampler([0], n_items=64, batch_size=8, labelled_per_batch=2)
    rest = [i for batch in batches(sampler) for i in batch[2:]]
    assert len(rest) == 8 * 6 and len(set(rest)) == len(rest)  # 48 of 64 items, none twice in one pass
    assert rest != sorted(rest)


def test_order_depends_only_on_seed_epoch_and_rank():
    make = lambda seed=0, rank=0: LabelledBatchSampler([1, 2, 3], 50, 5, 2, seed=seed, rank=rank, world_size=2)
    assert batches(make(), 1) == batches(make(), 1)
    assert batches(make(), 1) != batches(make(), 2)
    assert batches(make(seed=1), 1) != batches(make(), 1)
    assert batches(make(rank=1), 1) != batches(make(), 1)
    assert len(make()) == 50 // (5 * 2)  # every rank runs the same number of steps (DDP)


@pytest.mark.parametrize("kwargs, match", [
    ({"labelled": []}, "no labelled item"),
    ({"labelled_per_batch": 0}, "labelled_per_batch"),
    ({"labelled_per_batch": 9}, "labelled_per_batch"),
    ({"labelled": [5, 120]}, "outside"),
    ({"batch_size": 1, "labelled_per_batch": 1}, "batch_size"),
])
def test_bad_arguments_are_named(kwargs, match):
    args = {"labelled": [1], "n_items": 100, "batch_size": 8, "labelled_per_batch": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        LabelledBatchSampler(**args)


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 40

    def __getitem__(self, i):
        return torch.tensor(float(i))


def test_train_loader_uses_it_only_when_asked():
    ctx = DistContext()
    mixed, sampler = train_loader(Items(), 8, ctx, seed=0, labelled=[7], labelled_per_batch=3)
    assert isinstance(sampler, LabelledBatchSampler)
    for batch in mixed:
        assert batch.shape == (8,) and np.count_nonzero(batch[:3].numpy() == 7) == 3
    plain, sampler = train_loader(Items(), 8, ctx, seed=0)
    assert not isinstance(sampler, LabelledBatchSampler)
    assert sorted(torch.cat(list(plain)).tolist()) == list(range(40))

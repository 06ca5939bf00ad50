"""Batches that always carry labelled items (S4L draws a labelled and an unlabelled batch per step).

With sparse annotations a plain shuffle leaves most batches without a single label: at 10 % of
facemask's labels, 7 of 600 training images carry one, so ~70 % of the batches of 32 had no
supervised term while EntMin and VAT acted on every batch (docs/results.md). Here each batch of
`batch_size` items takes `labelled_per_batch` items from the labelled pool (reshuffled and cycled,
i.e. oversampled) and fills the rest from a shuffled pass over every item (labelled ones included,
as in S4L, where the unlabelled batch is drawn from the whole set).

An epoch keeps the plain loader's length (len(items) // (batch_size * world) batches per rank), so
an epoch costs what it did before. The order depends only on (seed, epoch, rank): a resumed or
repeated run sees the same batches. Under DDP every rank draws from its own stream.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class LabelledBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices; pass as `batch_sampler=` to a DataLoader."""

    def __init__(self, labelled: Sequence[int], n_items: int, batch_size: int, labelled_per_batch: int, *,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 < labelled_per_batch <= batch_size:
            raise ValueError(f"labelled_per_batch must be in 1..batch_size ({batch_size}); got {labelled_per_batch}")
        if not labelled:
            raise ValueError("no labelled item to sample: every batch needs at least one")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (BatchNorm); got {batch_size}")
        bad = [i for i in labelled if not 0 <= i < n_items]
        if bad:
            raise ValueError(f"labelled indices outside 0..{n_items - 1}: {bad[:5]}")
        self.labelled = np.asarray(sorted(set(labelled)), dtype=np.int64)
        self.n_items, self.batch_size, self.labelled_per_batch = n_items, batch_size, labelled_per_batch
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(self.n_items // (self.batch_size * self.world_size), 1)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch, self.rank))
        n_batches, n_lab = len(self), self.labelled_per_batch
        labelled = _cycled_permutations(self.labelled, n_batches * n_lab, rng)
        rest = _cycled_permutations(np.arange(self.n_items), n_batches * (self.batch_size - n_lab), rng)
        for b in range(n_batches):
            batch = np.concatenate([labelled[b * n_lab:(b + 1) * n_lab],
                                    rest[b * (self.batch_size - n_lab):(b + 1) * (self.batch_size - n_lab)]])
            yield batch.tolist()


def _cycled_permutations(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` items of `pool`: whole shuffled passes, each item once per pass, as many passes as needed."""
    if n <= 0:
        return pool[:0]
    passes = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:n]

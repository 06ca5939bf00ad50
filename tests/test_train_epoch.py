"""train_epoch's hand-over to the objective: the (augmented) batch and each batch's ramp-up scale."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from training.config import AugmentConfig
from training.distributed import DistContext
from training.trainer import train_epoch


class _Recorder(torch.nn.Module):
    """An objective that records the batches it is given."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen, self.ramps = [], []

    def forward(self, x, mask, targets, semi, ramp=1.0):
        self.seen.append(x.clone())
        self.ramps.append(ramp)
        return (self.w * x).mean(), {}


@pytest.mark.parametrize("enabled", [False, True])
def test_train_epoch_hands_the_objective_the_augmented_batch_only_when_enabled(enabled):
    torch.manual_seed(3)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    objective = _Recorder()
    _run(objective, x, 4, augment=AugmentConfig(enabled=enabled))
    assert torch.equal(objective.seen[0], x) != enabled


def _run(objective, x, batch_size, **kwargs):
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), 2, dtype=torch.long), torch.arange(len(x))),
                        batch_size=batch_size)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    train_epoch(objective, loader, optimizer, scheduler, semi=True, ctx=DistContext(), progress=False, desc="t",
                **kwargs)


def test_train_epoch_hands_each_batch_its_ramp_scale():
    objective = _Recorder()
    _run(objective, torch.zeros(6, 1, 4, 4), 2, ramp=[0.1, 0.5, 0.9])
    assert objective.ramps == [0.1, 0.5, 0.9]
    objective = _Recorder()
    _run(objective, torch.zeros(6, 1, 4, 4), 2)
    assert objective.ramps == [1.0, 1.0, 1.0]  # no ramp: full weight

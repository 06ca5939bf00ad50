"""research.encoder_check: both encoders build with the asked sizes, and the minimal loop learns an easy task."""
import numpy as np
import torch

from research.encoder_check import build, predict, train


class TinyStore:
    """8 recordings of 3 frames: label 0 is the brightness (dark / bright), label 1 known on half of them."""

    def __init__(self):
        self.labels = np.array([[i % 2, i % 2 if i < 4 else -1] for i in range(8)], dtype=np.int64)
        rng = np.random.default_rng(0)
        self.frames = [(0.6 if i % 2 else -0.6) + 0.1 * rng.standard_normal((3, 1, 16, 16)).astype(np.float32)
                       for i in range(8)]

    def frame_count(self, row):
        return 3

    def images(self, row, indices):
        return self.frames[row][list(indices)].astype(np.float32)


def test_encoders_have_the_asked_sizes():
    heads = {"a": 2, "b": 5}
    x = torch.randn(4, 1, 32, 32)
    for model in (build("plain", heads, 0.5, 7, None), build("mobilenet", heads, 1.0, 4, 256)):
        assert [o.shape for o in model.eval()(x)] == [(4, 2), (4, 5)]
    assert build("mobilenet", heads, 1.0, 4, 256).encoder.net.last_channel == 256


def test_the_minimal_loop_learns_an_easy_task():
    torch.manual_seed(0)
    store = TinyStore()
    model = build("plain", {"brightness": 2, "partial": 2}, 0.5, 7, None)
    train(model, store, list(range(8)), epochs=20, batch=4, lr=1e-2, seed=0)
    probs = predict(model, store, list(range(8)), 3, ["brightness", "partial"])
    assert probs["brightness"].shape == (8, 2)
    assert (probs["brightness"].argmax(1) == store.labels[:, 0]).all()

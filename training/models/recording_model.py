"""Recording models: a shared MobileNetV2 encoder, a shared layer and one linear head per label.

kind="multi" (thesis 3.3.2): every frame is encoded by the same encoder; the frame embeddings are
fused into one recording representation ("concat": the thesis' concatenation of the N frame
embeddings, padded frames zeroed by ``frame_mask``; "mean": masked mean of the frame embeddings,
which accepts any frame count) → shared layer → heads.

kind="single" (thesis 3.3.1): each frame is classified on its own; a recording's prediction is
the masked mean of its frames' softmaxes (thesis 3.4), returned as its log so both kinds give
logits ``[B, C]`` under the same ONNX contract (docs/architecture.md).

Both kinds carry a 4-way rotation head on the per-frame embedding (S4L's self-supervised task,
training only; ``forward`` never uses it, so it is not part of the exported graph).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from training.models.mobilenet_v2 import MobileNetV2

KINDS = ("multi", "single")
FUSIONS = ("concat", "mean")
N_ROTATIONS = 4
# Floor for the averaged probabilities of kind="single" before the log: keeps log finite.
MIN_PROB = 1e-12


def _shared_layer(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, out_features), nn.BatchNorm1d(out_features), nn.ReLU(), nn.Dropout(dropout)
    )


class RecordingModel(nn.Module):
    """Multi-label classifier of recordings given as frames ``[B, N, 1, S, S]`` and ``frame_mask [B, N]``.

    ``schema_heads`` maps label name → number of classes, in schema order (the output order).
    ``shared_dim`` is the width of the shared layer, ``dropout`` its dropout rate; ``width``, ``stages`` and
    ``embed_dim`` scale the MobileNetV2 encoder down (training.config.ModelConfig).
    """

    def __init__(
        self,
        schema_heads: Mapping[str, int],
        kind: str = "multi",
        frames: int = 10,
        width: float = 0.5,
        fusion: str = "concat",
        shared_dim: int = 256,
        dropout: float = 0.2,
        stages: int = 7,
        embed_dim: int = 0,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"RecordingModel kind must be one of {KINDS}, got {kind!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"RecordingModel fusion must be one of {FUSIONS}, got {fusion!r}")
        if not schema_heads:
            raise ValueError("RecordingModel needs at least one head")
        for name, n in schema_heads.items():
            if int(n) < 2:
                raise ValueError(f"RecordingModel head {name!r} needs >= 2 classes, got {n}")
        if frames < 1:
            raise ValueError(f"RecordingModel frames must be >= 1, got {frames}")
        self.head_names = tuple(schema_heads)
        self.head_classes = tuple(int(n) for n in schema_heads.values())
        self.kind, self.frames, self.width, self.fusion = kind, frames, width, fusion
        self.encoder = MobileNetV2(num_classes=None, width_mult=width, in_channels=1, stages=stages,
                                   last_channel=embed_dim or None)
        dim = self.encoder.last_channel
        shared_in = dim * frames if (kind == "multi" and fusion == "concat") else dim
        self.shared = _shared_layer(shared_in, shared_dim, dropout)
        # ModuleList, not ModuleDict: label names are free text from the labeling config.
        self.heads = nn.ModuleList(nn.Linear(shared_dim, n) for n in self.head_classes)
        self.rotation_head = nn.Linear(dim, N_ROTATIONS)

    @property
    def schema_heads(self) -> dict[str, int]:
        return dict(zip(self.head_names, self.head_classes))

    def _heads(self, shared: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(shared) for name, head in zip(self.head_names, self.heads)}

    def _check_frames(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> None:
        if torch.jit.is_tracing():  # shapes are symbolic while exporting; the example was checked eagerly
            return
        if frames.dim() != 5 or frames.shape[2] != 1:
            raise ValueError(f"frames must be [B, N, 1, S, S], got shape {tuple(frames.shape)}")
        if tuple(frame_mask.shape) != tuple(frames.shape[:2]):
            raise ValueError(
                f"frame_mask must be [B, N] = {tuple(frames.shape[:2])}, got {tuple(frame_mask.shape)}"
            )
        if self.kind == "multi" and self.fusion == "concat" and frames.shape[1] != self.frames:
            raise ValueError(f"concat fusion needs exactly {self.frames} frames, got {frames.shape[1]}")

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per label ``{name: [B, C]}`` for ``frames [B, N, 1, S, S]`` and ``frame_mask [B, N]``."""
        self._check_frames(frames, frame_mask)
        b, n = frames.shape[0], frames.shape[1]
        images = frames.reshape(b * n, *frames.shape[2:])
        mask = frame_mask.to(frames.dtype).unsqueeze(-1)  # [B, N, 1]
        # Real-frame count, floored at 1 so an all-padding row gives zeros instead of NaN.
        count = mask.sum(dim=1).clamp(min=1.0)  # [B, 1]
        if self.kind == "single":
            probs = {k: v.softmax(-1).reshape(b, n, -1) for k, v in self.frame_logits(images).items()}
            return {k: ((p * mask).sum(dim=1) / count).clamp(min=MIN_PROB).log() for k, p in probs.items()}
        emb = self.encoder.embed(images).reshape(b, n, -1) * mask
        fused = emb.reshape(b, -1) if self.fusion == "concat" else emb.sum(dim=1) / count
        return self._heads(self.shared(fused))

    def frame_logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image logits ``{name: [M, C]}`` (kind="single": single-image training and VAT)."""
        if self.kind != "single":
            raise ValueError("frame_logits is defined for kind='single'; kind='multi' classifies whole recordings")
        return self._heads(self.shared(self.encoder.embed(images)))

    def rotation_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Rotation logits ``[M, 4]`` (0/90/180/270 degrees) for images ``[M, 1, S, S]``."""
        return self.rotation_head(self.encoder.embed(images))


class StlEnsemble(nn.Module):
    """Single-task learning: one RecordingModel per label, exported as one model under the same contract."""

    def __init__(self, models: Mapping[str, RecordingModel]):
        super().__init__()
        if not models:
            raise ValueError("StlEnsemble needs at least one model")
        for name, model in models.items():
            if model.head_names != (name,):
                raise ValueError(f"StlEnsemble model for {name!r} must have exactly one head {name!r}, "
                                 f"has {model.head_names}")
        kinds = {m.kind for m in models.values()}
        if len(kinds) != 1:
            raise ValueError(f"StlEnsemble models must share one kind, got {sorted(kinds)}")
        self.head_names = tuple(models)
        self.models = nn.ModuleList(models.values())
        self.kind = kinds.pop()

    @property
    def schema_heads(self) -> dict[str, int]:
        return {name: m.head_classes[0] for name, m in zip(self.head_names, self.models)}

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: m(frames, frame_mask)[name] for name, m in zip(self.head_names, self.models)}

"""Numeric precision of training and evaluation: float32 on CPU, mixed precision on CUDA.

`RecipeConfig.precision="auto"` keeps a CPU run in float32 (the same numbers as ever); on CUDA it runs
the forward passes under bf16 autocast where the GPU supports bf16 (Ampere and later), else fp16
autocast with a gradient scaler (fp16's narrow range would flush small gradients to zero). Weights,
optimizer state, BatchNorm statistics and the losses stay float32. VAT's power iteration always runs
in float32 (losses/vat.py: its finite difference is already at the edge of float32 resolution).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    device_type: str  # "cpu" | "cuda"
    dtype: torch.dtype | None = None  # autocast dtype; None = float32 throughout

    def autocast(self):
        """Context for forward passes; does nothing in float32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16; a pass-through (plain backward and optimizer step) otherwise."""
        return torch.amp.GradScaler(self.device_type, enabled=self.dtype == torch.float16)


FP32 = Precision("cpu")


def resolve_precision(name: str, device: str) -> Precision:
    """The Precision for a RecipeConfig.precision value on `device` ("cpu", "cuda:0", ...)."""
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if name == "auto":
        if device_type == "cpu":
            return Precision("cpu")
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp32":
        return Precision(device_type)
    if name not in DTYPES:
        raise ValueError(f"recipe.precision must be one of auto, fp32, bf16, fp16; got {name!r}")
    return Precision(device_type, DTYPES[name])

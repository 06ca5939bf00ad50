"""MobileNetV2 defined in the project, with torchvision's layer layout and parameter names.

torchvision's CPU wheels do not match the pinned CPU torch (docs/training.md, "CPU facts"), so the network
is written here. Module tree and state_dict keys are those of
``torchvision.models.mobilenet_v2`` (``features.0.0.weight``, ``features.1.conv.0.0.weight``,
``features.18.0.weight``, ``classifier.1.weight``, ...), so torchvision weights load by key where
torchvision exists (the first conv differs in shape when ``in_channels`` != 3), and weight
initialisation is torchvision's.
"""
from __future__ import annotations

import torch
from torch import nn

# (expand ratio t, output channels c, repeats n, first stride s) — the paper's table 2.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10 % (torchvision's rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → ReLU6: torchvision's Conv2dNormActivation as used here."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(),
        )
        self.out_channels = out_ch


class InvertedResidual(nn.Module):
    """Expand 1×1 → depthwise 3×3 → linear project 1×1, residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {stride}")
        hidden = int(round(inp * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018).

    ``num_classes=None`` builds the encoder only: ``classifier`` is then an ``nn.Identity`` (no
    parameters) and ``forward`` returns the pooled embedding ``[M, last_channel]``.
    ``embed(x)`` always returns the pooled embedding, whatever the classifier.
    """

    def __init__(
        self,
        num_classes: int | None = 1000,
        width_mult: float = 0.5,
        in_channels: int = 1,
        round_nearest: int = 8,
        dropout: float = 0.2,
        stages: int = len(INVERTED_RESIDUAL_SETTING),
        last_channel: int | None = None,
    ):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"MobileNetV2 width_mult must be > 0, got {width_mult}")
        if in_channels < 1:
            raise ValueError(f"MobileNetV2 in_channels must be >= 1, got {in_channels}")
        if not 1 <= stages <= len(INVERTED_RESIDUAL_SETTING):
            raise ValueError(f"MobileNetV2 stages must be in 1..{len(INVERTED_RESIDUAL_SETTING)}, got {stages}")
        input_channel = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = last_channel or make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvBNReLU6(in_channels, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING[:stages]:
            output_channel = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        if num_classes is None:
            self.classifier: nn.Module = nn.Identity()
        else:
            self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features ``[M, last_channel]`` for images ``[M, C, H, W]``."""
        if x.dim() != 4:
            raise ValueError(f"MobileNetV2 expects images [M, C, H, W], got shape {tuple(x.shape)}")
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

"""IR-SE ResNet building blocks shared by the e4e / ReStyle encoders and the ArcFace backbone.

The layout (module and parameter names) follows the ``model_ir_se50.pth`` / pSp / e4e checkpoints:
``input_layer`` = conv3x3 + BN + PReLU, ``body`` = a flat ``Sequential`` of bottleneck units, each
with ``shortcut_layer`` (identity-subsample or conv1x1 + BN) and ``res_layer`` (BN, conv3x3, PReLU,
conv3x3 (strided), BN, squeeze-excitation). Written from the architecture description of
"ArcFace" (Deng et al., CVPR 2019) and pSp (Richardson et al., CVPR 2021); no torchvision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..stylegan2 import EqualLinear

# (units per stage) for the three depths of the IR / IR-SE family; every stage halves the resolution
# and its widths are 64, 128, 256, 512.
_STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
_STAGE_WIDTHS = (64, 128, 256, 512)
MODES = ("ir", "ir_se")


def unit_specs(num_layers: int) -> list[tuple[int, int, int]]:
    """(in_channels, out_channels, stride) of every bottleneck unit of an IR-``num_layers`` body."""
    if num_layers not in _STAGE_UNITS:
        raise ValueError(f"num_layers must be one of {sorted(_STAGE_UNITS)}, got {num_layers!r}")
    specs = []
    in_c = 64
    for units, width in zip(_STAGE_UNITS[num_layers], _STAGE_WIDTHS, strict=True):
        specs.append((in_c, width, 2))
        specs.extend((width, width, 1) for _ in range(units - 1))
        in_c = width
    return specs


class SqueezeExcite(nn.Module):
    """Channel gating x * sigmoid(fc2(relu(fc1(avgpool(x))))) with 1x1 convs (names fc1, fc2)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))
        return x * gate


class _Subsample(nn.Module):
    """Identity shortcut that keeps every ``stride``-th pixel (a 1x1 max-pool); no parameters."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]


class BottleneckIR(nn.Module):
    """One improved-residual unit: ``res_layer(x) + shortcut_layer(x)``; ``se`` adds SE gating."""

    def __init__(self, in_channels: int, depth: int, stride: int, se: bool = True) -> None:
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = _Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SqueezeExcite(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def make_input_layer(in_channels: int = 3) -> nn.Sequential:
    """conv3x3(in_channels -> 64, no bias) + BatchNorm2d + PReLU, stride 1."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
    )


def make_body(num_layers: int = 50, mode: str = "ir_se") -> nn.Sequential:
    """The flat sequence of bottleneck units (24 for IR-50); output stride 16, 512 channels."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return nn.Sequential(
        *(BottleneckIR(i, o, s, se=mode == "ir_se") for i, o, s in unit_specs(num_layers))
    )


class GradualStyleBlock(nn.Module):
    """pSp's map2style head: log2(spatial) stride-2 conv3x3 + LeakyReLU(0.01) down to 1x1, then an
    EqualLinear; maps a [B,in_c,spatial,spatial] feature map to one style vector [B,out_c]."""

    def __init__(self, in_c: int, out_c: int, spatial: int) -> None:
        super().__init__()
        self.out_c = out_c
        n_down = int(math.log2(spatial))
        layers: list[nn.Module] = []
        for i in range(n_down):
            layers += [nn.Conv2d(in_c if i == 0 else out_c, out_c, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        return self.linear(x.reshape(-1, self.out_c))

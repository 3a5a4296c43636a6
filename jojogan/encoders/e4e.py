"""e4e: "Designing an Encoder for StyleGAN Image Manipulation" (Tov et al., SIGGRAPH 2021).

``Encoder4Editing`` predicts one base code w0 from the coarsest feature map and, for every further
W+ layer i, an offset delta_i from an FPN level (layers 1-2: 16x16, 3-6: 32x32, 7+: 64x64 features);
W+ = [w0, w0 + delta_1, ...]. At inference all deltas are used (upstream's final progressive stage).
The caller adds ``latent_avg`` (see :class:`jojogan.encoders.E4EEncoder`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .irse import GradualStyleBlock, make_body, make_input_layer

COARSE_END = 3  # styles 0..2 read the 16x16 map
MIDDLE_END = 7  # styles 3..6 read the 32x32 FPN level, 7.. the 64x64 level
# Indices of the IR-50 body units whose outputs feed the FPN (64x64x128, 32x32x256, 16x16x512).
_TAPS = (6, 20, 23)


def n_styles_for_size(size: int) -> int:
    """W+ layers of a StyleGAN2 generator of ``size`` px: 2*log2(size) - 2 (18 at 1024)."""
    log = int(math.log2(size))
    if size < 4 or 2**log != size:
        raise ValueError(f"generator size must be a power of two >= 4, got {size!r}")
    return 2 * log - 2


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class Encoder4Editing(nn.Module):
    """IR-SE50 + FPN + one GradualStyleBlock per W+ layer. [B,3,256,256] -> [B,n_styles,512]
    (offsets from ``latent_avg``; not yet added)."""

    def __init__(self, n_styles: int = 18, num_layers: int = 50, mode: str = "ir_se") -> None:
        super().__init__()
        if num_layers != 50:
            # The FPN taps (units 6, 20, 23) are those of the 50-layer body, as upstream.
            raise ValueError(f"Encoder4Editing supports num_layers=50 only, got {num_layers!r}")
        self.n_styles = n_styles
        self.input_layer = make_input_layer(3)
        self.body = make_body(num_layers, mode)
        self.styles = nn.ModuleList(
            GradualStyleBlock(512, 512, 16 if i < COARSE_END else 32 if i < MIDDLE_END else 64)
            for i in range(n_styles)
        )
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)
        taps = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in _TAPS:
                taps.append(x)
        c1, c2, c3 = taps
        w0 = self.styles[0](c3)
        codes = [w0]
        features = c3
        p2 = None
        for i in range(1, self.n_styles):
            if i == COARSE_END:
                p2 = _upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif i == MIDDLE_END:
                features = _upsample_add(p2, self.latlayer2(c1))
            codes.append(w0 + self.styles[i](features))
        return torch.stack(codes, dim=1)

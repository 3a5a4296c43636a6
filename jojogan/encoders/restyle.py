"""ReStyle-pSp: "ReStyle: A Residual-Based StyleGAN Encoder via Iterative Refinement"
(Alaluf et al., ICCV 2021).

``BackboneEncoder`` maps the concatenation [image, current reconstruction] ([B,6,256,256]) to a
W+ *residual* [B,n_styles,512]; every style head reads the final 16x16 IR-SE50 feature map.
The iteration itself (start from ``latent_avg`` and its image, add residuals, re-render, pool to
256 px) lives in :class:`jojogan.encoders.ReStyleEncoder`.
"""

from __future__ import annotations

import torch
from torch import nn

from .irse import GradualStyleBlock, make_body, make_input_layer


class BackboneEncoder(nn.Module):
    """IR-SE body + ``n_styles`` GradualStyleBlock(512, 512, 16) heads on the last feature map."""

    def __init__(
        self, n_styles: int = 18, input_nc: int = 6, num_layers: int = 50, mode: str = "ir_se"
    ) -> None:
        super().__init__()
        self.n_styles = n_styles
        self.input_layer = make_input_layer(input_nc)
        self.body = make_body(num_layers, mode)
        self.styles = nn.ModuleList(GradualStyleBlock(512, 512, 16) for _ in range(n_styles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(self.input_layer(x))
        return torch.stack([style(x) for style in self.styles], dim=1)

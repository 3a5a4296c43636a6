"""StyleGAN2 generator and discriminator in plain PyTorch, with rosinality's state-dict layout.

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (config f): a mapping
network z -> w, a synthesis network driven by per-layer styles through modulated/demodulated
convolutions (Sec. 2.2, Eq. 1-3), skip-connected ToRGB outputs, and a residual discriminator with a
minibatch-stddev layer. Parameter and buffer names are those of rosinality's stylegan2-pytorch, the
layout of the FFHQ checkpoint, of JoJoGAN's style files and of e4e's decoder, so those load with
`strict=True`.

S space (Wu et al. 2021, "StyleSpace Analysis"): `Generator.styles(ws)` returns the per-layer
modulation vectors s = A(w) (26 at 1024 px) and `Generator.synthesis_from_styles(styles)` renders
from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import (
    Blur,
    FusedLeakyReLU,
    Upsample,
    channels_last_enabled,
    fast_ops_enabled,
    fused_leaky_relu,
)

__all__ = [
    "ConstantInput",
    "ConvLayer",
    "Discriminator",
    "EqualConv2d",
    "EqualLinear",
    "Generator",
    "ModulatedConv2d",
    "NoiseInjection",
    "PixelNorm",
    "ResBlock",
    "StyledConv",
    "ToRGB",
    "channel_table",
]

NOISE_MODES = ("const", "random", "none")


def channel_table(
    size: int,
    channel_multiplier: int = 2,
    channel_max: int = 512,
    channels: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Feature-map width per resolution 4..size: rosinality's table, `channels` overrides, capped.

    Rosinality: 512 up to 32 px, then 256*m, 128*m, 64*m, 32*m, 16*m for 64..1024 px (m = the
    channel multiplier, 2 for FFHQ config f).
    """
    _check_size(size, "channel_table")
    table = {4: 512, 8: 512, 16: 512, 32: 512}
    for res in (64, 128, 256, 512, 1024):
        table[res] = 16384 // res * channel_multiplier
    if channels is not None:
        for res, width in channels.items():
            if int(res) not in table or int(width) < 1:
                raise ValueError(
                    f"channels: bad entry {res}: {width}; keys are resolutions 4..1024 "
                    "(powers of two), values positive widths"
                )
            table[int(res)] = int(width)
    out = {}
    res = 4
    while res <= size:
        out[res] = min(table[res], channel_max)
        res *= 2
    return out


def _check_size(size: int, who: str) -> None:
    if not isinstance(size, int) or size < 16 or size > 1024 or size & (size - 1):
        raise ValueError(f"{who}: size must be a power of two from 16 to 1024, got {size!r}")


class PixelNorm(nn.Module):
    """Normalise each vector to unit root-mean-square over dim 1 (the mapping network's input)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer, equalized learning rate (weights scaled by lr_mul/sqrt(in) at run time)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in (None, "fused_lrelu"):
            raise ValueError(
                f"EqualLinear: activation must be None or 'fused_lrelu', got {activation!r}"
            )
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Conv2d with the equalized learning rate (weights scaled at run time by 1/sqrt(fan_in))."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding
        )


class ModulatedConv2d(nn.Module):
    """Modulated (and demodulated) convolution, StyleGAN2 Sec. 2.2, Eq. 1-3.

    forward(x [B,Cin,H,W], w [B,style_dim]) or forward(x, s=s [B,Cin]) with the style vector
    s = modulation(w) supplied precomputed (S space). Upsampling: transposed stride-2 conv, then
    the FIR blur; downsampling: blur, then stride-2 conv.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.downsample = downsample
        self.demodulate = demodulate
        factor = 2
        if upsample:
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(
                blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor
            )
        if downsample:
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, x: Tensor, w: Tensor | None = None, *, s: Tensor | None = None) -> Tensor:
        if s is None:
            if w is None:
                raise ValueError(
                    "ModulatedConv2d: pass a latent w [B,style_dim] or a style s [B,Cin]"
                )
            s = self.modulation(w)
        b, cin, h, wd = x.shape
        k = self.kernel_size
        weight = self.scale * self.weight * s.view(b, 1, cin, 1, 1)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(b, self.out_channel, 1, 1, 1)

        # One image: an NHWC x and weight keep the convolution (and its output) channels-last.
        nhwc = b == 1 and channels_last_enabled()
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * cin, self.out_channel, k, k)
            xin = x if nhwc else x.reshape(1, b * cin, h, wd)
            out = F.conv_transpose2d(xin, weight.contiguous(memory_format=fmt), stride=2, groups=b)
            out = self.blur(out if nhwc else out.view(b, self.out_channel, *out.shape[2:]))
            return out
        weight = weight.view(b * self.out_channel, cin, k, k).contiguous(memory_format=fmt)
        if self.downsample:
            x = self.blur(x)
            h, wd = x.shape[2], x.shape[3]
            stride, padding = 2, 0
        else:
            stride, padding = 1, self.padding
        xin = x if nhwc else x.reshape(1, b * cin, h, wd)
        out = F.conv2d(xin, weight, stride=stride, padding=padding, groups=b)
        return out if nhwc else out.view(b, self.out_channel, out.shape[2], out.shape[3])


class NoiseInjection(nn.Module):
    """x + weight * noise, with a learned scalar `weight`; noise [B or 1,1,H,W] or None (no-op)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            return x
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned constant 4x4 input of the synthesis network: `input` [1,C,4,4]."""

    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> Tensor:
        out = self.input.repeat(batch, 1, 1, 1)
        if batch == 1 and channels_last_enabled():  # the layout then follows through every conv
            out = out.contiguous(memory_format=torch.channels_last)
        return out


class StyledConv(nn.Module):
    """Modulated conv, noise injection, bias + leaky ReLU: one synthesis layer."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel,
            out_channel,
            kernel_size,
            style_dim,
            demodulate=demodulate,
            upsample=upsample,
            blur_kernel=blur_kernel,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(
        self,
        x: Tensor,
        w: Tensor | None = None,
        noise: Tensor | None = None,
        *,
        s: Tensor | None = None,
    ) -> Tensor:
        return self.activate(self.noise(self.conv(x, w, s=s), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus bias, added to the upsampled skip image."""

    def __init__(
        self,
        in_channel: int,
        style_dim: int,
        upsample: bool = True,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(
        self,
        x: Tensor,
        w: Tensor | None = None,
        skip: Tensor | None = None,
        *,
        s: Tensor | None = None,
    ) -> Tensor:
        out = self.conv(x, w, s=s) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class Generator(nn.Module):
    """StyleGAN2 generator (rosinality layout). Defaults: FFHQ config f (size 1024: 18 latents).

    size: output resolution, a power of two 16..1024; channels: optional {resolution: width}
    overriding rosinality's table (smaller models), capped at channel_max.
    """

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        *,
        channel_max: int = 512,
        channels: Mapping[int, int] | None = None,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
    ) -> None:
        super().__init__()
        _check_size(size, "Generator")
        if style_dim < 1 or n_mlp < 1:
            raise ValueError(
                f"Generator: style_dim and n_mlp must be >= 1, got {style_dim}, {n_mlp}"
            )
        self.size = size
        self.style_dim = style_dim
        self.log_size = int(math.log2(size))
        self.n_latent = self.log_size * 2 - 2
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_styles = self.num_layers + self.log_size - 1
        self.channels = channel_table(size, channel_multiplier, channel_max, channels)
        blur_kernel = tuple(blur_kernel)

        self.style = nn.Sequential(
            PixelNorm(),
            *(
                EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu")
                for _ in range(n_mlp)
            ),
        )
        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_channel = ch[4]
        for i in range(3, self.log_size + 1):
            out_channel = ch[2**i]
            self.convs.append(
                StyledConv(
                    in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel
                )
            )
            self.convs.append(
                StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel)
            )
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel

    # -- latent spaces -------------------------------------------------------------------------

    def mapping(
        self, z: Tensor, truncation: float = 1.0, truncation_latent: Tensor | None = None
    ) -> Tensor:
        """z [B,style_dim] -> w [B,style_dim]; truncation psi pulls w toward truncation_latent."""
        if z.ndim != 2 or z.shape[1] != self.style_dim:
            raise ValueError(
                f"Generator.mapping: expected z of shape [B,{self.style_dim}], got {tuple(z.shape)}"
            )
        w = self.style(z)
        if truncation != 1.0:
            if truncation_latent is None:
                raise ValueError(
                    "Generator.mapping: truncation != 1 needs truncation_latent (mean_latent())"
                )
            w = truncation_latent + truncation * (w - truncation_latent)
        return w

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> Tensor:
        """Mean of mapping(z), n z ~ N(0,I) from a CPU generator seeded `seed`: [1,style_dim]."""
        if n < 1:
            raise ValueError(f"Generator.mean_latent: n must be >= 1, got {n}")
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.style_dim, generator=gen)
        ref = self.input.input
        return self.style(z.to(device=ref.device, dtype=ref.dtype)).mean(0, keepdim=True)

    def _style_layers(self) -> list[tuple[nn.Module, int]]:
        """(layer, index of its w in ws) in execution order: conv1, to_rgb1, convs[0], convs[1],
        to_rgbs[0], convs[2], ..."""
        layers: list[tuple[nn.Module, int]] = [(self.conv1, 0), (self.to_rgb1, 1)]
        for k, to_rgb in enumerate(self.to_rgbs):
            layers += [(self.convs[2 * k], 1 + 2 * k), (self.convs[2 * k + 1], 2 + 2 * k)]
            layers.append((to_rgb, 3 + 2 * k))
        return layers

    def _check_ws(self, ws: Tensor, who: str) -> None:
        if ws.ndim != 3 or ws.shape[1] != self.n_latent or ws.shape[2] != self.style_dim:
            raise ValueError(
                f"Generator.{who}: expected ws of shape [B,{self.n_latent},{self.style_dim}] "
                f"(W+ for {self.size} px), got {tuple(ws.shape)}"
            )

    def styles(self, ws: Tensor) -> list[Tensor]:
        """S space: the modulation vectors [B,C_l] of every layer (n_styles of them), in order
        conv1, to_rgb1, convs[0], convs[1], to_rgbs[0], convs[2], ..."""
        self._check_ws(ws, "styles")
        return [layer.conv.modulation(ws[:, i]) for layer, i in self._style_layers()]

    # -- synthesis -----------------------------------------------------------------------------

    def _noise_list(
        self, batch: int, like: Tensor, noise_mode: str, noise: Sequence[Tensor | None] | None
    ) -> list[Tensor | None]:
        if noise is not None:
            if len(noise) != self.num_layers:
                raise ValueError(
                    f"Generator: noise must be a list of {self.num_layers} tensors, "
                    f"got {len(noise)}"
                )
            return list(noise)
        if noise_mode == "const":
            return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if noise_mode == "none":
            return [None] * self.num_layers
        if noise_mode == "random":
            return list(self.random_noise(batch, like))
        raise ValueError(f"Generator: noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")

    def random_noise(
        self, n: int, like: Tensor, generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """One N(0,1) map [n,1,H,W] per synthesis layer, in forward order: from ``generator`` on
        the CPU, or (None) from the global generator of ``like``'s device, as rosinality's
        `NoiseInjection` draws them (``new_empty(...).normal_()``) during the forward."""
        out = []
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            if generator is None:
                out.append(torch.randn(n, 1, res, res, device=like.device, dtype=like.dtype))
            else:
                out.append(torch.randn(n, 1, res, res, generator=generator).to(like))
        return out

    def synthesis_from_styles(
        self,
        styles: Sequence[Tensor],
        noise_mode: str = "const",
        noise: Sequence[Tensor | None] | None = None,
    ) -> Tensor:
        """Render from S-space styles (see `styles`) -> images [B,3,size,size], about [-1,1]."""
        layers = self._style_layers()
        if len(styles) != len(layers):
            raise ValueError(
                f"Generator.synthesis_from_styles: expected {len(layers)} style tensors for "
                f"{self.size} px, got {len(styles)}"
            )
        batch = styles[0].shape[0]
        for j, ((layer, _), s) in enumerate(zip(layers, styles, strict=True)):
            want = layer.conv.in_channel
            if s.ndim != 2 or s.shape[0] != batch or s.shape[1] != want:
                raise ValueError(
                    f"Generator.synthesis_from_styles: style {j} must have shape "
                    f"[{batch},{want}], got {tuple(s.shape)}"
                )
        noises = self._noise_list(batch, styles[0], noise_mode, noise)
        x = self.conv1(self.input(batch), noise=noises[0], s=styles[0])
        skip = self.to_rgb1(x, s=styles[1])
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * k](x, noise=noises[1 + 2 * k], s=styles[2 + 3 * k])
            x = self.convs[2 * k + 1](x, noise=noises[2 + 2 * k], s=styles[3 + 3 * k])
            skip = to_rgb(x, skip=skip, s=styles[4 + 3 * k])
        return skip

    def synthesis(
        self,
        ws: Tensor,
        noise_mode: str = "const",
        noise: Sequence[Tensor | None] | None = None,
    ) -> Tensor:
        """W+ codes [B,n_latent,style_dim] -> images [B,3,size,size], roughly in [-1,1].

        noise_mode: "const" the stored noise buffers (rosinality randomize_noise=False), "none"
        no noise, "random" fresh N(0,1) noise; an explicit `noise` list overrides it.
        """
        self._check_ws(ws, "synthesis")
        return self.synthesis_from_styles(self.styles(ws), noise_mode, noise)

    def forward(self, ws: Tensor, noise_mode: str = "const") -> Tensor:
        """Same as `synthesis`."""
        return self.synthesis(ws, noise_mode)


class ConvLayer(nn.Sequential):
    """[Blur] + EqualConv2d (+ FusedLeakyReLU); downsample: blur then a stride-2 conv."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        bias: bool = True,
        activate: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(
                in_channel,
                out_channel,
                kernel_size,
                stride=stride,
                padding=padding,
                bias=bias and not activate,
            )
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Discriminator block: two 3x3 convs (the second downsamples) plus a 1x1 skip, / sqrt(2)."""

    def __init__(
        self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = (1, 3, 3, 1)
    ) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(
            in_channel,
            out_channel,
            1,
            downsample=True,
            blur_kernel=blur_kernel,
            activate=False,
            bias=False,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x)) + self.skip(x)
        return out.div_(math.sqrt(2)) if fast_ops_enabled() else out / math.sqrt(2)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator (rosinality layout): images [B,3,size,size] -> logits [B,1].

    `features(img, layers)` returns the activations after the given entries of `convs` (JoJoGAN's
    loss taps: (1, 3, 4, 5)).
    """

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        *,
        channel_max: int = 512,
        channels: Mapping[int, int] | None = None,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        _check_size(size, "Discriminator")
        self.size = size
        ch = channel_table(size, channel_multiplier, channel_max, channels)
        self.channels = ch
        blur_kernel = tuple(blur_kernel)
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        in_channel = ch[size]
        for i in range(int(math.log2(size)), 2, -1):
            out_channel = ch[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = 4
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )

    def _check_img(self, img: Tensor, who: str) -> None:
        if (
            img.ndim != 4
            or img.shape[1] != 3
            or img.shape[2] != self.size
            or img.shape[3] != self.size
        ):
            raise ValueError(
                f"Discriminator.{who}: expected images [B,3,{self.size},{self.size}], "
                f"got {tuple(img.shape)}"
            )

    def forward(self, img: Tensor) -> Tensor:
        """Logits [B,1] (real > fake)."""
        self._check_img(img, "forward")
        out = self.convs(img)
        b, c, h, w = out.shape
        group = min(b, self.stddev_group)
        if b % group:
            raise ValueError(
                f"Discriminator: batch size {b} must be a multiple of {group} "
                "(minibatch-stddev groups)"
            )
        f = self.stddev_feat
        std = out.view(group, -1, f, c // f, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, std.repeat(group, 1, h, w)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.view(b, -1))

    def features(self, img: Tensor, layers: Sequence[int] = (1, 3, 4, 5)) -> list[Tensor]:
        """Activations after `convs[i]` for i in `layers` (in that order); stops at the deepest."""
        self._check_img(img, "features")
        n = len(self.convs)
        idx = [int(i) for i in layers]
        if not idx or any(i < 0 or i >= n for i in idx):
            raise ValueError(
                f"Discriminator.features: layers must be indices 0..{n - 1} of convs for "
                f"{self.size} px, got {tuple(layers)}"
            )
        taps: dict[int, Tensor] = {}
        out = img.contiguous(memory_format=torch.channels_last) if channels_last_enabled() else img
        for i in range(max(idx) + 1):
            out = self.convs[i](out)
            if i in idx:
                taps[i] = out
        return [taps[i] for i in idx]

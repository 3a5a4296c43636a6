"""StyleGAN2's resampling filters and biased leaky ReLU in plain PyTorch (no compiled extension).

Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN": every up- and
downsampling goes through a separable FIR low-pass filter (`upfirdn2d`: upsample by zero insertion,
pad, FIR filter, downsample by striding), and activations are leaky ReLU(0.2) scaled by sqrt(2).

Two implementations of `upfirdn2d` sit behind ONE switch (`set_fast_ops` / `fast_ops`):

* the plain path spells out the reference semantics literally (zero insertion, padding, a
  convolution with the flipped kernel, striding);
* the fast path (the default) is a single depthwise `F.conv2d(groups=C)` with the padding and the
  stride folded in, or a depthwise `F.conv_transpose2d` when upsampling. It computes the same
  function (tests compare both paths, forward and gradient, in float64).

The switches (this one and `set_channels_last`) are context-local (`contextvars`): a setting made
in one thread or asyncio task never leaks into another, so concurrent prompts cannot change each
other's ops; a new thread starts from the defaults.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Blur",
    "Downsample",
    "FusedLeakyReLU",
    "Upsample",
    "channels_last",
    "channels_last_enabled",
    "fast_ops",
    "fast_ops_enabled",
    "fused_leaky_relu",
    "make_kernel",
    "set_channels_last",
    "set_fast_ops",
    "upfirdn2d",
]


class _Switch:
    """An on/off setting local to the running context (thread or asyncio task), with a scoped
    override: one shape for every switch here.

    The value lives in a `contextvars.ContextVar`, so a prompt that turns a switch on in one
    thread (ComfyUI runs prompts in a worker thread) never changes it for another, and a new
    thread starts from the default. ``set`` changes the current context only."""

    def __init__(self, name: str, default: bool) -> None:
        self._var: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"jojogan.ops.{name}", default=bool(default)
        )

    @property
    def enabled(self) -> bool:
        return self._var.get()

    def set(self, enabled: bool) -> None:
        self._var.set(bool(enabled))

    @contextlib.contextmanager
    def scoped(self, enabled: bool) -> Iterator[None]:
        previous = self._var.get()
        token = self._var.set(bool(enabled))
        try:
            yield
        finally:
            try:
                self._var.reset(token)
            except ValueError:  # left in another context (a generator resumed elsewhere)
                self._var.set(previous)


_FAST = _Switch("fast_ops", True)
_CHANNELS_LAST = _Switch("channels_last", False)


def set_fast_ops(enabled: bool) -> None:
    """Switch every op in this module between the fast path (True, default) and the plain one,
    for the current thread (context) only; other threads keep their own setting."""
    _FAST.set(enabled)


def fast_ops_enabled() -> bool:
    """Whether the fast path is on."""
    return _FAST.enabled


def fast_ops(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Context manager: run the block with the fast path on or off, then restore the setting."""
    return _FAST.scoped(enabled)


def set_channels_last(enabled: bool) -> None:
    """Run the generator's and discriminator's activations in channels-last memory (NHWC).

    Same math, another memory layout: the convolutions pick other kernels (on this CPU about
    1.14x faster for a 1024 px fine-tune step) whose float32 rounding differs from the NCHW ones
    (tests bound both against float64). Applies where the batch is one image per grouped
    modulated conv (larger batches keep NCHW: the grouped-conv reshape would copy). Like every
    switch here it holds for the current thread (context) only."""
    _CHANNELS_LAST.set(enabled)


def channels_last_enabled() -> bool:
    """Whether channels-last activations are on (see `set_channels_last`)."""
    return _CHANNELS_LAST.enabled


def channels_last(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Context manager: channels-last activations on or off for the block, then restore."""
    return _CHANNELS_LAST.scoped(enabled)


def make_kernel(k: Sequence[float] | Tensor) -> Tensor:
    """A normalised 2-D FIR kernel (float32, sums to 1); a 1-D `k` gives the outer product k k^T."""
    k = torch.as_tensor(k, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    if k.ndim != 2:
        raise ValueError(f"make_kernel: expected a 1-D or 2-D kernel, got shape {tuple(k.shape)}")
    return k / k.sum()


def _check_pad(pad: Sequence[int]) -> tuple[int, int]:
    if len(pad) != 2:
        raise ValueError(f"upfirdn2d: pad must be (p0, p1) applied to both axes, got {pad!r}")
    return int(pad[0]), int(pad[1])


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: Sequence[int] = (0, 0)
) -> Tensor:
    """Upsample by zero insertion, pad, filter with `kernel`, downsample by striding.

    x: [B,C,H,W]; kernel: [kh,kw]; pad (p0, p1): added before/after on both axes (negative
    values crop). Output: [B,C,(H*up+p0+p1-kh)//down+1, ...], as rosinality's `upfirdn2d`.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected x of shape [B,C,H,W], got {tuple(x.shape)}")
    if kernel.ndim != 2:
        raise ValueError(f"upfirdn2d: expected a 2-D kernel, got shape {tuple(kernel.shape)}")
    if int(up) < 1 or int(down) < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1, got up={up}, down={down}")
    p0, p1 = _check_pad(pad)
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    if _FAST.enabled:
        out = _upfirdn2d_fast(x, kernel, int(up), int(down), p0, p1)
        if out is not None:
            return out
    return _upfirdn2d_plain(x, kernel, int(up), int(down), p0, p1)


def _upfirdn2d_plain(x: Tensor, kernel: Tensor, up: int, down: int, p0: int, p1: int) -> Tensor:
    """The reference semantics, step by step, one channel at a time."""
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    if up > 1:  # zero insertion: each sample is followed by up-1 zeros, on both axes
        y = F.pad(y.reshape(b * c, 1, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1])
        y = y.reshape(b * c, 1, h * up, w * up)
    y = F.pad(y, [p0, p1, p0, p1])  # negative padding crops
    y = F.conv2d(y, torch.flip(kernel, [0, 1])[None, None])
    y = y[:, :, ::down, ::down]
    return y.reshape(b, c, y.shape[2], y.shape[3])


def _upfirdn2d_fast(
    x: Tensor, kernel: Tensor, up: int, down: int, p0: int, p1: int
) -> Tensor | None:
    """One depthwise (transposed) convolution; None where that form does not apply."""
    c = x.shape[1]
    kh, kw = kernel.shape
    if up == 1:
        if p0 < 0 or p1 < 0:
            return None
        weight = torch.flip(kernel, [0, 1]).expand(c, 1, kh, kw)
        if p0 == p1:
            return F.conv2d(x, weight, stride=down, padding=p0, groups=c)
        return F.conv2d(F.pad(x, [p0, p1, p0, p1]), weight, stride=down, groups=c)
    if down != 1 or kh != kw:
        return None
    # conv_transpose2d(stride=up) is the full convolution of the zero-inserted signal; the
    # reference's output starts kh-1-p0 samples into it and is output_padding longer at the end.
    crop = kh - 1 - p0
    output_padding = p1 - p0 + up - 1
    if crop < 0 or not 0 <= output_padding < up:
        return None
    weight = kernel.expand(c, 1, kh, kw)
    return F.conv_transpose2d(
        x, weight, stride=up, padding=crop, output_padding=output_padding, groups=c
    )


def fused_leaky_relu(
    x: Tensor, bias: Tensor | None = None, negative_slope: float = 0.2, scale: float = 2**0.5
) -> Tensor:
    """scale * leaky_relu(x + bias): x [B,C,...], bias [C] added along dim 1."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Per-channel bias then leaky ReLU(0.2) times sqrt(2); parameter `bias` [C] (or none)."""

    def __init__(
        self,
        channel: int,
        bias: bool = True,
        negative_slope: float = 0.2,
        scale: float = 2**0.5,
    ) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


class Upsample(nn.Module):
    """2x (or `factor`x) upsampling with the FIR filter: [B,C,H,W] -> [B,C,fH,fW]."""

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        k = make_kernel(kernel) * factor**2
        self.register_buffer("kernel", k)
        p = k.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Downsample(nn.Module):
    """FIR low-pass then `factor`x decimation: [B,C,H,W] -> [B,C,H/f,W/f]."""

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        k = make_kernel(kernel)
        self.register_buffer("kernel", k)
        p = k.shape[0] - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, down=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR filter with padding `pad` (p0, p1); the kernel is scaled by upsample_factor**2."""

    def __init__(
        self, kernel: Sequence[float], pad: Sequence[int], upsample_factor: int = 1
    ) -> None:
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * upsample_factor**2
        self.register_buffer("kernel", k)
        self.pad = _check_pad(pad)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)

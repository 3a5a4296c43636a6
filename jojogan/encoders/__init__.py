"""GAN-inversion encoders for JoJoGAN step 1 (Sec. 3.1): e4e and ReStyle-pSp, on an IR-SE50 body.

``load_encoder(path)`` reads ``e4e_ffhq_encode.pt`` or ``restyle_psp_ffhq_encode.pt`` (the layout
``{"state_dict": encoder.* + decoder.*, "opts": dict, "latent_avg": [n,512]}``) strictly through
:mod:`jojogan.checkpoints` and returns an :class:`E4EEncoder` or a :class:`ReStyleEncoder`: modules
mapping aligned faces [B,3,256,256] in [-1,1] to W+ codes [B,n_styles,512] with ``latent_avg``
already added, as upstream's ``pSp.forward`` returns them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoints as ck
from .. import weights
from ..stylegan2 import Generator
from .e4e import Encoder4Editing, n_styles_for_size
from .irse import BottleneckIR, GradualStyleBlock, make_body, make_input_layer, unit_specs
from .restyle import BackboneEncoder

__all__ = [
    "BackboneEncoder",
    "BottleneckIR",
    "E4EEncoder",
    "Encoder4Editing",
    "GradualStyleBlock",
    "ReStyleEncoder",
    "check_face_images",
    "load_encoder",
    "make_body",
    "make_input_layer",
    "n_styles_for_size",
    "unit_specs",
]

INPUT_SIZE = 256
RESTYLE_DEFAULT_ITERS = 5  # upstream's --n_iters_per_batch default (options/test_options.py)
# e4e's fallback when a file has no latent_avg: decoder.mean_latent(10000) (upstream draws it
# unseeded; we seed it so that loading is deterministic).
MEAN_LATENT_SAMPLES = 10_000
_RANGE_TOL = 1e-3


def check_face_images(images: Any, who: str, size: int = INPUT_SIZE) -> None:
    """Raise ValueError unless ``images`` is a finite float tensor [B,3,size,size] in [-1,1]."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{who}: images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise ValueError(
            f"{who}: images must have shape [B,3,{size},{size}] (B >= 1), got "
            f"{tuple(images.shape)}; ComfyUI IMAGE tensors [B,H,W,3] must be permuted first"
        )
    if tuple(images.shape[-2:]) != (size, size):
        raise ValueError(
            f"{who}: images must be {size}x{size} px, got {images.shape[-2]}x{images.shape[-1]}; "
            "use jojogan.invert.invert(), which resizes with antialiasing"
        )
    if not images.is_floating_point():
        raise ValueError(f"{who}: images must be floating point in [-1,1], got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{who}: images contain NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(
            f"{who}: images must be in [-1,1], got values in [{lo:.3g}, {hi:.3g}]; "
            "map [0,1] images with x * 2 - 1 (and [0,255] ones with x / 127.5 - 1)"
        )


def _as_latent_avg(latent_avg: torch.Tensor | None, n_styles: int) -> torch.Tensor | None:
    if latent_avg is None:
        return None
    t = latent_avg.detach().float()
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != 512 or t.shape[0] not in (1, n_styles):
        raise ValueError(
            f"latent_avg must have shape [512], [1,512] or [{n_styles},512], got "
            f"{tuple(latent_avg.shape)}"
        )
    return t.expand(n_styles, 512).clone()


class _EncoderBase(nn.Module):
    kind = "encoder"
    input_size = INPUT_SIZE

    def _prepare(self, images: torch.Tensor, who: str) -> torch.Tensor:
        check_face_images(images, who)
        ref = next(self.parameters())
        return images.to(device=ref.device, dtype=ref.dtype)


class E4EEncoder(_EncoderBase):
    """e4e inversion: ``enc(images [B,3,256,256] in [-1,1]) -> W+ [B,n_styles,512]``
    = Encoder4Editing(images) + latent_avg (added when the checkpoint's ``start_from_latent_avg``
    is set, as upstream's pSp.forward). Inference only; deterministic."""

    kind = "e4e"

    def __init__(
        self,
        n_styles: int = 18,
        latent_avg: torch.Tensor | None = None,
        encoder: Encoder4Editing | None = None,
    ) -> None:
        super().__init__()
        self.n_styles = n_styles
        self.encoder = encoder if encoder is not None else Encoder4Editing(n_styles)
        avg = _as_latent_avg(latent_avg, n_styles)
        self.register_buffer("latent_avg", avg if avg is not None else torch.zeros(n_styles, 512))
        self.add_latent_avg = latent_avg is not None
        self.decoder: Generator | None = None  # kept only when load_encoder(keep_decoder=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._prepare(images, "E4EEncoder")
        codes = self.encoder(x)
        return codes + self.latent_avg if self.add_latent_avg else codes


class ReStyleEncoder(_EncoderBase):
    """ReStyle-pSp iterative inversion (Alaluf et al. 2021, Sec. 3):

    y_0 = pool256(G(latent_avg)), w_0 = latent_avg; for t = 1..n_iters:
    w_t = w_{t-1} + E([x, y_{t-1}]), y_t = pool256(G(w_t)) (constant noise).
    ``enc(images [B,3,256,256] in [-1,1], n_iters=5) -> W+ [B,n_styles,512]``; ``return_all``
    gives the list of every iteration's codes. ``decoder`` is the generator stored in the file.
    """

    kind = "restyle"

    def __init__(
        self,
        decoder: Generator,
        latent_avg: torch.Tensor,
        input_nc: int = 6,
        encoder: BackboneEncoder | None = None,
    ) -> None:
        super().__init__()
        self.n_styles = decoder.n_latent
        self.encoder = encoder if encoder is not None else BackboneEncoder(self.n_styles, input_nc)
        self.decoder = decoder
        avg = _as_latent_avg(latent_avg, self.n_styles)
        self.register_buffer("latent_avg", avg)

    def _render(self, codes: torch.Tensor) -> torch.Tensor:
        # upstream's face_pool: AdaptiveAvgPool2d((256, 256)) on every decoder output
        return F.adaptive_avg_pool2d(self.decoder.synthesis(codes, noise_mode="const"), INPUT_SIZE)

    def average_image(self) -> torch.Tensor:
        """The decoder's image of ``latent_avg``, pooled to 256: [1,3,256,256]."""
        return self._render(self.latent_avg[None])

    def forward(
        self, images: torch.Tensor, n_iters: int = RESTYLE_DEFAULT_ITERS, return_all: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(n_iters, bool) or not isinstance(n_iters, int) or n_iters < 1:
            raise ValueError(f"ReStyleEncoder: n_iters must be an integer >= 1, got {n_iters!r}")
        x = self._prepare(images, "ReStyleEncoder")
        y = self.average_image().expand(x.shape[0], -1, -1, -1)
        codes = self.latent_avg[None]
        history = []
        for it in range(n_iters):
            codes = self.encoder(torch.cat([x, y], dim=1)) + codes
            history.append(codes)
            if it + 1 < n_iters:
                y = self._render(codes)
        return history if return_all else codes


class _Container(nn.Module):
    """The pSp object's parameter layout: ``encoder.*`` and ``decoder.*``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder


_SUPPORTED = {"Encoder4Editing": "e4e", "BackboneEncoder": "restyle"}


def load_encoder(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    keep_decoder: bool = False,
) -> E4EEncoder | ReStyleEncoder:
    """Load an e4e (``e4e_ffhq_encode.pt``) or ReStyle-pSp (``restyle_psp_ffhq_encode.pt``) file.

    The kind is read from ``opts["encoder_type"]`` ("Encoder4Editing" / "BackboneEncoder"; when
    opts are absent, a 6-channel input layer means ReStyle), the generator size from
    ``opts["stylegan_size"]`` (e4e) or ``opts["output_size"]`` (ReStyle), default 1024. Every key
    of ``state_dict`` (encoder and decoder) must match. ``latent_avg`` comes from the file; when
    absent, e4e (with ``start_from_latent_avg``) and ReStyle use the decoder's mean of 10,000
    mapped z (seed 0). Returns an eval-mode, frozen module on ``device``; ``keep_decoder`` keeps
    e4e's decoder as ``enc.decoder`` (ReStyle always keeps it: it needs it). A bare file name
    that is not a file here is looked up in the download folders (:func:`jojogan.weights.resolve`).
    Raises :class:`jojogan.checkpoints.CheckpointError` for any other file.
    """
    path = weights._loader_path(path)
    src = os.fspath(path)
    raw = ck.load_file(path, map_location="cpu")
    layout = ck.detect_layout(raw)
    if layout != ck.LAYOUT_PSP_ENCODER:
        raise ck.CheckpointError(_not_an_encoder(src, layout, raw))
    if isinstance(raw.get("state_dict"), Mapping):
        sd = dict(raw["state_dict"])
        opts_raw = raw.get("opts")
    else:
        sd, opts_raw = dict(raw), None
    opts = vars(opts_raw) if hasattr(opts_raw, "__dict__") else dict(opts_raw or {})
    kind = _encoder_kind(src, opts, sd)
    size_key = "stylegan_size" if kind == "e4e" else "output_size"
    size = opts.get(size_key, 1024)
    try:
        n_styles = n_styles_for_size(int(size))
        decoder = Generator(int(size), 512, 8, channel_multiplier=2)
    except (TypeError, ValueError) as e:
        raise ck.CheckpointError(
            f"{src}: opts[{size_key!r}] = {size!r} is not usable ({e})"
        ) from None
    latent_avg = raw.get("latent_avg") if isinstance(raw, Mapping) else None
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise ck.CheckpointError(
            f"{src}: latent_avg is a {type(latent_avg).__name__}, not a tensor"
        )

    if kind == "e4e":
        encoder: nn.Module = Encoder4Editing(n_styles)
    else:
        w = sd.get("encoder.input_layer.0.weight")
        input_nc = int(opts.get("input_nc", w.shape[1] if isinstance(w, torch.Tensor) else 6))
        encoder = BackboneEncoder(n_styles, input_nc)
    what = f"{'e4e' if kind == 'e4e' else 'ReStyle-pSp'} checkpoint (state_dict)"
    ck.load_state_dict_strict(_Container(encoder, decoder), sd, source=src, what=what)
    decoder.eval().requires_grad_(False)

    if latent_avg is not None:
        ck.check_finite({"latent_avg": latent_avg}, source=src, what="latent_avg")
        try:
            _as_latent_avg(latent_avg, n_styles)
        except ValueError as e:
            raise ck.CheckpointError(f"{src}: {e}") from None
    if kind == "e4e":
        use_avg = bool(opts.get("start_from_latent_avg", latent_avg is not None))
        if use_avg and latent_avg is None:
            latent_avg = decoder.mean_latent(MEAN_LATENT_SAMPLES, seed=0)
        enc: E4EEncoder | ReStyleEncoder = E4EEncoder(
            n_styles, latent_avg if use_avg else None, encoder=encoder
        )
        if keep_decoder:
            enc.decoder = decoder
    else:
        if latent_avg is None:
            latent_avg = decoder.mean_latent(MEAN_LATENT_SAMPLES, seed=0)
        enc = ReStyleEncoder(decoder, latent_avg, encoder=encoder)
    enc.source = src
    enc.opts = opts
    return enc.eval().requires_grad_(False).to(device)


def _encoder_kind(src: str, opts: dict, sd: dict) -> str:
    etype = opts.get("encoder_type")
    if etype is None:
        w = sd.get("encoder.input_layer.0.weight")
        if isinstance(w, torch.Tensor) and w.ndim == 4 and w.shape[1] == 6:
            return "restyle"
        raise ck.CheckpointError(
            f"{src}: the file has no opts['encoder_type'], so e4e cannot be told from pSp. "
            "Use the released e4e_ffhq_encode.pt / restyle_psp_ffhq_encode.pt files."
        )
    if etype not in _SUPPORTED:
        raise ck.CheckpointError(
            f"{src}: encoder_type {etype!r} is not supported; supported are e4e "
            "('Encoder4Editing', e4e_ffhq_encode.pt) and ReStyle-pSp ('BackboneEncoder', "
            "restyle_psp_ffhq_encode.pt)."
        )
    return _SUPPORTED[etype]


def _not_an_encoder(src: str, layout: str, raw: Any) -> str:
    if layout in ("rosinality", "rosinality-training", "jojogan-style", "generator"):
        return (
            f"{src}: this is a StyleGAN2 generator checkpoint ({layout} layout), not an "
            "encoder. Give an e4e (e4e_ffhq_encode.pt) or ReStyle (restyle_psp_ffhq_encode.pt) "
            "file here, and the generator file to the generator input."
        )
    if layout == "arcface":
        return (
            f"{src}: this is the ArcFace IR-SE50 face-recognition model (model_ir_se50.pth), "
            "not an encoder; it is loaded by jojogan.arcface.load_arcface for the identity loss."
        )
    if layout == "discriminator":
        return f"{src}: this holds a StyleGAN2 discriminator, not an e4e/ReStyle encoder."
    keys = sorted(map(str, raw))[:6] if isinstance(raw, Mapping) else type(raw).__name__
    return (
        f"{src}: not an e4e/ReStyle encoder file (found {keys}); expected "
        "{state_dict: encoder.*/decoder.* tensors, opts, latent_avg}."
    )

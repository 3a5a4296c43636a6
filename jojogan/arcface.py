"""ArcFace IR-SE50 face-identity embedding, as used by pSp/e4e's identity loss.

Layout of ``model_ir_se50.pth`` (a plain state dict, 397 tensors): ``input_layer`` (conv + BN +
PReLU), ``body`` (24 IR-SE units), ``output_layer`` = BatchNorm2d, Dropout, Flatten,
Linear(512*7*7 -> 512), BatchNorm1d. The output is L2-normalised. JoJoGAN's optional identity
loss (Sec. 3.3) is 1 - cos(F(G_orig(s)), F(G_new(s))), computed on grayscale crops in the paper
(Appendix A.2): see :func:`face_crop` and :func:`identity_loss`.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoints as ck
from . import weights
from .encoders.irse import make_body, make_input_layer

# pSp's identity crop of a 256 px aligned face: rows 35..222, columns 32..219, pooled to 112.
CROP_ROWS = (35, 223)
CROP_COLS = (32, 220)
_GRAY = (0.299, 0.587, 0.114)


class ArcFace(nn.Module):
    """``Backbone(input_size, num_layers, mode)`` of pSp/e4e: [B,3,S,S] in [-1,1] -> unit [B,512],
    S = ``input_size`` (112 or 224)."""

    def __init__(
        self,
        input_size: int = 112,
        num_layers: int = 50,
        mode: str = "ir_se",
        drop_ratio: float = 0.6,
        affine: bool = True,
    ) -> None:
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {input_size!r}")
        self.input_size = input_size
        self.input_layer = make_input_layer(3)
        self.body = make_body(num_layers, mode)
        side = input_size // 16
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * side * side, 512),
            nn.BatchNorm1d(512, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.input_size
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (s, s):
            raise ValueError(
                f"ArcFace expects images [B,3,{s},{s}] in [-1,1], got {tuple(x.shape)}; "
                "use jojogan.arcface.face_crop() to crop and pool an aligned face"
            )
        x = self.output_layer(self.body(self.input_layer(x)))
        return x / torch.norm(x, 2, 1, True)

    @torch.no_grad()
    def embed(self, faces: torch.Tensor, grayscale: bool = False) -> torch.Tensor:
        """Aligned faces [B,3,H,W] in [-1,1] (any size) -> unit embeddings [B,512], no grad."""
        return self(face_crop(faces, grayscale=grayscale, size=self.input_size))


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] -> luminance (ITU-R 601 weights) repeated to 3 channels."""
    r, g, b = images.unbind(1)
    y = _GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b
    return y.unsqueeze(1).expand(-1, 3, -1, -1)


def face_crop(faces: torch.Tensor, grayscale: bool = False, size: int = 112) -> torch.Tensor:
    """pSp's identity-loss input: resize an aligned face [B,3,H,W] in [-1,1] to 256 px (bilinear,
    antialiased; skipped at 256), crop rows 35:223 and columns 32:220, adaptive-average-pool to
    ``size`` (112). ``grayscale`` converts first (JoJoGAN Appendix A.2). Differentiable."""
    if faces.ndim != 4 or faces.shape[1] != 3:
        raise ValueError(f"faces must be [B,3,H,W] in [-1,1], got shape {tuple(faces.shape)}")
    if tuple(faces.shape[-2:]) != (256, 256):
        faces = F.interpolate(
            faces, size=(256, 256), mode="bilinear", align_corners=False, antialias=True
        )
    if grayscale:
        faces = to_grayscale(faces)
    crop = faces[:, :, CROP_ROWS[0] : CROP_ROWS[1], CROP_COLS[0] : CROP_COLS[1]]
    return F.adaptive_avg_pool2d(crop, (size, size))


def identity_loss(
    model: ArcFace, a: torch.Tensor, b: torch.Tensor, grayscale: bool = True
) -> torch.Tensor:
    """Mean over the batch of 1 - cos(F(a), F(b)) for aligned faces [B,3,H,W] in [-1,1]."""
    fa = model(face_crop(a, grayscale=grayscale, size=model.input_size))
    fb = model(face_crop(b, grayscale=grayscale, size=model.input_size))
    return (1.0 - (fa * fb).sum(dim=1)).mean()


def load_arcface(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ArcFace:
    """Load ``model_ir_se50.pth`` (or a .safetensors copy) strictly; returns an eval-mode,
    frozen :class:`ArcFace`. A file of another kind gets a :class:`CheckpointError`. A bare file
    name that is not a file here is looked up in the download folders
    (:func:`jojogan.weights.resolve`)."""
    path = weights._loader_path(path)
    src = os.fspath(path)
    raw = ck.load_file(path, map_location="cpu")
    layout = ck.detect_layout(raw)
    if layout != ck.LAYOUT_ARCFACE or "output_layer.3.weight" not in raw:
        raise ck.CheckpointError(
            f"{src} is not an ArcFace IR-SE50 file (model_ir_se50.pth): {_describe(layout, raw)}. "
            "Download model_ir_se50.pth (the pSp/e4e identity-loss weights) and give that file."
        )
    w = raw["output_layer.3.weight"]
    input_size = 224 if getattr(w, "ndim", 0) == 2 and w.shape[1] == 512 * 14 * 14 else 112
    num_layers = _depth_from_keys(raw)
    mode = "ir_se" if any(".fc1.weight" in k for k in raw) else "ir"
    affine = "output_layer.4.weight" in raw
    model = ArcFace(input_size, num_layers, mode, affine=affine)
    ck.load_state_dict_strict(model, raw, source=src, what="ArcFace IR-SE50")
    model.eval().requires_grad_(False)
    return model.to(device)


def _depth_from_keys(sd: dict) -> int:
    units = {int(k.split(".")[1]) for k in sd if k.startswith("body.")}
    n = max(units) + 1 if units else 24
    return {24: 50, 49: 100, 50: 152}.get(n, 50)


def _describe(layout: str, raw: object) -> str:
    if layout in ("rosinality", "rosinality-training", "jojogan-style", "generator"):
        return "it is a StyleGAN2 generator checkpoint"
    if layout == "psp-encoder":
        return "it is an e4e/ReStyle encoder (use jojogan.encoders.load_encoder)"
    if isinstance(raw, dict):
        return f"unexpected content (keys such as {sorted(map(str, raw))[:4]})"
    return f"unexpected content ({type(raw).__name__})"

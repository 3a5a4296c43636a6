"""Paste stylized faces back into the whole photo through the inverse alignment transforms.

Each stylized crop is warped back with its :attr:`AlignedFace.matrix` (kornia ``warp_affine``,
bilinear) and blended with a feathered mask: 1 inside the crop, falling smoothly (smoothstep) to 0
over a band of ``feather * size`` px along the crop's edges, so no seam shows. Photo pixels the
mask does not reach are returned bit-identical. (VToonify-style whole-photo output; JoJoGAN itself
returns only the crop.)
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import warp_affine
from PIL import Image

from .align import AlignedFace, as_image_tensor

__all__ = ["paste_back", "feather_mask"]


def feather_mask(size: int, feather: float = 0.1, device=None) -> torch.Tensor:
    """``[size,size]`` float32 in [0,1]: 1 inside, a smoothstep ramp ``feather*size`` px wide at
    the edges, exactly 0 on the outermost pixel ring."""
    band = max(feather * size, 1.0)
    i = torch.arange(size, dtype=torch.float32, device=device)
    d = torch.minimum(i, size - 1 - i)  # distance to the nearest edge, 0 on the edge
    r = (d / band).clamp(0.0, 1.0)
    r = r * r * (3.0 - 2.0 * r)
    return torch.minimum(r[:, None], r[None, :])


def paste_back(
    photo: Image.Image | torch.Tensor,
    faces: list[AlignedFace],
    stylized: torch.Tensor | list[torch.Tensor],
    *,
    feather: float = 0.1,
    return_mask: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Put stylized faces back into ``photo``.

    photo: the photo the faces were aligned from, ``[3,H,W]`` float in [0,1] (or a PIL image).
    faces: the :class:`AlignedFace` list from ``align_faces`` / ``align_video`` (for this photo).
    stylized: ``[B,3,S,S]`` in [-1,1] (or a list of ``[3,S,S]``), one per face, in the same
    order; S may differ from the aligned size (e.g. a 1024 px generator output for 256 px crops).
    feather: width of the blend band as a fraction of the crop side (0 < feather <= 0.5).

    Returns the photo ``[3,H,W]`` float32 in [0,1] (same device as the crops), and with
    ``return_mask=True`` also the combined blend mask ``[H,W]`` in [0,1]. Faces are pasted in
    list order (a later face covers an earlier one where they overlap).
    """
    if not (0.0 < feather <= 0.5):
        raise ValueError(f"feather must be in (0, 0.5], got {feather}")
    if isinstance(stylized, (list, tuple)):
        stylized = torch.stack(list(stylized)) if len(stylized) else torch.zeros(0, 3, 1, 1)
    if not isinstance(stylized, torch.Tensor) or stylized.dim() != 4 or stylized.shape[1] != 3:
        shape = tuple(stylized.shape) if isinstance(stylized, torch.Tensor) else stylized
        raise ValueError(f"stylized must be [B,3,S,S] in [-1,1], got {shape}")
    if stylized.shape[0] != len(faces):
        raise ValueError(
            f"stylized has {stylized.shape[0]} crops but {len(faces)} faces were given"
        )
    if stylized.shape[-1] != stylized.shape[-2]:
        raise ValueError(f"stylized crops must be square, got {tuple(stylized.shape)}")
    base = as_image_tensor(photo, "photo").to(stylized.device)
    _, H, W = base.shape
    out = base.clone()
    total = torch.zeros(H, W, dtype=torch.float32, device=base.device)
    S = stylized.shape[-1]
    mask_src = feather_mask(S, feather, device=stylized.device)[None, None]
    for face, crop in zip(faces, stylized, strict=True):
        if tuple(face.source_size) != (H, W):
            raise ValueError(
                f"face {face.index} of {face.name} was aligned from a {face.source_size} photo, "
                f"but the photo given is {(H, W)}"
            )
        # crop pixel k at resolution S <-> index (k + 0.5) * size / S - 0.5 at the aligned size
        r = face.size / S
        rescale = torch.tensor(
            [[r, 0.0, 0.5 * r - 0.5], [0.0, r, 0.5 * r - 0.5], [0.0, 0.0, 1.0]],
            dtype=torch.float64,
        )
        crop_to_photo = face.matrix @ rescale
        # only the window covered by the quad (plus a pixel) is warped and blended
        xs, ys = face.quad[:, 0], face.quad[:, 1]
        x0, y0 = max(math.floor(xs.min()) - 1, 0), max(math.floor(ys.min()) - 1, 0)
        x1, y1 = min(math.ceil(xs.max()) + 2, W), min(math.ceil(ys.max()) + 2, H)
        if x1 <= x0 or y1 <= y0:
            continue
        shift = torch.tensor(
            [[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]], dtype=torch.float64
        )
        m = (shift @ crop_to_photo)[:2].to(torch.float32)[None].to(stylized.device)
        size = (y1 - y0, x1 - x0)
        src = ((crop.float().clamp(-1.0, 1.0) + 1.0) * 0.5)[None]
        warped = warp_affine(src, m, size, mode="bilinear", padding_mode="zeros")[0]
        mask = warp_affine(mask_src, m, size, mode="bilinear", padding_mode="zeros")[0, 0]
        mask = mask.clamp(0.0, 1.0)
        win = out[:, y0:y1, x0:x1]
        blended = win * (1.0 - mask) + warped * mask
        out[:, y0:y1, x0:x1] = torch.where(mask > 0, blended, win)
        total[y0:y1, x0:x1] = torch.maximum(total[y0:y1, x0:x1], mask)
    out = out.clamp(0.0, 1.0)
    return (out, total) if return_mask else out

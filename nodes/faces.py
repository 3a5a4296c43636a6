"""Face nodes: FFHQ alignment of photos and video frames (`jojogan.faces`), and pasting the
stylized crops back into them."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from jojogan import faces as jf
from jojogan.images import DEFAULT_MIN_SIDE, comfy_to_core

from . import host
from . import sockets as S
from .common import CATEGORY, _default, _images, _min_side, _need, _node_errors, _out

_SIZE = "Side of the aligned square crop in px: 1024 for the FFHQ generator, 64 for the toy model."


_MIN_FACE = "Faces smaller than this (shorter side of the detector's box, px) are skipped."


_DETECTOR = (
    "Optional (Load Face Detector). Unconnected: auto = RetinaFace when facexlib and its weights "
    "are installed, else dlib (bundled, offline)."
)


def _photos(display: str, name: str, t: Any) -> torch.Tensor:
    """IMAGE -> [B,3,H,W] in [0,1] (what jojogan.faces takes), at least `DEFAULT_MIN_SIDE` px a
    side (the images module's minimum: no face to find in less)."""
    x = (comfy_to_core(t, f"input '{name}'") + 1.0) * 0.5
    if min(x.shape[-2:]) < DEFAULT_MIN_SIDE:
        raise ValueError(
            f"{display}: input '{name}' is {x.shape[-2]}x{x.shape[-1]} px; a photo needs at "
            f"least {DEFAULT_MIN_SIDE} px a side"
        )
    return x


class AlignFaces:
    DISPLAY = "JoJoGAN Align Faces"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "align"
    RETURN_TYPES = ("IMAGE", S.FACES)
    RETURN_NAMES = ("aligned", "faces")
    OUTPUT_TOOLTIPS = (
        "The aligned square crops, for Invert (and as references).",
        "Where each crop came from, for Paste Back.",
    )
    DESCRIPTION = (
        "Detect faces and FFHQ-align them: the crop the generator was trained on. Use it on "
        "style references and on photos alike. Next: Invert."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Photos of any size (Load Image)."}),
                "size": (
                    "INT",
                    {"default": 1024, "min": 16, "max": 4096, "step": 8, "tooltip": _SIZE},
                ),
                "which": (
                    ["largest", "all"],
                    {
                        "tooltip": "largest: one face per photo; all: every face found (Paste "
                        "Back puts each one back)."
                    },
                ),
                "min_face": (
                    "FLOAT",
                    {
                        "default": float(jf.DEFAULT_MIN_FACE),
                        "min": 1.0,
                        "max": 4096.0,
                        "tooltip": _MIN_FACE,
                    },
                ),
            },
            "optional": {"detector": (S.FACE_DETECTOR, {"tooltip": _DETECTOR})},
        }

    @_node_errors(DISPLAY)
    def align(self, images, size: int, which: str, min_face: float, detector=None):
        photos = _photos(self.DISPLAY, "images", images)
        det = self._detector(detector)
        faces, index = [], []
        with host.on_device(det), warnings.catch_warnings():
            warnings.simplefilter("ignore", jf.FaceNote)
            for i, photo in enumerate(photos):
                found = jf.align_faces(
                    photo,
                    size=int(size),
                    detector=det,
                    which=which,
                    min_face=float(min_face),
                    name=f"images[{i}]",
                )
                faces.extend(found)
                index.extend([i] * len(found))
        crops = torch.stack([f.image for f in faces])
        return (_out(crops, "aligned"), S.AlignedFaces(faces, index, int(size)))

    @staticmethod
    def _detector(detector):
        if detector is None:
            models_dir = host.model_dirs(host.FOLDER_DETECTION)[0]
            return jf.get_detector("auto", models_dir=models_dir)
        return _need(
            "JoJoGAN Align Faces", "detector", detector, S.FaceDetectorModel, S.FACE_DETECTOR
        ).detector


class AlignVideo:
    DISPLAY = "JoJoGAN Align Video"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "align"
    RETURN_TYPES = ("IMAGE", S.FACES)
    RETURN_NAMES = ("aligned", "faces")
    OUTPUT_TOOLTIPS = (
        "One aligned crop per frame, for Invert.",
        "Where each crop came from, for Paste Back.",
    )
    DESCRIPTION = (
        "Align one face per video frame with the landmarks smoothed over time, so the crops do "
        "not jitter. Connect Get Video Components' frames and fps."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": (
                    "IMAGE",
                    {"tooltip": "The video's frames as one batch (Get Video Components)."},
                ),
                "size": (
                    "INT",
                    {"default": 1024, "min": 16, "max": 4096, "step": 8, "tooltip": _SIZE},
                ),
                "smooth": (
                    "BOOLEAN",
                    {
                        "default": _default(jf.align_video, "smooth"),
                        "tooltip": "Smooth the landmarks over time (a one-euro filter run "
                        "forward and backward); off = each frame aligned on its own.",
                    },
                ),
                "fps": (
                    "FLOAT",
                    {
                        "default": _default(jf.align_video, "fps"),
                        "min": 1.0,
                        "max": 1000.0,
                        "tooltip": "The clip's frame rate (connect Get Video Components' fps): "
                        "the smoothing's cut-offs are in Hz.",
                    },
                ),
                "min_cutoff": (
                    "FLOAT",
                    {
                        "default": _default(jf.align_video, "min_cutoff"),
                        "min": 0.001,
                        "max": 100.0,
                        "tooltip": "Lowest cut-off frequency (Hz): lower = steadier crop, more "
                        "lag on slow moves.",
                    },
                ),
                "beta": (
                    "FLOAT",
                    {
                        "default": _default(jf.align_video, "beta"),
                        "min": 0.0,
                        "max": 1000.0,
                        "tooltip": "How fast the cut-off rises with speed: higher = less lag on "
                        "fast head moves, more jitter.",
                    },
                ),
                "min_face": (
                    "FLOAT",
                    {
                        "default": float(_default(jf.align_video, "min_face")),
                        "min": 1.0,
                        "max": 4096.0,
                        "tooltip": _MIN_FACE,
                    },
                ),
            },
            "optional": {"detector": (S.FACE_DETECTOR, {"tooltip": _DETECTOR})},
        }

    @_node_errors(DISPLAY)
    def align(self, frames, size, smooth, fps, min_cutoff, beta, min_face, detector=None):
        photos = _photos(self.DISPLAY, "frames", frames)
        det = AlignFaces._detector(detector)
        with host.on_device(det), warnings.catch_warnings():
            warnings.simplefilter("ignore", jf.FaceNote)
            faces = jf.align_video(
                photos,
                size=int(size),
                detector=det,
                smooth=bool(smooth),
                fps=float(fps),
                min_cutoff=float(min_cutoff),
                beta=float(beta),
                min_face=float(min_face),
                name="frames",
            )
        crops = torch.stack([f.image for f in faces])
        index = [int(f.index) for f in faces]
        return (_out(crops, "aligned"), S.AlignedFaces(list(faces), index, int(size)))


class PasteBack:
    DISPLAY = "JoJoGAN Paste Back"
    CATEGORY = f"{CATEGORY}/faces"
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "mask")
    OUTPUT_TOOLTIPS = ("The photos with their faces stylized.", "Where faces were pasted.")
    DESCRIPTION = "Put stylized faces back into the photos (or frames) they were aligned from."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": (
                    "IMAGE",
                    {"tooltip": "The photos or frames the faces were aligned from."},
                ),
                "stylized": (
                    "IMAGE",
                    {"tooltip": "The stylized faces, in the order of 'faces' (Stylize)."},
                ),
                "faces": (
                    S.FACES,
                    {"tooltip": "The 'faces' output of the Align node that made the crops."},
                ),
                "feather": (
                    "FLOAT",
                    {
                        "default": _default(jf.paste_back, "feather"),
                        "min": 0.01,
                        "max": 0.5,
                        "step": 0.01,
                        "tooltip": "Width of the soft edge, as a fraction of the crop: larger "
                        "hides seams, smaller keeps more of the photo.",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def paste(self, images, stylized, faces, feather):
        aligned = _need(self.DISPLAY, "faces", faces, S.AlignedFaces, S.FACES)
        photos = _photos(self.DISPLAY, "images", images)
        styl = _images(self.DISPLAY, "stylized", stylized)
        _min_side(self.DISPLAY, "stylized", styl, min(DEFAULT_MIN_SIDE, aligned.size))
        if styl.shape[0] != len(aligned):
            raise ValueError(
                f"{self.DISPLAY}: input 'stylized' has {styl.shape[0]} images but 'faces' has "
                f"{len(aligned)}; stylize the aligned faces of the same Align node"
            )
        if aligned.photo_index and max(aligned.photo_index) >= photos.shape[0]:
            raise ValueError(
                f"{self.DISPLAY}: 'faces' came from {max(aligned.photo_index) + 1} photos but "
                f"'images' has {photos.shape[0]}; connect the photos that were aligned"
            )
        outs, masks = [], []
        for i, photo in enumerate(photos):
            ks = [k for k, j in enumerate(aligned.photo_index) if j == i]
            if not ks:
                outs.append(photo)
                masks.append(torch.zeros(photo.shape[1:], dtype=photo.dtype))
                continue
            img, mask = jf.paste_back(
                photo,
                [aligned.faces[k] for k in ks],
                styl[ks],
                feather=float(feather),
                return_mask=True,
            )
            outs.append(img.cpu())
            masks.append(mask.cpu())
        out = torch.stack(outs).permute(0, 2, 3, 1).clamp(0, 1).contiguous()
        off = host.offload_device()
        return (out.to(off), torch.stack(masks).to(off))

"""Face detection backends behind one small interface.

A backend is any object with a ``name`` and ``detect(image) -> list[Detection]`` where ``image`` is
an RGB ``uint8`` numpy array ``[H,W,3]`` (or a ``[3,H,W]`` float tensor in [0,1], converted by
:func:`to_uint8_hwc`). Every :class:`Detection` carries five landmarks in one fixed order
(image-left eye centre, image-right eye centre, nose tip, image-left mouth corner, image-right
mouth corner), which is all that FFHQ alignment needs, plus the 68 dlib points when available.

Backends:

- ``"dlib"``: dlib's HOG frontal detector + the 68-point shape predictor (the detector FFHQ itself
  was aligned with), run as JoJoGAN's ``util.align_face`` runs it: one pyramid up-step on the
  whole photo (up to ``RECIPE_MAX_SIDE`` px on the long side), so the landmarks, and with
  `jojogan.faces.align` the crops, are the recipe's (docs/alignment.md: the detector's box moves
  the 68 points enough to change a 1024 px crop by 0.01-0.14 mean abs). Weights ship in the
  ``face-recognition-models==0.3.0`` package (found with ``importlib.util.find_spec`` without
  importing it); dlib itself from the ``dlib-bin`` wheel. Works offline.
- ``"dlib-fast"``: the same on a copy at most 1280 px wide without the up-step (2.5-4x faster,
  faces of about 80 px and up; crops within about 0.01-0.14 of the recipe's).
- ``"retinaface"``: facexlib's RetinaFace-ResNet50 (5 landmarks). Needs the ``facexlib`` package
  and ``detection_Resnet50_Final.pth`` in ComfyUI's ``models/facedetection/`` or the cache folder.
- ``"auto"``: RetinaFace when facexlib and its weights are present, else dlib.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from ..weights import cache_dir, missing_file_message

__all__ = [
    "Detection",
    "FaceDetector",
    "DlibDetector",
    "RetinaFaceDetector",
    "DetectorUnavailableError",
    "get_detector",
    "detector_cache_dirs",
    "to_uint8_hwc",
    "RETINAFACE_WEIGHTS",
    "DETECTORS",
    "RECIPE_MAX_SIDE",
    "RETINAFACE_URL",
]

RETINAFACE_WEIGHTS = "detection_Resnet50_Final.pth"
DETECTORS = ("auto", "dlib", "dlib-fast", "retinaface")
# "dlib" detects on the whole photo as the FFHQ recipe does, up to this long side (a bigger photo
# is detected on a copy this size: the recipe's up-step on a 64 MP photo would need several GB)
RECIPE_MAX_SIDE = 4096
RETINAFACE_URL = (
    "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth"
)


class DetectorUnavailableError(RuntimeError):
    """A face detector cannot be built: a package or a weight file is missing."""


@dataclass
class Detection:
    """One face found in a photo; all coordinates in pixels of that photo (x right, y down;
    pixel centres at integers).

    box: (x0, y0, x1, y1). score: detector confidence (backend-specific scale).
    landmarks5: ``[5,2]`` float64: image-left eye centre, image-right eye centre, nose tip,
    image-left mouth corner, image-right mouth corner.
    landmarks68: ``[68,2]`` float64 (dlib's iBUG-300W order) or None.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks5: np.ndarray
    landmarks68: np.ndarray | None = None
    backend: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> float:
        """The face's size in pixels: the shorter side of its box."""
        x0, y0, x1, y1 = self.box
        return float(min(x1 - x0, y1 - y0))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))


@runtime_checkable
class FaceDetector(Protocol):
    """What ``align_faces`` needs from a backend."""

    name: str

    def detect(self, image: np.ndarray | torch.Tensor) -> list[Detection]: ...


def to_uint8_hwc(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[3,H,W]`` float tensor in [0,1] (or ``[H,W,3]`` uint8 array) -> contiguous uint8 HxWx3."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an image tensor [3,H,W] in [0,1], got {tuple(image.shape)}")
        a = (image.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)
        return np.ascontiguousarray(a.permute(1, 2, 0).cpu().numpy())
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H,W,3], got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB array, got dtype {a.dtype}")
    return np.ascontiguousarray(a)


def landmarks5_from_68(lm: np.ndarray) -> np.ndarray:
    """Eye centres (means of the 6 eye-contour points), nose tip (30), mouth corners (48, 54)."""
    lm = np.asarray(lm, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


# ------------------------------------------------------------------------------------- dlib


def _dlib_model_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise DetectorUnavailableError(
            "the dlib face detector needs the landmark weights from the "
            "'face-recognition-models==0.3.0' package: pip install face-recognition-models==0.3.0"
        )
    return Path(spec.origin).parent / "models"


class DlibDetector:
    """dlib HOG frontal-face detector + 68-point shape predictor.

    Speed: the HOG detector runs on a copy whose longer side is at most ``detect_max_side`` px
    (boxes are mapped back; landmarks are always predicted on the full-resolution photo), with
    ``upsample`` pyramid up-steps (0 is ~4x faster than 1 and finds faces of about 80 px and up
    in the detection copy). When nothing is found and the detection copy is small (at most
    ``retry_max_pixels``), it retries once with one more up-step, so small faces in small photos
    are still found. ``min_score``: weak HOG detections (score below it) are dropped when a
    stronger one exists in the photo (on astronaut.png the NASA patch on the suit scores 0.08-0.22
    where faces score > 1.2); a photo whose only detections are weak keeps them (dlib's own
    threshold is 0).
    """

    name = "dlib"

    def __init__(
        self,
        upsample: int = 0,
        detect_max_side: int = 1280,
        retry_max_pixels: int = 1_100_000,
        min_score: float = 0.3,
        predictor_path: str | os.PathLike | None = None,
    ):
        try:
            import dlib
        except ImportError as e:
            raise DetectorUnavailableError(
                f"the dlib face detector needs dlib: pip install dlib-bin ({e})"
            ) from None
        if predictor_path is None:
            predictor_path = _dlib_model_dir() / "shape_predictor_68_face_landmarks.dat"
        predictor_path = Path(predictor_path)
        if not predictor_path.is_file():
            raise DetectorUnavailableError(
                f"dlib landmark weights not found at {predictor_path}; reinstall "
                "face-recognition-models==0.3.0 (its source package ships them)"
            )
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path))
        self.upsample = int(upsample)
        self.detect_max_side = int(detect_max_side)
        self.retry_max_pixels = int(retry_max_pixels)
        self.min_score = float(min_score)

    def _hog(self, small: np.ndarray, upsample: int):
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        found = list(zip(rects, scores, strict=True))
        strong = [(r, s) for r, s in found if s >= self.min_score]
        return strong or found

    def detect(self, image: np.ndarray | torch.Tensor) -> list[Detection]:
        rgb = to_uint8_hwc(image)
        h, w = rgb.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        if scale < 1.0:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = np.asarray(Image.fromarray(rgb).resize((sw, sh), Image.Resampling.BILINEAR))
            sx, sy = w / sw, h / sh
        else:
            small, sx, sy = rgb, 1.0, 1.0
        found = self._hog(small, self.upsample)
        if not found and small.shape[0] * small.shape[1] <= self.retry_max_pixels:
            found = self._hog(small, self.upsample + 1)
        out = []
        for r, s in found:
            # box in full-resolution pixel-index coordinates
            x0 = (r.left() + 0.5) * sx - 0.5
            y0 = (r.top() + 0.5) * sy - 0.5
            x1 = (r.right() + 0.5) * sx - 0.5
            y1 = (r.bottom() + 0.5) * sy - 0.5
            rect = self._dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
            shape = self._predictor(rgb, rect)
            lm68 = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            out.append(
                Detection(
                    box=(float(x0), float(y0), float(x1), float(y1)),
                    score=float(s),
                    landmarks5=landmarks5_from_68(lm68),
                    landmarks68=lm68,
                    backend=self.name,
                )
            )
        return out


# ------------------------------------------------------------------------------- RetinaFace


def detector_cache_dirs(models_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for detector weights, in order: ``models_dir`` (ComfyUI passes its
    ``models/facedetection``), then ``jojogan.weights.cache_dir("facedetection")``
    (``$JOJOGAN_CACHE/facedetection`` or ``~/.cache/jojogan/facedetection``), where
    ``python -m jojogan download detection_Resnet50_Final.pth`` puts it outside ComfyUI.
    """
    dirs = []
    if models_dir is not None:
        dirs.append(Path(models_dir))
    dirs.append(cache_dir("facedetection"))
    return list(dict.fromkeys(dirs))


def _find_retinaface_weights(models_dir=None) -> Path | None:
    for d in detector_cache_dirs(models_dir):
        p = d / RETINAFACE_WEIGHTS
        if p.is_file():
            return p
    return None


def _missing_weights_message(models_dir=None) -> str:
    dirs = detector_cache_dirs(models_dir)
    return (
        "RetinaFace: "
        + missing_file_message(RETINAFACE_WEIGHTS, dirs[:1])
        + " Or use detector='dlib', which works offline."
    )


class RetinaFaceDetector:
    """facexlib's RetinaFace-ResNet50: box, score and 5 landmarks per face.

    ``facexlib`` is imported here, lazily (it needs torchvision and opencv); the weights are
    loaded with ``torch.load(weights_only=True)`` from :func:`detector_cache_dirs`.
    """

    name = "retinaface"

    def __init__(
        self,
        models_dir: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        conf_threshold: float = 0.8,
        weights_path: str | os.PathLike | None = None,
    ):
        try:
            from facexlib.detection.retinaface import RetinaFace
        except ImportError as e:
            raise DetectorUnavailableError(
                "the RetinaFace detector needs the 'facexlib' package (pip install facexlib; it "
                f"brings torchvision and opencv-python), or use detector='dlib' ({e})"
            ) from None
        path = Path(weights_path) if weights_path else _find_retinaface_weights(models_dir)
        if path is None or not path.is_file():
            raise DetectorUnavailableError(_missing_weights_message(models_dir))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DetectorUnavailableError(
                f"{path}: cannot load RetinaFace weights ({e}); download {RETINAFACE_WEIGHTS} "
                f"again from {RETINAFACE_URL}"
            ) from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        try:
            model = RetinaFace(network_name="resnet50", half=False, device=device)
        except TypeError:  # older facexlib: no device argument
            model = RetinaFace(network_name="resnet50", half=False)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise DetectorUnavailableError(
                f"{path}: not RetinaFace-ResNet50 weights ({str(e)[:300]})"
            ) from None
        self._model = model.eval()
        self.conf_threshold = float(conf_threshold)
        self.weights_path = path

    @property
    def network(self) -> torch.nn.Module:
        """The RetinaFace network (for device placement and memory accounting)."""
        return self._model

    def to(self, device: str | torch.device) -> RetinaFaceDetector:
        """Move the network (and facexlib's record of its device) to ``device``."""
        device = torch.device(device)
        self._model.to(device)
        self._model.device = device
        return self

    @torch.no_grad()
    def detect(self, image: np.ndarray | torch.Tensor) -> list[Detection]:
        rgb = to_uint8_hwc(image)
        bgr = np.ascontiguousarray(rgb[..., ::-1]).astype(np.float32)
        rows = self._model.detect_faces(bgr, conf_threshold=self.conf_threshold)
        out = []
        for r in np.asarray(rows, dtype=np.float64).reshape(-1, 15):
            out.append(
                Detection(
                    box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                    score=float(r[4]),
                    landmarks5=r[5:15].reshape(5, 2).copy(),
                    backend=self.name,
                )
            )
        return out


# ------------------------------------------------------------------------------------ choose

_CACHE: dict[tuple, FaceDetector] = {}


def get_detector(
    detector: str | FaceDetector = "auto",
    models_dir: str | os.PathLike | None = None,
) -> FaceDetector:
    """``"auto"``, ``"dlib"``, ``"dlib-fast"``, ``"retinaface"`` or an already-built backend
    (returned as is).

    Built backends are cached per (name, models_dir). ``auto`` picks RetinaFace only when
    ``facexlib`` is importable *and* its weights are found, otherwise dlib (the recipe's).
    """
    if not isinstance(detector, str):
        if not callable(getattr(detector, "detect", None)):
            raise TypeError(
                f"detector must be one of {', '.join(DETECTORS)} or an object with a "
                f"detect(image) method, got {type(detector).__name__}"
            )
        return detector
    name = detector.lower().strip()
    if name == "auto":
        has_facexlib = importlib.util.find_spec("facexlib") is not None
        has_weights = _find_retinaface_weights(models_dir) is not None
        name = "retinaface" if (has_facexlib and has_weights) else "dlib"
    key = (name, str(models_dir) if name == "retinaface" else None)
    if key in _CACHE:
        return _CACHE[key]
    if name == "dlib":  # the FFHQ / JoJoGAN recipe's detection (see the module docstring)
        built: FaceDetector = DlibDetector(upsample=1, detect_max_side=RECIPE_MAX_SIDE)
    elif name == "dlib-fast":
        built = DlibDetector()
        built.name = "dlib-fast"
    elif name == "retinaface":
        built = RetinaFaceDetector(models_dir=models_dir)
    else:
        raise ValueError(
            f"unknown face detector {detector[:40]!r}; choose one of {', '.join(DETECTORS)}"
        )
    _CACHE[key] = built
    return built

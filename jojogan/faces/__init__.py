"""Faces in, faces out: detection backends, FFHQ alignment, paste-back, video smoothing.

Entry points: :func:`align_faces` (photo -> FFHQ-aligned crops + their transforms),
:func:`paste_back` (stylized crops -> the whole photo), :func:`align_video` (frames -> crops with
temporally smoothed landmarks). Notes (several faces, small faces skipped, frames without a face)
are :class:`FaceNote` warnings; "no face found in <name>" is a :class:`NoFaceError` (ValueError).
"""

from .align import (
    DEFAULT_MIN_FACE,
    AlignedFace,
    FaceNote,
    NoFaceError,
    align_detections,
    align_faces,
    as_image_tensor,
    ffhq_quad,
    quad_to_matrix,
    select_faces,
)
from .detect import (
    DETECTORS,
    RETINAFACE_URL,
    RETINAFACE_WEIGHTS,
    Detection,
    DetectorUnavailableError,
    DlibDetector,
    FaceDetector,
    RetinaFaceDetector,
    detector_cache_dirs,
    get_detector,
    to_uint8_hwc,
)
from .paste import feather_mask, paste_back
from .video import align_video, centre_jitter, one_euro_filter, smooth_detections

__all__ = [
    "DEFAULT_MIN_FACE",
    "DETECTORS",
    "RETINAFACE_URL",
    "RETINAFACE_WEIGHTS",
    "AlignedFace",
    "Detection",
    "DetectorUnavailableError",
    "DlibDetector",
    "FaceDetector",
    "FaceNote",
    "NoFaceError",
    "RetinaFaceDetector",
    "align_detections",
    "align_faces",
    "align_video",
    "as_image_tensor",
    "centre_jitter",
    "detector_cache_dirs",
    "feather_mask",
    "ffhq_quad",
    "get_detector",
    "one_euro_filter",
    "paste_back",
    "quad_to_matrix",
    "select_faces",
    "smooth_detections",
    "to_uint8_hwc",
]

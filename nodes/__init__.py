"""ComfyUI node classes for the JoJoGAN pack (thin adapters over `jojogan`).

The core library is imported as the top-level package ``jojogan`` (its modules import each other
that way), so the pack's folder is put on ``sys.path`` when ``jojogan`` is not importable yet.
Importing this package (inside ComfyUI) registers and creates the ``models/jojogan`` and
``models/facedetection`` folders and copies the pack's example inputs into ComfyUI's input folder
(never over a file of the same name); everywhere it runs the toy style files listed in
``$JOJOGAN_TOY_STYLES`` (`host.load_toy_style_modules`).
"""

import os
import sys

_PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensure_core_importable() -> None:
    mod = sys.modules.get("jojogan")
    if mod is not None:
        where = os.path.dirname(os.path.dirname(os.path.abspath(getattr(mod, "__file__", ""))))
        if os.path.realpath(where) != os.path.realpath(_PACK_ROOT):
            import warnings

            warnings.warn(
                f"JoJoGAN nodes: another 'jojogan' package is already imported from {where}; "
                f"this pack's core is in {_PACK_ROOT}",
                stacklevel=2,
            )
        return
    if _PACK_ROOT not in sys.path:
        sys.path.insert(0, _PACK_ROOT)


_ensure_core_importable()

from . import host  # noqa: E402
from .definitions import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

host.register_model_folders()
host.install_example_inputs()
host.load_toy_style_modules()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

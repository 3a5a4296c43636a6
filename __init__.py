"""ComfyUI entry point of the JoJoGAN node pack.

ComfyUI imports this folder as a package by its path (`nodes.load_custom_node`: a module spec on
this file, under a name made from the path); the node classes live in `nodes/` and the core
library in `jojogan/`.
"""

import importlib.machinery
import importlib.util
import os
import sys
import warnings

_PACK_ROOT = os.path.dirname(os.path.abspath(__file__))


def _import_core() -> None:
    """Make the core library importable as the top-level package ``jojogan``.

    The library and the nodes import it by that name (as its tests, its command line and the
    benchmarks do), but ComfyUI never puts this folder on ``sys.path`` and users do not
    pip-install the pack. So the one package is imported from this folder by its spec: this
    claims only the name ``jojogan``, where putting the folder on ``sys.path`` would also make
    ``nodes`` (ComfyUI's own module's name), ``tests`` and ``docs`` top-level modules for the
    whole ComfyUI process. A ``jojogan`` already imported is kept, with a warning when it is
    not this pack's.
    """
    mod = sys.modules.get("jojogan")
    if mod is not None:
        where = os.path.dirname(os.path.dirname(os.path.abspath(getattr(mod, "__file__", ""))))
        if os.path.realpath(where) != os.path.realpath(_PACK_ROOT):
            warnings.warn(
                f"JoJoGAN nodes: another 'jojogan' package is already imported from {where}; "
                f"this pack's core is in {_PACK_ROOT}",
                stacklevel=2,
            )
        return
    spec = importlib.machinery.PathFinder.find_spec("jojogan", [_PACK_ROOT])
    module = importlib.util.module_from_spec(spec)
    sys.modules["jojogan"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["jojogan"]
        raise


_import_core()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

WEB_DIRECTORY = None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

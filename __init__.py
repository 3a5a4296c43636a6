"""ComfyUI entry point of the JoJoGAN node pack.

ComfyUI imports this folder as a package; the node classes live in `nodes/` and the core library in
`jojogan/`, which imports itself as the top-level package `jojogan` (nodes/__init__.py puts this
folder on `sys.path` when no `jojogan` is importable yet).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

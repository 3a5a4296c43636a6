"""ComfyUI entry point of the JoJoGAN node pack.

ComfyUI imports this folder as a package; the node classes live in `nodes/` and the core library in
`jojogan/` (both imported relatively, so the pack needs no entry on `sys.path`).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

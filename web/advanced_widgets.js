// JoJoGAN node pack: widgets marked "advanced" in a node's INPUT_TYPES are hidden until the user
// picks "Show Advanced" in the node's context menu.
//
// Why this file: ComfyUI's frontend (1.27) copies a backend input's `advanced` flag into
// `widget.options.advanced`, but its LiteGraph reads `widget.advanced` to hide the widget and to
// offer the menu item. This copies the flag across for the pack's own nodes; a frontend that
// already sets `widget.advanced` is left as it is.
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "jojogan.advancedWidgets",
  nodeCreated(node) {
    if (!String(node.comfyClass || "").startsWith("JoJoGAN_")) return;
    let any = false;
    for (const widget of node.widgets || []) {
      if (widget.options && widget.options.advanced && widget.advanced === undefined) {
        widget.advanced = true;
        any = true;
      }
    }
    if (any && typeof node.computeSize === "function") {
      // a new node is only as tall as its visible widgets; a loaded one keeps its saved size
      node.setSize([Math.max(node.size[0], 320), node.computeSize()[1]]);
    }
  },
});

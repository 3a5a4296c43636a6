"""Write the node reference in docs/nodes.md from the node definitions, so the two cannot drift.

    python docs/make_node_reference.py          # rewrite the generated part of docs/nodes.md
    python docs/make_node_reference.py --check  # exit 1 when docs/nodes.md differs

Only the text between the BEGIN/END markers below is written; the rest of docs/nodes.md is
written by hand. For each node: its id, display name, category, description, inputs (type,
default, range or choices, tooltip; required, optional or hidden; advanced) and outputs. The pack
is imported the way ComfyUI imports it (a module spec on its ``__init__.py``; no ``sys.path``
edit), outside ComfyUI and with an empty model folder, so a loader's list shows the known files
only and the page reads the same on every machine. tests/test_docs.py checks it is in sync.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "nodes.md"
COMMAND = "python docs/make_node_reference.py"
BEGIN = f"<!-- BEGIN GENERATED NODE REFERENCE: edit nodes/, then run `{COMMAND}` -->"
END = "<!-- END GENERATED NODE REFERENCE -->"

# Types ComfyUI itself defines; every other socket type is one of the pack's own.
COMFY_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "IMAGE", "MASK", "LATENT", "AUDIO", "VIDEO"}
SECTIONS = ("required", "optional", "hidden")
# Environment variables that change what INPUT_TYPES lists (model files, extra toy styles).
VOLATILE_ENV = ("JOJOGAN_TOY_STYLES", "COMFYUI_PATH")


def load_pack(root: Path = ROOT, name: str = "comfyui_jojogan_node_reference"):
    """Import the pack as ComfyUI's loader does: a module spec on the folder's __init__.py."""
    spec = importlib.util.spec_from_file_location(
        name, root / "__init__.py", submodule_search_locations=[str(root)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


@contextlib.contextmanager
def neutral_environment() -> Iterator[None]:
    """An empty model folder ($JOJOGAN_CACHE) and none of VOLATILE_ENV, restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("JOJOGAN_CACHE", *VOLATILE_ENV)}
    with tempfile.TemporaryDirectory(prefix="jojogan-docs-") as tmp:
        os.environ["JOJOGAN_CACHE"] = tmp
        for k in VOLATILE_ENV:
            os.environ.pop(k, None)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# ---------------------------------------------------------------------------------- rendering


def cell(text: Any) -> str:
    """Text for one Markdown table cell: one line, pipes escaped, no accidental HTML tags."""
    s = " ".join(str(text).split())
    s = s.replace("|", "\\|")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", s)


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def value(v: Any) -> str:
    return f"`{json.dumps(v)}`"


def _range(opts: Mapping[str, Any]) -> str:
    parts = []
    if "min" in opts:
        parts.append(f"min {value(opts['min'])}")
    if "max" in opts:
        parts.append(f"max {value(opts['max'])}")
    if "step" in opts:
        parts.append(f"step {value(opts['step'])}")
    return ", ".join(parts)


def describe_input(
    name: str, spec: Any, section: str, known_files: Mapping[str, str]
) -> tuple[str, ...]:
    """(name, type, default, range or choices, kind, tooltip) of one input."""
    if isinstance(spec, str):  # hidden inputs are plain type names ("UNIQUE_ID", "PROMPT")
        spec = (spec,)
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    flags = [section]
    if opts.get("advanced"):
        flags.append("advanced")
    if isinstance(kind, (list, tuple)):
        choices = [str(c) for c in kind]
        folders = {known_files.get(c) for c in choices}
        if choices and None not in folders:
            where = ", ".join(f"`models/{f}`" for f in sorted(folders))
            listed = ", ".join(f"`{c}`" for c in choices)
            type_, choice = "COMBO", f"a file in {where}; known files: {listed}"
            default = value(opts["default"]) if "default" in opts else "-"
        else:
            type_, choice = "COMBO", "one of " + ", ".join(f"`{c}`" for c in choices)
            default = value(opts.get("default", choices[0] if choices else None))
    else:
        type_ = str(kind)
        choice = _range(opts)
        default = value(opts["default"]) if "default" in opts else "-"
    return (
        f"`{name}`",
        f"`{type_}`",
        default,
        choice or "-",
        ", ".join(flags),
        opts.get("tooltip", "-"),
    )


def render_node(node_id: str, cls: type, display: str, known_files: Mapping[str, str]) -> list[str]:
    out = [f"#### {display}", ""]
    head = f"Id `{node_id}` · category `{cls.CATEGORY}`"
    if getattr(cls, "OUTPUT_NODE", False):
        head += " · output node"
    out += [head, "", cell(getattr(cls, "DESCRIPTION", "")) or "(no description)", ""]
    rows = []
    types = cls.INPUT_TYPES()
    for section in SECTIONS:
        for name, spec in (types.get(section) or {}).items():
            rows.append(describe_input(name, spec, section, known_files))
    if rows:
        out += ["| input | type | default | range / choices | kind | tooltip |"]
        out += ["|---|---|---|---|---|---|"]
        out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    else:
        out += ["No inputs."]
    out.append("")
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    tips = getattr(cls, "OUTPUT_TOOLTIPS", None) or ("-",) * len(cls.RETURN_TYPES)
    if cls.RETURN_TYPES:
        out += ["| output | type | tooltip |", "|---|---|---|"]
        for n, t, tip in zip(names, cls.RETURN_TYPES, tips, strict=True):
            out.append(f"| `{cell(n)}` | `{cell(t)}` | {cell(tip)} |")
    else:
        out.append("No outputs.")
    out.append("")
    return out


def _socket_type(spec: Any) -> str | None:
    kind = spec if isinstance(spec, str) else spec[0]
    return kind if isinstance(kind, str) else None


def render(
    mappings: Mapping[str, type],
    display_names: Mapping[str, str] | None = None,
    known_files: Mapping[str, str] | None = None,
) -> str:
    """The generated block (between BEGIN and END) for these node classes, by id.
    known_files: file name -> model folder of the files a loader may list (a COMBO of only
    those is shown as a model-file choice)."""
    display_names = display_names or {}
    known_files = known_files or {}
    title = {k: display_names.get(k) or getattr(c, "DISPLAY", k) for k, c in mappings.items()}
    categories: dict[str, list[str]] = {}
    for node_id, cls in mappings.items():
        categories.setdefault(cls.CATEGORY, []).append(node_id)

    intro = (
        f"{len(mappings)} nodes. Kind: *required* inputs must be connected or set, *optional* ones "
        "may be left empty, *advanced* ones are flagged for frontends that hide them behind Show "
        "Advanced (ComfyUI's frontend 1.27 still draws them). Model-file "
        "lists show the files in the folder plus the known files not downloaded yet (choosing one "
        "of those gives the download command); listed here are the known ones."
    )
    out = [
        *textwrap.wrap(intro, width=100, break_on_hyphens=False),
        "",
        "| node | id | category |",
        "|---|---|---|",
    ]
    for cat, ids_ in categories.items():
        for node_id in ids_:
            out.append(f"| [{title[node_id]}](#{anchor(title[node_id])}) | `{node_id}` | `{cat}` |")
    out.append("")

    made: dict[str, list[str]] = {}
    taken: dict[str, list[str]] = {}
    for node_id, cls in mappings.items():
        for t in cls.RETURN_TYPES:
            made.setdefault(t, []).append(node_id)
        for section in SECTIONS:
            for spec in (cls.INPUT_TYPES().get(section) or {}).values():
                t = _socket_type(spec)
                if t is not None:
                    taken.setdefault(t, []).append(node_id)
    own = sorted(t for t in {*made, *taken} if t not in COMFY_TYPES)
    if own:
        out += [
            "### Sockets",
            "",
            "The pack's own socket types and the nodes that make and take them.",
            "",
        ]
        out += ["| socket | made by | taken by |", "|---|---|---|"]
        for t in own:
            by, to = (
                ", ".join(dict.fromkeys(title[i] for i in d.get(t, []))) for d in (made, taken)
            )
            out.append(f"| `{t}` | {by or '-'} | {to or '-'} |")
        out.append("")

    for cat, ids_ in categories.items():
        out += [f"### {cat}", ""]
        for node_id in ids_:
            out += render_node(node_id, mappings[node_id], title[node_id], known_files)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def update(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(
            f"docs/nodes.md has lost its markers; put these two lines where the reference goes, "
            f"then run `{COMMAND}`:\n{BEGIN}\n{END}"
        )
    return text[: start + len(BEGIN)] + "\n\n" + block + "\n" + text[end:]


def generate(root: Path = ROOT, text: str | None = None) -> str:
    """The whole new docs/nodes.md (``text``: the current one, read from disk by default)."""
    text = (root / "docs" / "nodes.md").read_text(encoding="utf-8") if text is None else text
    with neutral_environment():
        pack = load_pack(root)
        weights = importlib.import_module("jojogan.weights")
        known = {name: entry.folder for name, entry in weights.REGISTRY.items()}
        block = render(pack.NODE_CLASS_MAPPINGS, pack.NODE_DISPLAY_NAME_MAPPINGS, known)
    return update(text, block)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/nodes.md differs")
    args = ap.parse_args(argv)
    old = TARGET.read_text(encoding="utf-8")
    new = generate(ROOT, old)
    if args.check:
        if new != old:
            print(f"docs/nodes.md is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        print("docs/nodes.md is up to date")
        return 0
    if new != old:
        TARGET.write_text(new, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(ROOT)}")
    else:
        print("docs/nodes.md is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

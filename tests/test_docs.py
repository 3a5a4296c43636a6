"""The documentation stays true: the node reference in docs/nodes.md matches the node definitions
(docs/make_node_reference.py), and every relative link in the Markdown pages leads somewhere."""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from standin_weights import STANDIN_GEN, write_standin_base

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])


@pytest.fixture(scope="module")
def ref():
    """docs/make_node_reference.py as a module (it is a script, not part of a package)."""
    name = "jojogan_make_node_reference"
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "make_node_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(name, None)


def test_node_reference_matches_the_node_definitions(ref, style_registry):
    current = (ROOT / "docs" / "nodes.md").read_text(encoding="utf-8")
    fresh = ref.generate(ROOT, current)
    if fresh != current:
        diff = difflib.unified_diff(
            current.splitlines(), fresh.splitlines(), "docs/nodes.md", "generated", lineterm=""
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            "docs/nodes.md is out of date with the node definitions; run "
            f"`{ref.COMMAND}` and commit the result. First differences:\n{shown}",
            pytrace=False,
        )


class _FakeNode:
    """Every shape of input the renderer must handle."""

    DISPLAY = "Fake Node"
    CATEGORY = "JoJoGAN/test"
    DESCRIPTION = "Does a | b into\n<prefix>_00001 files."
    RETURN_TYPES = ("IMAGE", "JOJOGAN_THING")
    RETURN_NAMES = ("images", "made")
    OUTPUT_TOOLTIPS = ("The images.", "A thing.")
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "steps": ("INT", {"default": 300, "min": 1, "max": 10, "tooltip": "How many."}),
                "mode": (["a", "b"], {"tooltip": "Which."}),
                "ckpt": (["x.pt", "y.pt"], {"tooltip": "A file."}),
                "lr": ("FLOAT", {"default": 0.002, "step": 0.001, "advanced": True}),
            },
            "optional": {"thing": ("JOJOGAN_THING", {"tooltip": "A thing in."})},
            "hidden": {"node_id": "UNIQUE_ID"},
        }


def test_render_describes_every_input_and_output(ref):
    text = ref.render(
        {"Fake_Node": _FakeNode}, {"Fake_Node": "Fake Node"}, {"x.pt": "jojogan", "y.pt": "jojogan"}
    )
    rows = {ln.split(" | ")[0]: ln for ln in text.splitlines() if ln.startswith("| `")}
    assert "| [Fake Node](#fake-node) | `Fake_Node` | `JoJoGAN/test` |" in text
    assert "Id `Fake_Node` · category `JoJoGAN/test` · output node" in text
    assert "Does a \\| b into &lt;prefix>_00001 files." in text  # one line, no table or tag break
    assert rows["| `steps`"] == (
        "| `steps` | `INT` | `300` | min `1`, max `10` | required | How many. |"
    )
    assert '| `"a"` | one of `a`, `b` | required | Which. |' in rows["| `mode`"]
    assert "| - | a file in `models/jojogan`; known files: `x.pt`, `y.pt` |" in rows["| `ckpt`"]
    assert rows["| `lr`"] == "| `lr` | `FLOAT` | `0.002` | step `0.001` | required, advanced | - |"
    assert rows["| `thing`"].endswith("| optional | A thing in. |")
    assert rows["| `node_id`"].startswith("| `node_id` | `UNIQUE_ID` | - | - | hidden |")
    assert "| `images` | `IMAGE` | The images. |" in text
    assert "| `JOJOGAN_THING` | Fake Node | Fake Node |" in text  # the sockets table


def test_update_replaces_only_the_generated_part(ref):
    text = f"# Title\n\nBy hand.\n\n{ref.BEGIN}\nold\n{ref.END}\n\nAfter.\n"
    new = ref.update(text, "new\n")
    assert new == f"# Title\n\nBy hand.\n\n{ref.BEGIN}\n\nnew\n\n{ref.END}\n\nAfter.\n"
    assert ref.update(new, "new\n") == new
    with pytest.raises(ValueError, match="make_node_reference.py"):
        ref.update("# Title, markers lost\n", "new\n")


def test_generator_leaves_the_environment_as_it_was(ref, monkeypatch):
    monkeypatch.setenv("JOJOGAN_CACHE", "/somewhere")
    monkeypatch.setenv("JOJOGAN_TOY_STYLES", "styles.py")
    with ref.neutral_environment():
        assert Path(os.environ["JOJOGAN_CACHE"]).is_dir()
        assert "JOJOGAN_TOY_STYLES" not in os.environ
    assert os.environ["JOJOGAN_CACHE"] == "/somewhere"
    assert os.environ["JOJOGAN_TOY_STYLES"] == "styles.py"


# --------------------------------------------------------------------------------------- links

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _links(text: str) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", text))
    return _LINK.findall(text) + _REF_DEF.findall(text)


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for title in _HEADING.findall(_FENCE.sub("", text)):
        plain = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", title)
        slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_link_reader_finds_links_and_skips_code():
    text = (
        'See [a](docs/a.md#part), ![img](pic.png "title") and [web](https://x.org).\n'
        "`[not](inline.md)`\n```\n[not](fenced.md)\n```\n[ref]: other.md\n"
    )
    assert _links(text) == ["docs/a.md#part", "pic.png", "https://x.org", "other.md"]
    assert _anchors("# A `b` title\n## A b title\n## Part: two\n") == {
        "a-b-title",
        "a-b-title-1",
        "part-two",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_existing_files(page):
    if not page.exists():
        pytest.skip(f"{page.name} is not in this checkout")
    broken = []
    for target in _links(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest.read_text()):
            broken.append(f"{target} (no heading '{fragment}' in {dest.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def _python_block(page: Path, after: str) -> str:
    """The first ```python block of ``page`` after the line ``after``."""
    text = page.read_text(encoding="utf-8")
    start = text.index(after)
    m = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert m, f"{page.name}: no python block after {after!r}"
    return m.group(1)


# What the snippets run on here: stand-in files of the real layouts at STANDIN_GEN px (the FFHQ
# models cannot be downloaded), so the faces are aligned at that size and the fine-tune is short.
# Every replacement must find its text: a snippet that changes shape fails here.
_STANDIN_EDITS = (("size=1024", f"size={STANDIN_GEN}"), ("steps=300", "steps=2"))


@pytest.fixture(scope="module")
def standin_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    write_standin_base(cache / "jojogan")
    return cache


@pytest.mark.parametrize(
    "page, after", [("README.md", "## Library"), ("docs/library.md", "# The library")]
)
def test_library_snippets_run_as_written(page, after, standin_cache, tmp_path, monkeypatch):
    """The README's and the library guide's code runs against the library as it is: the models
    loaded by bare name from $JOJOGAN_CACHE, the example photos aligned by dlib, a fine-tune,
    inversion, stylization (and paste-back and a saved style model in the guide)."""
    code = _python_block(ROOT / page, after)
    for old, new in _STANDIN_EDITS:
        assert old in code, f"{page}: the snippet no longer says {old!r}; update _STANDIN_EDITS"
        code = code.replace(old, new)
    monkeypatch.setenv("JOJOGAN_CACHE", str(standin_cache))
    inputs = ROOT / "example_workflows" / "inputs"
    shutil.copyfile(inputs / "jojogan_reference.jpg", tmp_path / "reference.jpg")
    shutil.copyfile(inputs / "jojogan_face.jpg", tmp_path / "me.jpg")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, f"{page} (python block)", "exec"), scope)  # noqa: S102 (our own docs)
    out = scope["out"]
    assert out.shape[1:] == (3, STANDIN_GEN, STANDIN_GEN) and torch.isfinite(out).all()
    if "full" in scope:
        assert scope["full"].shape[0] == 3
        assert (tmp_path / "my_style.safetensors").is_file()

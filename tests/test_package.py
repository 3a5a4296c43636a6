import importlib.util
import sys

import pytest


def load_pack_as_comfyui_does(root, name="comfyui_jojogan_under_test"):
    """Import the pack the way ComfyUI's loader does: a module spec on the folder's __init__.py."""
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


def test_pack_imports_like_comfyui_and_exports_mappings(pack_root):
    pack = load_pack_as_comfyui_does(pack_root)
    assert isinstance(pack.NODE_CLASS_MAPPINGS, dict)
    assert isinstance(pack.NODE_DISPLAY_NAME_MAPPINGS, dict)
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) <= set(pack.NODE_CLASS_MAPPINGS)


def test_core_never_imports_comfyui(pack_root):
    import re

    # an import statement, or a dynamic import by name (jojogan.weights only looks for the
    # file folder_paths.py to find a ComfyUI checkout; it never imports it)
    pattern = re.compile(
        r"^\s*(import|from)\s+(comfy\w*|folder_paths)\b|import_module\(\s*['\"](comfy|folder_paths)",
        re.M,
    )
    offenders = []
    for path in (pack_root / "jojogan").rglob("*.py"):
        if pattern.search(path.read_text()):
            offenders.append(str(path.relative_to(pack_root)))
    assert offenders == []


def test_requirements_never_pin_torch(pack_root):
    lines = (pack_root / "requirements.txt").read_text().splitlines()
    names = [ln.split("#")[0].strip().split(">")[0].split("=")[0].split("<")[0] for ln in lines]
    assert not {"torch", "torchvision", "torchaudio"} & {n.strip().lower() for n in names}


@pytest.mark.parametrize("key", ["PublisherId", "DisplayName", "Icon", "requires-comfyui"])
def test_registry_section_present(pack_root, key):
    import tomllib

    data = tomllib.loads((pack_root / "pyproject.toml").read_text())
    assert key in data["tool"]["comfy"]

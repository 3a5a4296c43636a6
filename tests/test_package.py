import sys

import pytest
from make_node_reference import load_pack as load_pack_as_comfyui_does


def test_pack_imports_like_comfyui_and_exports_mappings(pack_root):
    pack = load_pack_as_comfyui_does(pack_root, "comfyui_jojogan_under_test")
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


def test_pack_imports_its_core_without_it_installed_or_a_sys_path_edit(pack_root, tmp_path):
    """As in ComfyUI (the pack cloned into custom_nodes, never pip-installed): with no
    importable ``jojogan``, loading the pack makes its own core the top-level ``jojogan`` and
    leaves ``sys.path`` as it was (no ``nodes``, ``tests`` or ``docs`` of ours become importable
    for the rest of the process)."""
    import os
    import subprocess
    import textwrap

    code = textwrap.dedent(
        f"""
        import importlib.util, pathlib, sys
        root = pathlib.Path({str(pack_root)!r})
        # what a ComfyUI process has: no editable install of the pack, its folder not on the path
        sys.meta_path[:] = [f for f in sys.meta_path
                            if not getattr(f, "__module__", "").startswith("__editable__")]
        sys.path[:] = [p for p in sys.path if p not in ("", str(root))]
        try:
            import jojogan
            sys.exit("jojogan importable before the pack loads: " + jojogan.__file__)
        except ImportError:
            pass
        before = list(sys.path)
        spec = importlib.util.spec_from_file_location(
            "custom_nodes_x_comfyui_jojogan", root / "__init__.py",
            submodule_search_locations=[str(root)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = pack
        spec.loader.exec_module(pack)
        assert sys.path == before, "sys.path changed"
        import jojogan.finetune
        assert pathlib.Path(jojogan.finetune.__file__).parent == root / "jojogan"
        assert "nodes" not in sys.modules and "custom_nodes_x_comfyui_jojogan.nodes" in sys.modules
        assert len(pack.NODE_CLASS_MAPPINGS) == 17
        print("ok")
        """
    )
    env = {**os.environ, "JOJOGAN_CACHE": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]

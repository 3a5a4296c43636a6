"""QUALITY.md "Names and paths": a model name is a name inside its folder. `..`, absolute paths,
control characters, overlong names and links that leave the folder are refused with a ValueError
naming node and widget, without reading (or quoting) the file; links that stay inside the
folders, and a models folder that is itself a link, work. Saving picks names the same way."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from jojogan import checkpoints as ck
from jojogan import weights
from jojogan.stylegan2 import Generator

ROOT = Path(__file__).resolve().parents[1]
NODE, WIDGET = "JoJoGAN Load Style Model", "style_name"
SECRET = "root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture(scope="module")
def pack():
    from make_node_reference import load_pack as load_pack_as_comfyui_does

    return load_pack_as_comfyui_does(ROOT, "comfyui_jojogan_paths_test")


@pytest.fixture(scope="module")
def host(pack):
    return sys.modules[pack.__name__ + ".nodes.host"]


@pytest.fixture()
def folders(tmp_path, monkeypatch):
    """(model folder, a folder outside it holding a secret and a real model file)."""
    monkeypatch.setenv("JOJOGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("JOJOGAN_DEVICE", "cpu")
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    models = tmp_path / "cache" / "jojogan"
    models.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(SECRET)
    torch.manual_seed(0)
    g = Generator(16, 8, 1, channels={4: 4, 8: 4, 16: 4}, channel_max=4)
    ck.save_stylegan2(outside / "real.safetensors", g_ema=g)
    return models, outside


def refused(host, name, *patterns):
    with pytest.raises(ValueError) as ei:
        host.resolve_model(NODE, WIDGET, name)
    msg = str(ei.value)
    assert msg.startswith(f"{NODE}: '{WIDGET}'"), msg
    dirs = sorted((str(d) for d in host.model_dirs()), key=len, reverse=True)
    short = msg
    for d in dirs:  # the folder's own path is not counted
        short = short.replace(d, "<dir>")
    assert "root:x" not in msg and len(short) <= 300, msg
    for pat in patterns:
        assert pat in msg, f"{pat!r} not in {msg}"
    return msg


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("../../../../etc/passwd", "'..'"),
        ("../outside/real.safetensors", "'..'"),
        ("styles/../../outside/passwd", "'..'"),
        ("..\\..\\outside\\passwd", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("\\\\server\\share\\x.pt", "absolute path"),
        ("C:\\Windows\\x.pt", "absolute path"),
        ("style\x00.safetensors", "control character"),
        ("style\n.safetensors", "control character"),
        ("x" * 5000 + ".pt", "too long"),
        (None, "must be text"),
        (12, "must be text"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_names_that_leave_the_folder_are_refused(host, folders, name, pattern):
    msg = refused(host, name, pattern)
    if isinstance(name, str) and len(name) > 40:
        assert name[:60] not in msg  # quoted at most 40 characters


def test_absolute_path_to_a_real_model_is_refused(host, folders):
    _models, outside = folders
    refused(host, str(outside / "real.safetensors"), "absolute path")


def test_links_out_of_the_folder_are_refused_without_reading_the_file(host, folders):
    models, outside = folders
    os.symlink(outside / "passwd", models / "passwd.pt")
    os.symlink(outside / "real.safetensors", models / "elsewhere.safetensors")
    (models / "sub").mkdir()
    os.symlink(outside, models / "sub" / "linked_dir")
    for name in ("passwd.pt", "elsewhere.safetensors", "sub/linked_dir/real.safetensors"):
        refused(host, name, "outside the model folders", "move or copy")
    listed = host.list_models("style")
    assert "passwd.pt" not in listed and "elsewhere.safetensors" not in listed


def test_links_inside_the_folder_and_a_linked_models_folder_work(host, folders, tmp_path):
    models, outside = folders
    (models / "styles").mkdir()
    os.replace(outside / "real.safetensors", models / "styles" / "real.safetensors")
    os.symlink(models / "styles" / "real.safetensors", models / "alias.safetensors")
    assert host.resolve_model(NODE, WIDGET, "alias.safetensors") == models / "alias.safetensors"
    assert "alias.safetensors" in host.list_models()
    # the whole models folder is a link to another disk: its files are inside it
    disk = tmp_path / "disk"
    os.replace(models, disk)
    os.symlink(disk, models)
    got = host.resolve_model(NODE, WIDGET, "styles/real.safetensors")
    assert got == models / "styles" / "real.safetensors"
    assert ck.load_stylegan2(got).g_ema is not None
    assert host.resolve_model(NODE, WIDGET, "alias.safetensors").is_file()


def test_missing_file_is_the_download_message_and_a_dangling_link_is_missing(host, folders):
    models, _outside = folders
    os.symlink(models / "gone.pt", models / "dangling.pt")
    msg = str(pytest.raises(ValueError, host.resolve_model, NODE, WIDGET, "dangling.pt").value)
    assert "not found" in msg and msg.startswith(NODE)
    msg = str(
        pytest.raises(
            ValueError, host.resolve_model, NODE, WIDGET, "stylegan2-ffhq-config-f.pt"
        ).value
    )
    assert "python -m jojogan download stylegan2-ffhq-config-f.pt" in msg
    assert "Nvidia Source Code License-NC" in msg


def test_library_bare_names_follow_the_same_rule(folders):
    models, outside = folders
    os.symlink(outside / "real.safetensors", models / "linked.safetensors")
    with pytest.raises(weights.ModelNameError, match="outside the model folders"):
        weights.resolve("linked.safetensors")
    with pytest.raises(weights.ModelNameError, match="outside the model folders"):
        ck.load_stylegan2("linked.safetensors")
    os.symlink(models / "linked.safetensors", models / "twice.safetensors")
    with pytest.raises(ck.CheckpointError, match="outside"):
        ck.load_stylegan2("twice.safetensors")
    # an explicit path is the library caller's own choice and loads
    assert ck.load_stylegan2(outside / "real.safetensors").g_ema is not None
    os.replace(outside / "real.safetensors", models / "real.safetensors")
    assert weights.resolve("real.safetensors") == models / "real.safetensors"


def test_inside_comfyui_links_out_are_hidden_and_refused(host, folders, tmp_path, monkeypatch):
    """ComfyUI's own folder_paths follows links (get_full_path returns them); ours refuse."""
    _models, outside = folders
    comfy_models = tmp_path / "comfy" / "models"
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(comfy_models)
    fp.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        fp.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

    def get_filename_list(name):
        out = []
        for d in fp.folder_names_and_paths[name][0]:
            for dirpath, _dirs, files in os.walk(d, followlinks=True):
                out += [os.path.relpath(os.path.join(dirpath, f), d) for f in files]
        return sorted(out)

    def get_full_path(name, filename):  # as ComfyUI's: normalised, links followed
        filename = os.path.relpath(os.path.join("/", filename), "/")
        for d in fp.folder_names_and_paths[name][0]:
            full = os.path.join(d, filename)
            if os.path.isfile(full):
                return full
        return None

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: fp.folder_names_and_paths[name][0]
    fp.get_filename_list = get_filename_list
    fp.get_full_path = get_full_path
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    monkeypatch.setattr(host, "_registered", False)
    host.register_model_folders()
    jojo = comfy_models / "jojogan"
    os.symlink(outside / "passwd", jojo / "passwd.pt")
    os.replace(outside / "real.safetensors", jojo / "real.safetensors")
    listed = host.list_models()
    assert "real.safetensors" in listed and "passwd.pt" not in listed
    refused(host, "passwd.pt", "outside the model folders")
    refused(host, "../../../../etc/passwd", "'..'")
    assert host.resolve_model(NODE, WIDGET, "real.safetensors") == jojo / "real.safetensors"


# ------------------------------------------------------------------------------------ saving

SAVE, PREFIX = "JoJoGAN Save Style Model", "filename_prefix"


def test_output_names_count_up_inside_the_folder(host, folders):
    models, _outside = folders
    first = host.output_model_path(SAVE, PREFIX, "styles/mine")
    assert first == models / "styles" / "mine_00001.safetensors" and first.parent.is_dir()
    first.write_bytes(b"x")
    assert host.output_model_path(SAVE, PREFIX, " styles\\mine ").name == "mine_00002.safetensors"


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [
        ("../escape", "'..'"),
        ("/tmp/escape", "absolute path"),
        ("", "empty"),
        ("a\x00b", "control character"),
        ("x" * 250, "too long"),
        ("é" * 200, "too long"),
    ],
)
def test_bad_output_names_are_refused_naming_the_widget(host, folders, prefix, pattern):
    models, _outside = folders
    with pytest.raises(ValueError) as ei:
        host.output_model_path(SAVE, PREFIX, prefix)
    msg = str(ei.value)
    assert msg.startswith(f"{SAVE}: '{PREFIX}'") and pattern in msg and len(msg) <= 300, msg
    assert list(models.iterdir()) == []


def test_output_into_a_linked_subfolder_leading_out_is_refused(host, folders):
    models, outside = folders
    os.symlink(outside, models / "out")
    with pytest.raises(ValueError, match="leads out of"):
        host.output_model_path(SAVE, PREFIX, "out/new/style")
    assert not (outside / "new").exists()


def test_unusable_output_folder_is_a_clear_error(host, folders):
    models, _outside = folders
    (models / "afile").write_text("not a folder")
    with pytest.raises(ValueError) as ei:
        host.output_model_path(SAVE, PREFIX, "afile/style")
    msg = str(ei.value)
    assert msg.startswith(f"{SAVE}: '{PREFIX}': cannot create") and "choose" in msg, msg


def test_saving_with_a_name_too_long_for_the_file_system_is_a_clear_error(tmp_path):
    target = tmp_path / ("s" * 300 + ".safetensors")
    with pytest.raises(ck.CheckpointError) as ei:
        ck.save_safetensors({"w": torch.ones(2)}, target)
    msg = str(ei.value)
    assert "too long" in msg and "shorter name" in msg and len(msg) < 400, msg
    assert list(tmp_path.iterdir()) == []
    # a name that fits still saves: the temp name stays short
    ok = tmp_path / ("s" * 240 + ".safetensors")
    ck.save_safetensors({"w": torch.ones(2)}, ok)
    assert torch.equal(ck.load_file(ok)["w"], torch.ones(2))

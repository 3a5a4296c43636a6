"""Style-model files: round trips (float32/float16/bfloat16, dtype kept), metadata, wrong base,
released .pt import, NaN models never written, inputs never overwritten, bad files."""

import copy
import json
import os

import pytest
import torch

from jojogan.checkpoints import CheckpointError, read_safetensors_metadata, save_safetensors
from jojogan.finetune import FinetuneSettings, finetune
from jojogan.style_model import base_identity, load_style_model, save_style_model
from jojogan.stylegan2 import Discriminator, Generator


def _gen(seed=0, size=32):
    torch.manual_seed(seed)
    return Generator(size, style_dim=32, n_mlp=2, channel_max=32).eval()


@pytest.fixture(scope="module")
def trained():
    g = _gen()
    torch.manual_seed(0)
    d = Discriminator(32, channel_max=32).eval()
    refs = torch.rand(2, 3, 32, 32) * 2 - 1
    codes = g.mean_latent(64)[:, None].expand(2, g.n_latent, -1).clone()
    st = FinetuneSettings(
        steps=3,
        seed=5,
        preset="preserve_color",
        grayscale=True,
        structure_weight=0.2,
        gram_weight=5.0,
        random_faces=2,
    )
    return g, finetune(g, d, refs, codes, st)


def test_round_trip_float32_is_exact_with_metadata(trained, tmp_path):
    base, res = trained
    path = tmp_path / "style.safetensors"
    save_style_model(path, res, base, metadata={"name": "test"})
    sm = load_style_model(path, base)
    want = res.generator.state_dict()
    got = sm.generator.state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    info = sm.info
    assert info["base"]["sha256"] == base_identity(base)
    assert info["resolution"] == 32 and info["steps"] == 3 and info["seed"] == 5
    assert info["lr"] == 2e-3 and info["n_references"] == 2
    assert info["mixing"]["preset"] == "preserve_color" and info["mixing"]["space"] == "w+"
    assert info["losses"]["discriminator_feature_l1"]["grayscale"] is True
    assert info["losses"]["structure"] == {"weight": 0.2, "random_faces": 2}
    assert info["losses"]["texture_gram"] == {"weight": 5.0, "taps": [0, 1, 2]}
    assert info["library_version"] and info["extra"] == {"name": "test"}
    assert info["trained_layers"] == list(range(base.n_styles)) and info["precision"] == "float32"
    raw = read_safetensors_metadata(path)
    assert json.loads(raw["jojogan.style_model"])["format"] == "jojogan-style-model/1"


def test_float16_file_is_half_the_size_and_close(trained, tmp_path):
    base, res = trained
    p32, p16 = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_style_model(p32, res, base)
    save_style_model(p16, res, base, dtype=torch.float16)
    assert os.path.getsize(p16) < 0.6 * os.path.getsize(p32)
    sm = load_style_model(p16, base)
    assert sm.info["dtype"] == "float16"
    for k, v in res.generator.state_dict().items():
        torch.testing.assert_close(sm.generator.state_dict()[k], v, rtol=2e-3, atol=2e-3)
        assert sm.generator.state_dict()[k].dtype == torch.float32


def test_wrong_base_is_refused_naming_both_identities(trained, tmp_path):
    base, res = trained
    path = tmp_path / "style.safetensors"
    save_style_model(path, res, base)
    other = _gen(seed=9)
    with pytest.raises(CheckpointError) as e:
        load_style_model(path, other)
    msg = str(e.value)
    assert "another base model" in msg and str(path) in msg
    assert base_identity(base)[:16] in msg and base_identity(other)[:16] in msg
    with pytest.raises(CheckpointError, match="another base model"):
        load_style_model(path, _gen(size=64))
    assert load_style_model(path, base).generator is not None  # the next good request works


def test_released_pt_style_file_imports_to_the_same_form(trained, tmp_path):
    base, res = trained
    pt = tmp_path / "jojo.pt"
    torch.save({"g": res.generator.state_dict()}, pt)
    sm = load_style_model(pt, base)
    assert sm.info["format"] == "jojogan-released-pt" and sm.base_id is None
    want = res.generator.state_dict()
    assert all(torch.equal(sm.generator.state_dict()[k], want[k]) for k in want)
    small = _gen(size=64)
    with pytest.raises(CheckpointError, match="another base model"):
        load_style_model(pt, small)


def test_nan_model_is_never_written(trained, tmp_path):
    base, res = trained
    path = tmp_path / "style.safetensors"
    save_style_model(path, res, base)
    before = path.read_bytes()
    bad = _gen()
    bad.load_state_dict(res.generator.state_dict())
    with torch.no_grad():
        bad.convs[0].conv.weight[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        save_style_model(path, bad, base)
    assert path.read_bytes() == before
    with pytest.raises(CheckpointError, match="NaN"):
        save_style_model(tmp_path / "new.safetensors", bad, base)
    assert not (tmp_path / "new.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["style.safetensors"]


def test_float16_overflow_is_refused(trained, tmp_path):
    base, res = trained
    big = _gen()
    big.load_state_dict(res.generator.state_dict())
    with torch.no_grad():
        big.convs[0].conv.weight[0, 0, 0, 0, 0] = 1e6
    with pytest.raises(CheckpointError, match="float16"):
        save_style_model(tmp_path / "x.safetensors", big, base, dtype=torch.float16)
    assert not (tmp_path / "x.safetensors").exists()


def test_never_overwrites_an_input(trained, tmp_path):
    base, res = trained
    src = tmp_path / "base.safetensors"
    src.write_bytes(b"base checkpoint")
    with pytest.raises(CheckpointError, match="refusing to overwrite an input"):
        save_style_model(src, res, base, inputs=[src])
    assert src.read_bytes() == b"base checkpoint"


def test_bad_style_files_get_clear_errors(trained, tmp_path):
    base, res = trained
    good = tmp_path / "good.safetensors"
    save_style_model(good, res, base)
    cases = {
        "empty.safetensors": b"",
        "random.safetensors": os.urandom(3000),
        "page.pt": b"<!DOCTYPE html><html><body>Google Drive quota exceeded</body></html>",
        "truncated.safetensors": good.read_bytes()[: len(good.read_bytes()) // 2],
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            load_style_model(p, base)
        assert name in str(e.value)
    other = tmp_path / "other.safetensors"
    save_safetensors({"x": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a JoJoGAN style model"):
        load_style_model(other, base)
    wrong = tmp_path / "encoder.pt"
    torch.save({"g": {"conv.weight": torch.zeros(2)}}, wrong)
    with pytest.raises(CheckpointError, match="encoder.pt"):
        load_style_model(wrong, base)
    with pytest.raises(CheckpointError, match="no such"):
        load_style_model(tmp_path / "missing.safetensors", base)
    assert load_style_model(good, base).generator is not None


def test_the_recipe_is_recorded_and_older_files_still_load(trained, tmp_path):
    """A style model says which recipe made it ("released" / "default" / "custom") with every
    setting; a file written before those keys loads the same; released .pt files stay strict."""
    base, res = trained
    torch.manual_seed(0)
    d = Discriminator(32, channel_max=32).eval()
    refs = torch.rand(2, 3, 32, 32) * 2 - 1
    codes = base.mean_latent(64)[:, None].expand(2, base.n_latent, -1).clone()
    st = FinetuneSettings.released(steps=2, seed=3)
    rel = finetune(base, d, refs, codes, st)
    path = tmp_path / "released.safetensors"
    info = save_style_model(path, rel, base)
    sm = load_style_model(path, base)
    assert sm.info["recipe"] == info["recipe"] == "released"
    assert FinetuneSettings.from_dict(sm.info["settings"]) == st
    assert sm.info["noise_mode"] == "random" and sm.info["mixing"]["mixed"] == [7]
    assert save_style_model(tmp_path / "custom.safetensors", res, base)["recipe"] == "custom"

    old = tmp_path / "old.safetensors"  # as written before the recipe was recorded
    from safetensors.torch import load_file

    meta = json.loads(read_safetensors_metadata(path)["jojogan.style_model"])
    del meta["recipe"], meta["settings"]
    save_safetensors(load_file(path), old, {"jojogan.style_model": json.dumps(meta)})
    got = load_style_model(old, base)
    assert "recipe" not in got.info
    want = sm.generator.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in got.generator.state_dict().items())

    sd = dict(rel.generator.state_dict())
    sd.pop("to_rgbs.0.bias")
    torch.save({"g": sd}, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="to_rgbs.0.bias"):
        load_style_model(tmp_path / "cut.pt", base)


def test_dtype_is_kept_on_save_and_a_bfloat16_file_loads(trained, tmp_path):
    base, res = trained
    bf = _gen()
    bf.load_state_dict(res.generator.state_dict())
    bf = bf.to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    info = save_style_model(path, bf, base)  # no dtype given: the weights' own
    assert info["dtype"] == "bfloat16"
    from jojogan.checkpoints import load_file

    stored = load_file(path)
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.bfloat16}
    sm = load_style_model(path, base)  # into the float32 base
    assert sm.info["dtype"] == "bfloat16"
    for k, v in bf.state_dict().items():
        if not k.startswith("style."):
            assert torch.equal(sm.generator.state_dict()[k], v.float()), k
    # a bfloat16 base gets its bfloat16 weights back exactly
    sm_bf = load_style_model(path, copy.deepcopy(base).to(torch.bfloat16), check_base=False)
    assert all(
        torch.equal(sm_bf.generator.state_dict()[k], v)
        for k, v in bf.state_dict().items()
        if not k.startswith("style.")
    )
    # an explicit dtype still wins; float64 weights are stored as float32 by default
    assert (
        save_style_model(tmp_path / "f32.safetensors", bf, base, dtype=torch.float32)["dtype"]
        == "float32"
    )
    assert save_style_model(tmp_path / "f64.safetensors", bf.double(), base)["dtype"] == "float32"
    with pytest.raises(ValueError, match="bfloat16"):
        save_style_model(tmp_path / "i8.safetensors", res, base, dtype=torch.int8)


def test_float16_overflow_names_the_tensor_and_what_to_do(trained, tmp_path):
    base, res = trained
    big = _gen()
    big.load_state_dict(res.generator.state_dict())
    with torch.no_grad():
        big.convs[0].conv.weight[0, 0, 0, 0, 0] = 1e6
    with pytest.raises(CheckpointError) as ei:
        save_style_model(tmp_path / "x.safetensors", big, base, dtype=torch.float16)
    msg = str(ei.value)
    assert "convs.0.conv.weight" in msg and "range of float16" in msg and "float32" in msg, msg
    assert "NaN" not in msg


def test_metadata_fields_from_the_file_are_quoted_short(trained, tmp_path):
    base, res = trained
    path = tmp_path / "odd.safetensors"
    save_style_model(path, res, base)
    from jojogan.checkpoints import load_file

    tensors = load_file(path)
    for bad in ({"format": "x" * 5000}, {"format": "jojogan-style-model/1", "base": "nope"}):
        save_safetensors(tensors, path, {"jojogan.style_model": json.dumps(bad)})
        with pytest.raises(CheckpointError) as ei:
            load_style_model(path, base)
        msg = str(ei.value)
        assert "x" * 41 not in msg and len(msg) < 300 + len(str(path)), msg

"""ArcFace IR-SE50 (pSp/e4e identity loss): parity with the reference Backbone on seeded weights,
the model_ir_se50.pth layout loaded strictly, the 256 px crop, grayscale, and clear errors.

Metric: max|ours - ref| / max|ref| <= 1e-5 (float32).
"""

from __future__ import annotations

import os

import pytest
import recipe  # tests/fixtures/encoders/recipe.py
import torch
from safetensors.torch import load_file as load_st

from jojogan.arcface import ArcFace, face_crop, identity_loss, load_arcface, to_grayscale
from jojogan.checkpoints import CheckpointError

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "encoders")

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def arcface_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("arc") / "model_ir_se50.pth"
    sd = recipe.seeded_state_dict(ArcFace().state_dict(), recipe.ARCFACE["seed"])
    torch.save(sd, path)  # a plain state dict, as model_ir_se50.pth
    return path


@pytest.fixture(scope="module")
def model(arcface_file):
    return load_arcface(arcface_file)


def test_layout_has_397_tensors_like_model_ir_se50():
    assert len(ArcFace().state_dict()) == 397


def test_embeddings_match_reference(model):
    gold = load_st(os.path.join(FIX, "arcface.safetensors"))
    x = recipe.seeded_images(recipe.ARCFACE["batch"], 112, recipe.ARCFACE["image_seed"])
    with torch.no_grad():
        emb = model(x)
    assert emb.shape == (2, 512)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    err = rel_err(emb, gold["embeddings"])
    assert err <= TOL, f"ArcFace parity: {err:.3g}"


def test_crop_and_pool_of_256_face_match_reference_extract_feats(model):
    gold = load_st(os.path.join(FIX, "arcface.safetensors"))
    x = recipe.seeded_images(recipe.ARCFACE["batch"], 256, recipe.ARCFACE["image_seed"] + 1)
    err = rel_err(model.embed(x), gold["embeddings_crop256"])
    assert err <= TOL, f"ArcFace crop parity: {err:.3g}"


def test_face_crop_resizes_any_size_and_grayscale_is_gray():
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    c = face_crop(x)
    assert c.shape == (1, 3, 112, 112)
    g = face_crop(x, grayscale=True)
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    assert torch.allclose(to_grayscale(torch.ones(1, 3, 4, 4)), torch.ones(1, 3, 4, 4))


def test_identity_loss_is_zero_for_same_face_and_differentiable(model):
    a = recipe.seeded_images(1, 256, 5).requires_grad_(True)
    b = recipe.seeded_images(1, 256, 6)
    with torch.no_grad():
        assert float(identity_loss(model, a, a)) == pytest.approx(0.0, abs=1e-5)
    loss = identity_loss(model, a, b)
    loss.backward()
    assert loss.item() > 0 and a.grad is not None and torch.isfinite(a.grad).all()


def test_wrong_input_shape_is_a_clear_error(model):
    with pytest.raises(ValueError, match=r"\[B,3,112,112\]"):
        model(torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        face_crop(torch.zeros(1, 256, 256))


def test_other_files_are_refused(tmp_path):
    from jojogan.stylegan2 import Generator

    gen = tmp_path / "stylegan2.pt"
    torch.save({"g_ema": Generator(16, 32, 1, channels={4: 8, 8: 8, 16: 8}).state_dict()}, gen)
    with pytest.raises(CheckpointError, match="not an ArcFace.*generator"):
        load_arcface(gen)
    enc = tmp_path / "e4e.pt"
    torch.save({"state_dict": {"encoder.input_layer.0.weight": torch.zeros(1)}, "opts": {}}, enc)
    with pytest.raises(CheckpointError, match="not an ArcFace.*encoder"):
        load_arcface(enc)
    html = tmp_path / "model_ir_se50.pth"
    html.write_bytes(b"<html><head><title>Sign in</title></head></html>")
    with pytest.raises(CheckpointError, match="model_ir_se50.pth"):
        load_arcface(html)


def test_missing_key_is_named(tmp_path):
    sd = ArcFace().state_dict()
    del sd["body.3.res_layer.5.fc1.weight"]
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"body\.3\.res_layer\.5\.fc1\.weight"):
        load_arcface(path)

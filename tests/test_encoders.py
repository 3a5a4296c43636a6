"""e4e / ReStyle-pSp encoders: parity with the reference implementations on seeded weights, the
real checkpoint layouts loaded strictly, and clear errors for wrong files and inputs.

Golden tensors: tests/fixtures/encoders/{e4e,restyle}.safetensors, made by make_fixtures.py from
omertov/encoder4editing and yuval-alaluf/restyle-encoder. Metric: max|ours - ref| / max|ref|.
"""

from __future__ import annotations

import os

import pytest
import recipe  # tests/fixtures/encoders/recipe.py
import torch
from safetensors.torch import load_file as load_st

from jojogan.checkpoints import CheckpointError
from jojogan.encoders import (
    E4EEncoder,
    Encoder4Editing,
    ReStyleEncoder,
    check_face_images,
    load_encoder,
    n_styles_for_size,
)
from jojogan.stylegan2 import Generator

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "encoders")

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _prefixed(encoder: torch.nn.Module, decoder: torch.nn.Module) -> dict:
    sd = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    return sd


def _write_e4e(path, *, latent_avg=True, opts_extra=None, sd_edit=None) -> dict:
    cfg = recipe.E4E
    enc = Encoder4Editing(cfg["n_styles"])
    dec = Generator(cfg["stylegan_size"], 512, 8, channel_multiplier=2)
    sd = recipe.seeded_state_dict(_prefixed(enc, dec), cfg["seed"])
    del enc, dec
    if sd_edit:
        sd_edit(sd)
    opts = {
        "encoder_type": "Encoder4Editing",
        "stylegan_size": cfg["stylegan_size"],
        "start_from_latent_avg": True,
        "device": "cuda:0",
        "checkpoint_path": None,
        **(opts_extra or {}),
    }
    obj = {"state_dict": sd, "opts": opts}
    if latent_avg:
        obj["latent_avg"] = recipe.seeded_latent_avg(cfg["n_styles"], cfg["latent_seed"])
    torch.save(obj, path)
    return sd


def _write_restyle(path) -> dict:
    cfg = recipe.RESTYLE
    from jojogan.encoders import BackboneEncoder

    enc = BackboneEncoder(cfg["n_styles"], 6)
    dec = Generator(cfg["output_size"], 512, 8, channel_multiplier=2)
    sd = recipe.seeded_state_dict(_prefixed(enc, dec), cfg["seed"])
    del enc, dec
    opts = {
        "encoder_type": "BackboneEncoder",
        "output_size": cfg["output_size"],
        "input_nc": 6,
        "start_from_latent_avg": True,
        "device": "cuda:0",
    }
    latent_avg = recipe.seeded_latent_avg(cfg["n_styles"], cfg["latent_seed"])
    torch.save({"state_dict": sd, "opts": opts, "latent_avg": latent_avg}, path)
    return sd


@pytest.fixture(scope="module")
def e4e_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("e4e") / "e4e_ffhq_encode.pt"
    sd = _write_e4e(path)
    return path, sd["encoder.body.0.res_layer.1.weight"].flatten()[:16].clone()


@pytest.fixture(scope="module")
def e4e_loaded(e4e_file):
    return load_encoder(e4e_file[0])


def test_recipe_reproduces_fixture_inputs_and_weights(e4e_file):
    gold = load_st(os.path.join(FIX, "e4e.safetensors"))
    cfg = recipe.E4E
    images = recipe.seeded_images(cfg["batch"], 256, cfg["image_seed"])
    probe = images[:, :, 100:102, 100:104].flatten()[:16]
    assert torch.allclose(probe, gold["probe_images"], rtol=0, atol=1e-6)
    assert torch.equal(e4e_file[1], gold["probe_weight"])


def test_e4e_real_layout_file_matches_reference_codes(e4e_loaded):
    gold = load_st(os.path.join(FIX, "e4e.safetensors"))
    cfg = recipe.E4E
    assert isinstance(e4e_loaded, E4EEncoder) and e4e_loaded.kind == "e4e"
    images = recipe.seeded_images(cfg["batch"], 256, cfg["image_seed"])
    with torch.no_grad():
        codes = e4e_loaded(images)
    assert codes.shape == (cfg["batch"], cfg["n_styles"], 512)
    err = rel_err(codes, gold["codes"])
    assert err <= TOL, f"e4e parity: max|a-b|/max|b| = {err:.3g}"


@pytest.mark.slow
def test_e4e_is_deterministic_and_batch_independent(e4e_loaded):
    images = recipe.seeded_images(2, 256, recipe.E4E["image_seed"])
    with torch.no_grad():
        both = e4e_loaded(images)
        one = e4e_loaded(images[1:])
    assert rel_err(one, both[1:]) <= TOL


def test_restyle_real_layout_file_matches_reference_iterations(tmp_path):
    gold = load_st(os.path.join(FIX, "restyle.safetensors"))
    cfg = recipe.RESTYLE
    path = tmp_path / "restyle_psp_ffhq_encode.pt"
    sd = _write_restyle(path)
    assert torch.equal(sd["encoder.body.0.res_layer.1.weight"].flatten()[:16], gold["probe_weight"])
    enc = load_encoder(path)
    assert isinstance(enc, ReStyleEncoder) and enc.kind == "restyle"
    # the first image of the fixture's batch (batching is covered by the e4e test)
    images = recipe.seeded_images(cfg["batch"], 256, cfg["image_seed"])[:1]
    with torch.no_grad():
        avg = enc.average_image()[0, :, ::8, ::8]
        history = enc(images, n_iters=cfg["iters"], return_all=True)
    assert rel_err(avg, gold["avg_image_sub8"]) <= TOL
    assert len(history) == cfg["iters"]
    for it, codes in enumerate(history, start=1):
        err = rel_err(codes, gold[f"codes_iter{it}"][:1])
        assert err <= TOL, f"ReStyle iteration {it}: max|a-b|/max|b| = {err:.3g}"


@pytest.mark.slow
def test_e4e_without_latent_avg_uses_seeded_decoder_mean(tmp_path):
    path = tmp_path / "no_avg.pt"
    _write_e4e(path, latent_avg=False)
    a = load_encoder(path, keep_decoder=True)
    b = load_encoder(path)
    expected = a.decoder.mean_latent(10_000, seed=0).expand(recipe.E4E["n_styles"], 512)
    assert torch.equal(a.latent_avg, expected)
    assert torch.equal(a.latent_avg, b.latent_avg)
    assert b.decoder is None


@pytest.mark.slow
def test_e4e_without_start_from_latent_avg_adds_nothing(tmp_path, e4e_loaded):
    path = tmp_path / "no_start.pt"
    _write_e4e(path, opts_extra={"start_from_latent_avg": False})
    enc = load_encoder(path)
    images = recipe.seeded_images(1, 256, 5)
    with torch.no_grad():
        diff = e4e_loaded(images) - enc(images)
    assert torch.allclose(diff, e4e_loaded.latent_avg[None], atol=1e-5)


def test_n_styles_follow_generator_size():
    assert [n_styles_for_size(s) for s in (1024, 256, 64, 32)] == [18, 14, 10, 8]
    with pytest.raises(ValueError, match="power of two"):
        n_styles_for_size(300)


# --------------------------------------------------------------------------- bad files


def test_generator_file_given_as_encoder_is_refused(tmp_path):
    g = Generator(16, 32, 2, channels={4: 16, 8: 16, 16: 16})
    path = tmp_path / "stylegan2.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(32)}, path)
    with pytest.raises(CheckpointError, match="StyleGAN2 generator checkpoint .*not an encoder"):
        load_encoder(path)


def test_arcface_file_given_as_encoder_is_refused(tmp_path):
    from jojogan.arcface import ArcFace

    path = tmp_path / "model_ir_se50.pth"
    torch.save(ArcFace().state_dict(), path)
    with pytest.raises(CheckpointError, match="ArcFace"):
        load_encoder(path)


def test_html_and_truncated_files_get_clear_errors(tmp_path, e4e_file):
    html = tmp_path / "e4e_ffhq_encode.pt"
    html.write_bytes(b"<!DOCTYPE html><html><body>Google Drive - quota exceeded</body></html>")
    with pytest.raises(CheckpointError, match=str(html.name)):
        load_encoder(html)
    cut = tmp_path / "cut.pt"
    data = open(e4e_file[0], "rb").read(4_000_000)
    cut.write_bytes(data)
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_encoder(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt"):
        load_encoder(empty)


def test_missing_and_misshaped_keys_are_named(tmp_path):
    def drop(sd):
        del sd["encoder.styles.7.linear.bias"]
        sd["encoder.latlayer1.weight"] = torch.zeros(512, 256, 3, 3)

    path = tmp_path / "broken.pt"
    _write_e4e(path, sd_edit=drop)
    with pytest.raises(CheckpointError) as e:
        load_encoder(path)
    msg = str(e.value)
    assert "encoder.styles.7.linear.bias" in msg and "encoder.latlayer1.weight" in msg


def test_wrong_generator_size_in_opts_is_a_key_error(tmp_path):
    path = tmp_path / "size.pt"
    _write_e4e(path, opts_extra={"stylegan_size": 64})
    with pytest.raises(CheckpointError, match="Missing keys"):
        load_encoder(path)


def test_unsupported_encoder_type_is_refused(tmp_path):
    path = tmp_path / "psp.pt"
    torch.save(
        {
            "state_dict": {"encoder.input_layer.0.weight": torch.zeros(64, 3, 3, 3)},
            "opts": {"encoder_type": "GradualStyleEncoder"},
        },
        path,
    )
    with pytest.raises(CheckpointError, match="GradualStyleEncoder.*not supported"):
        load_encoder(path)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.zeros(1, 3, 128, 128), "256x256"),
        (torch.zeros(1, 256, 256, 3), r"\[B,3,256,256\]"),
        (torch.zeros(3, 256, 256), r"\[B,3,256,256\]"),
        (torch.full((1, 3, 256, 256), 255.0), r"\[-1,1\]"),
        (torch.full((1, 3, 256, 256), float("nan")), "NaN"),
        (torch.zeros(1, 3, 256, 256, dtype=torch.uint8), "floating point"),
        ([[0.0]], "torch.Tensor"),
    ],
)
def test_bad_images_get_clear_errors(images, match):
    with pytest.raises(ValueError, match=match):
        check_face_images(images, "enc")


def test_encoder_modules_validate_before_running(e4e_loaded):
    with pytest.raises(ValueError, match="E4EEncoder.*256x256"):
        e4e_loaded(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"E4EEncoder.*\[-1,1\]"):
        e4e_loaded(torch.full((1, 3, 256, 256), 2.0))


def test_restyle_rejects_bad_iteration_counts():
    dec = Generator(16, 512, 1, channel_multiplier=2)
    enc = ReStyleEncoder(dec, torch.zeros(512)).eval()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_iters"):
            enc(torch.zeros(1, 3, 256, 256), n_iters=bad)

"""Stand-in model files: random weights in the real layouts under the real names (the FFHQ
StyleGAN2, e4e and ArcFace files cannot be downloaded here), for the tests that load them by
name: the real-ComfyUI tests and the documentation's snippets."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from jojogan.arcface import ArcFace
from jojogan.encoders import Encoder4Editing, n_styles_for_size
from jojogan.stylegan2 import Discriminator, Generator

STANDIN_GEN = 64  # px of the stand-in FFHQ generator


def write_standin_base(models: Path) -> None:
    """stylegan2-ffhq-config-f.pt (g_ema, d, latent_avg) and e4e_ffhq_encode.pt, both at
    STANDIN_GEN px, in ``models``."""
    models.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    ch = {4: 64, 8: 64, 16: 32, 32: 32, 64: 16}
    g = Generator(STANDIN_GEN, 512, 2, channels=ch, channel_max=64)
    d = Discriminator(STANDIN_GEN, channels=ch, channel_max=64)
    torch.save(
        {"g_ema": g.state_dict(), "d": d.state_dict(), "latent_avg": torch.zeros(512)},
        models / "stylegan2-ffhq-config-f.pt",
    )
    n = n_styles_for_size(STANDIN_GEN)
    enc = Encoder4Editing(n)
    dec = Generator(STANDIN_GEN, 512, 8, channel_multiplier=2)
    sd = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in dec.state_dict().items()})
    opts = {
        "encoder_type": "Encoder4Editing",
        "stylegan_size": STANDIN_GEN,
        "start_from_latent_avg": True,
    }
    torch.save(
        {"state_dict": sd, "opts": opts, "latent_avg": torch.zeros(n, 512)},
        models / "e4e_ffhq_encode.pt",
    )


def write_standin_weights(models: Path) -> None:
    """The base files (`write_standin_base`), three released-style files, ArcFace, and two files
    under names the pack does not know, which only their contents tell apart."""
    write_standin_base(models)
    g = torch.load(models / "stylegan2-ffhq-config-f.pt", weights_only=True)["g_ema"]
    torch.manual_seed(1)
    for name in ("jojo", "arcane_jinx", "disney"):
        sd = {
            k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in g.items()
        }
        torch.save({"g": sd}, models / f"{name}.pt")
    shutil.copyfile(models / "stylegan2-ffhq-config-f.pt", models / "my_base.pt")
    shutil.copyfile(models / "jojo.pt", models / "my_style.pt")
    torch.save(ArcFace(112, 50, "ir_se").state_dict(), models / "model_ir_se50.pth")

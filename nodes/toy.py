"""The toy-faces nodes: the small StyleGAN2 shipped inside the pack (`jojogan.toy`), and its
procedural faces, for the whole pipeline on a CPU without a download."""

from __future__ import annotations

import torch

from jojogan.images import check_output_budget
from jojogan.toy import ENCODER_FILE, GENERATOR_FILE, find_weights_dir, render
from jojogan.toy.model import load_toy

from . import host
from . import sockets as S
from .common import CATEGORY, INT_MAX, _load_cached, _node_errors


class LoadToyModel:
    DISPLAY = "JoJoGAN Load Toy Model"
    CATEGORY = f"{CATEGORY}/loaders"
    FUNCTION = "load"
    RETURN_TYPES = (S.GENERATOR, S.DISCRIMINATOR, S.ENCODER)
    RETURN_NAMES = ("generator", "discriminator", "encoder")
    OUTPUT_TOOLTIPS = (
        "The toy-faces generator (64 px).",
        "Its discriminator, for Finetune.",
        "Its encoder, for Invert.",
    )
    DESCRIPTION = (
        "The small toy-faces StyleGAN2, discriminator and encoder shipped inside the pack: the "
        "whole pipeline in a minute on a CPU, no download. Pair it with Toy Render."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    @_node_errors(DISPLAY)
    def load(self):
        folder = find_weights_dir()  # the shipped jojogan/toy/weights, or $JOJOGAN_TOY_DIR
        gpath = folder / GENERATOR_FILE

        def load(device):
            g, d, enc, _avg, _cfg = load_toy(folder, device=device)  # read-only
            gen = S.GeneratorModel(g, None, str(gpath))
            disc = S.DiscriminatorModel(d, str(gpath))
            encoder = None
            if enc is not None:
                encoder = S.EncoderModel(enc, str(folder / ENCODER_FILE))
            return gen, disc, encoder

        return _load_cached("toy", gpath, load)


class ToyRender:
    DISPLAY = "JoJoGAN Toy Render"
    CATEGORY = f"{CATEGORY}/toy"
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Toy faces, already aligned: connect them to Invert directly.",)
    DESCRIPTION = (
        "Procedural toy faces (the shipped toy model's domain): 'photo' for inputs, any other "
        "style for a reference. The same seed gives the same identities in every style."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style": (
                    render.style_names(),
                    {
                        "tooltip": "photo: what the toy model knows (inputs); any other style "
                        "makes a reference."
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Which faces: the same seed gives the same identities in "
                        "every style.",
                    },
                ),
                "count": (
                    "INT",
                    {"default": 1, "min": 1, "max": 256, "tooltip": "How many faces."},
                ),
                "size": (
                    "INT",
                    {
                        "default": 64,
                        "min": 16,
                        "max": 1024,
                        "step": 16,
                        "tooltip": "Side in px; the toy model works at 64.",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def render(self, style, seed, count, size):
        check_output_budget(
            count, size, size, what=f"{self.DISPLAY}: 'count' {count} at 'size' {size}"
        )
        params = render.sample_params(int(seed), int(count))
        img = torch.from_numpy(render.render_float(params, style, int(size)))
        return (img.to(host.offload_device()),)

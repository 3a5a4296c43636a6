"""The JoJoGAN pipeline's nodes: Invert (step 1), Build Mixed Dataset (Eq. 1), Finetune (Eq. 2),
Stylize (step 4), Interpolate Style and Sample Styled (Sec. 4's feature interpolation)."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

from jojogan import finetune as jft
from jojogan import invert as jinv
from jojogan import mixing as jmix
from jojogan import style_model as jsm
from jojogan import stylize as jst
from jojogan.devices import PRECISIONS
from jojogan.images import DEFAULT_MIN_SIDE, check_output_budget, image_grid

from . import host
from . import sockets as S
from .common import (
    _STYLE_MODEL,
    CATEGORY,
    INT_MAX,
    _default,
    _images,
    _min_side,
    _need,
    _node_errors,
    _optional,
    _out,
    _queue_check,
)

PREVIEW_EVERY = 25  # steps between live previews in Finetune and optimisation inversion


NOTEBOOK_MEAN_SAMPLES = 10_000  # the notebook's mean_latent(10000), Sample Styled's truncation


# Tooltips shared by several nodes.
_PRECISION = (
    "float32: exact. tf32 (CUDA) and bf16 (autocast) are faster on GPUs with reduced precision "
    "(bf16 moved a fine-tune step's loss ~0.1% and its gradient ~2.5% in our tests)."
)


_LATENT = "Codes of the aligned faces to stylize (Invert)."


def _min_reference_side(g: torch.nn.Module) -> int:
    """The smallest reference side Build Mixed Dataset and Finetune take: the images module's
    minimum (`DEFAULT_MIN_SIDE`), or the generator's own size when that is smaller."""
    return min(DEFAULT_MIN_SIDE, int(g.size))


def _codes_fit(display: str, name: str, lat: S.Latents, g: torch.nn.Module) -> None:
    """Codes made for this generator: [B, n_latent, style_dim]."""
    want = (int(g.n_latent), int(g.style_dim))
    if lat.w.dim() != 3 or tuple(lat.w.shape[1:]) != want:
        raise ValueError(
            f"{display}: input '{name}' holds codes {list(lat.w.shape)} but this {g.size} px "
            f"generator takes [B, {want[0]}, {want[1]}]; invert with the same base generator"
        )


def _layer_range(n_layers: int, start: int, end: int, display: str) -> tuple[int, int] | None:
    """Widgets layer_start/layer_end (-1 = last) -> the core's inclusive range, None = all."""
    end = n_layers - 1 if end < 0 else end
    if start == 0 and end == n_layers - 1:
        return None
    if not 0 <= start <= end < n_layers:
        raise ValueError(
            f"{display}: layer_start/layer_end ({start}, {end}) must satisfy 0 <= start <= end "
            f"< {n_layers} (the generator's synthesis layers)"
        )
    return (start, end)


def _to(codes: torch.Tensor | list, device: torch.device) -> torch.Tensor | list:
    if isinstance(codes, torch.Tensor):
        return codes.to(device)
    return [c.to(device) for c in codes]


@contextlib.contextmanager
def _training():
    """Gradients on, even inside ComfyUI's inference_mode (Finetune, optimisation inversion)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def _normal(t: torch.Tensor) -> torch.Tensor:
    """A tensor usable by autograd (ComfyUI hands over inference-mode tensors); call inside
    :func:`_training`."""
    return t.clone() if t.is_inference() else t


def _references(
    display: str, references: Any, latent: Any, g: torch.nn.Module
) -> tuple[torch.Tensor, S.Latents]:
    """The style references (IMAGE -> core images) and their codes, one code per image, made for
    generator ``g``; references at least `_min_reference_side` px."""
    lat = _need(display, "latent", latent, S.Latents, S.LATENT)
    refs = _images(display, "references", references)
    if refs.shape[0] != len(lat):
        raise ValueError(
            f"{display}: {refs.shape[0]} references but {len(lat)} latents; invert the same "
            "references"
        )
    _min_side(display, "references", refs, _min_reference_side(g), g)
    _codes_fit(display, "latent", lat, g)
    return refs, lat


def _preview_every() -> tuple:
    return (
        "INT",
        {
            "default": PREVIEW_EVERY,
            "min": 0,
            "max": 10_000,
            "tooltip": "Show the current result inside the node every N steps (0 = progress bar "
            "only). Each preview costs one generator forward pass.",
        },
    )


class Invert:
    DISPLAY = "JoJoGAN Invert"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "invert"
    RETURN_TYPES = (S.LATENT, "IMAGE")
    RETURN_NAMES = ("latent", "reconstruction")
    OUTPUT_TOOLTIPS = (
        "The codes, for Build Mixed Dataset (references) or Stylize (faces).",
        "What the base generator draws from the codes: check the inversion here.",
    )
    DESCRIPTION = (
        "Invert aligned faces into the generator's W+ space (JoJoGAN step 1): encoder "
        "(e4e/ReStyle), optimisation (from the encoder's codes when an encoder is connected; "
        "live preview), the mean code (extreme references), or a blend with it. objective "
        "'edges' matches the image's edges only, for a stylized reference whose colours and "
        "textures no photo face has."
    )
    VALIDATE_INPUTS = _queue_check("blend_layers")

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jinv.invert)
        return {
            "required": {
                "generator": (S.GENERATOR, {"tooltip": "The base generator to invert into."}),
                "method": (
                    list(jinv.METHODS),
                    {
                        "tooltip": "encoder: e4e/ReStyle, fast (needs 'encoder'). optimize: "
                        "Adam on the codes to match the image (from the encoder's codes when "
                        "one is connected). mean: the mean code, for references that are not "
                        "faces (Sec. 4). blend: the inversion in 'blend_layers', the mean "
                        "code elsewhere (virtual inverter, Sec. 5.1)."
                    },
                ),
                "steps": (
                    "INT",
                    {
                        "default": d("steps"),
                        "min": 1,
                        "max": 100_000,
                        "tooltip": "Optimisation steps (method optimize; blend without an "
                        "encoder).",
                    },
                ),
                "lr": (
                    "FLOAT",
                    {
                        "default": d("lr"),
                        "min": 1e-5,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "Optimisation learning rate (0.01 when refining an "
                        "encoder's codes).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the samples behind the mean code (mean, blend, and "
                        "optimisation without an encoder).",
                    },
                ),
                "n_iters": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 100,
                        "tooltip": "ReStyle refinement iterations; 0 = its default (5). Leave "
                        "at 0 for e4e.",
                    },
                ),
                "blend_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "method blend: the W+ layers that keep the inversion, e.g. "
                        "'0-6' (pose and face shape); the others take the mean code. Leave it "
                        "empty with the other methods (a list there is refused, not ignored).",
                    },
                ),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "Aligned faces (Align Faces, Toy Render)."}),
                "encoder": (
                    S.ENCODER,
                    {
                        "tooltip": "Load Encoder, or the toy model's. Needed by method "
                        "encoder; with optimize, the starting point."
                    },
                ),
                "discriminator": (
                    S.DISCRIMINATOR,
                    {
                        "tooltip": "Optional, for optimize with objective pixel: its features "
                        "are matched too (sharper details)."
                    },
                ),
                "objective": (
                    list(jinv.OBJECTIVES),
                    {
                        "tooltip": "What optimisation matches: pixel (colours, plus the "
                        "discriminator's features when connected) or edges (luminance edges "
                        "only: for stylized references)."
                    },
                ),
                "preview_every": _preview_every(),
            },
        }

    @_node_errors(DISPLAY)
    def invert(
        self,
        generator,
        method,
        steps,
        lr,
        seed,
        n_iters,
        blend_layers,
        images=None,
        encoder=None,
        discriminator=None,
        objective="pixel",
        preview_every=PREVIEW_EVERY,
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        g = gen.generator
        enc = _optional(self.DISPLAY, "encoder", encoder, S.EncoderModel, S.ENCODER, "encoder")
        disc = _optional(
            self.DISPLAY,
            "discriminator",
            discriminator,
            S.DiscriminatorModel,
            S.DISCRIMINATOR,
            "discriminator",
        )
        x = None
        if images is not None:
            x = _images(self.DISPLAY, "images", images)
            _min_side(self.DISPLAY, "images", x, _min_reference_side(g), g)
        optimise = jinv.optimises(method, enc)
        bar = host.Progress(steps if optimise else 1)

        def progress(step, loss):
            host.check_interrupted()
            bar.update(step)

        def preview(step, image):
            bar.update(step, image[:4])

        with host.on_device(g, enc, disc if optimise else None) as device, _training():
            w = jinv.invert_with(
                method,
                None if x is None else _normal(x).to(device),
                g,
                encoder=enc,
                discriminator=disc,
                blend_layers=blend_layers,
                objective=objective,
                n_iters=n_iters,
                steps=steps,
                lr=lr,
                seed=seed,
                progress=progress,
                preview=preview,
                preview_every=preview_every,
                mean_cache=gen.mean_cache,
            )
            recon = jst.stylize(g, w)
        bar.update(bar.total)
        lat = S.Latents(w.detach().to(host.offload_device()), None, method)
        return (lat, _out(recon, "reconstruction"))


class BuildMixedDataset:
    DISPLAY = "JoJoGAN Build Mixed Dataset"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "build"
    RETURN_TYPES = (S.DATASET, "IMAGE")
    RETURN_NAMES = ("dataset", "preview")
    OUTPUT_TOOLTIPS = (
        "The paired set's recipe, for Finetune.",
        "Mixed codes drawn by the base generator: the faces Finetune will map to the reference.",
    )
    DESCRIPTION = (
        "The paired set of Eq. 1: s_i = M*s + (1-M)*s(FC(z_i)), the reference's code mixed with "
        "random faces' codes. preset: full (takes the reference's colours), preserve_color, the "
        "paper's X and C; custom: 'layers'. Next: Finetune."
    )
    VALIDATE_INPUTS = _queue_check("layers")

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jft.FinetuneSettings)
        return {
            "required": {
                "generator": (S.GENERATOR, {"tooltip": "The base generator."}),
                "references": (
                    "IMAGE",
                    {"tooltip": "The aligned style reference(s): the images that were inverted."},
                ),
                "latent": (S.LATENT, {"tooltip": "The references' codes (Invert)."}),
                "space": (
                    list(jmix.SPACES),
                    {
                        "tooltip": "w+: mix W+ layers (18 at 1024 px); s: mix S-space "
                        "modulation layers (26 at 1024 px), finer control."
                    },
                ),
                "preset": (
                    [*jmix.PRESETS, "custom"],
                    {
                        "tooltip": "Which layers take random faces' codes (the rest keep the "
                        "reference's): full = the released default, the style's colours too; "
                        "preserve_color = the released colour-keeping mask; X and C = the "
                        "paper's sets (C with Finetune's grayscale); custom = 'layers'."
                    },
                ),
                "layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "preset custom: the layers that take random faces' codes, "
                        "e.g. '7-17' or '9,11,15,16,17'; the others keep the reference's. Leave "
                        "it empty with the other presets (a list there is refused, not ignored).",
                    },
                ),
                "blend": (
                    "FLOAT",
                    {
                        "default": d("blend"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "How far the mixed layers go to the random faces' codes: 1 "
                        "= fully (the notebook's style strength 1); lower keeps part of the "
                        "reference's code there.",
                    },
                ),
                "preview_count": (
                    "INT",
                    {
                        "default": 4,
                        "min": 0,
                        "max": 64,
                        "tooltip": "How many mixed codes to draw in the preview (0 = none).",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the preview's random faces (Finetune draws its own "
                        "each step from its seed).",
                    },
                ),
            }
        }

    @_node_errors(DISPLAY)
    def build(
        self, generator, references, latent, space, preset, layers, blend, preview_count, seed
    ):
        g = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR).generator
        refs, lat = _references(self.DISPLAY, references, latent, g)
        settings = jft.mixing_from_widgets(
            g, space=space, preset=preset, layers=layers, blend=blend, seed=seed
        )
        n = int(preview_count)
        if n:
            check_output_budget(
                n, g.size, g.size, what=f"{self.DISPLAY}: 'preview_count' {n} at {g.size} px"
            )
        mask = settings.mask(g)
        ds = S.MixedDataset(
            refs.to(host.offload_device()), lat, space, settings.preset, settings.layers, blend
        )
        if n == 0:
            prev = torch.zeros(1, g.size, g.size, 3)
            return (ds, prev)
        with host.on_device(g) as device:
            mixed = jft.mixed_samples(g, lat.w[:1].to(device), space, mask, n, int(seed))
            return (ds, _out(jst.stylize(g, mixed), "preview"))


class Finetune:
    DISPLAY = "JoJoGAN Finetune"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "finetune"
    RETURN_TYPES = (S.STYLE_MODEL, "IMAGE")
    RETURN_NAMES = ("style_model", "preview")
    OUTPUT_TOOLTIPS = (
        "The fine-tuned generator, for Stylize, Interpolate Style, Sample Styled, Save.",
        "The references' codes drawn by the fine-tuned generator.",
    )
    DESCRIPTION = (
        "Fine-tune a copy of the generator so that G(s_i) ~= the reference (Eq. 2). With "
        "'references' and 'latent' connected it runs the released JoJoGAN notebook's recipe "
        "exactly (steps, strength, preserve_color, seed: the notebook's run after "
        "torch.manual_seed(seed)); with a 'dataset' from Build Mixed Dataset, that node's "
        "paired set (S space, the paper's sets, custom layers). The other widgets (identity "
        "loss, taps, noise, ...) are marked advanced. Shows the current stylization every "
        "'preview_every' steps; Cancel stops it within a step. Next: Stylize."
    )
    VALIDATE_INPUTS = _queue_check("feature_layers", "train_layers")

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jft.FinetuneSettings)
        rel = jft.FinetuneSettings.released()
        adv = {"advanced": True}
        return {
            "required": {
                "generator": (S.GENERATOR, {"tooltip": "The base generator (a copy is tuned)."}),
                "discriminator": (
                    S.DISCRIMINATOR,
                    {"tooltip": "The base model's discriminator: its frozen features are the loss"},
                ),
                "steps": (
                    "INT",
                    {
                        "default": rel.steps,
                        "min": 1,
                        "max": jft.MAX_STEPS,
                        "tooltip": "Fine-tune steps (the notebook's num_iter, 300); the paper "
                        "uses 200-500. More = stronger style and more of the reference's features.",
                    },
                ),
                "lr": (
                    "FLOAT",
                    {
                        "default": rel.lr,
                        "min": 1e-6,
                        "max": 1.0,
                        "step": 0.0001,
                        "tooltip": "Adam learning rate (the notebook's 2e-3).",
                        **adv,
                    },
                ),
                "grayscale": (
                    "BOOLEAN",
                    {
                        "default": rel.grayscale,
                        "tooltip": "Compare luminance only, so the reference's colours are not "
                        "learnt (with colour-preserving presets such as C). Not in the notebook.",
                        **adv,
                    },
                ),
                "id_weight": (
                    "FLOAT",
                    {
                        "default": rel.id_weight,
                        "min": 0.0,
                        "max": 1e5,
                        "step": 100.0,
                        "tooltip": "Weight of the ArcFace identity loss (2000-5000 in the "
                        "paper); needs the 'arcface' input. 0 = off (the notebook).",
                        **adv,
                    },
                ),
                "feature_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "Discriminator taps compared, e.g. '1,3,4,5'; empty = the "
                        "notebook's taps 1,3,4,5 (as far as the discriminator has them).",
                        **adv,
                    },
                ),
                "noise_mode": (
                    list(jft.NOISE_MODES),
                    {
                        "default": rel.noise_mode,
                        "tooltip": "Noise inputs while training: random = fresh noise each step "
                        "(the notebook); const = the stored noise; none = zero.",
                        **adv,
                    },
                ),
                "refs_per_chunk": (
                    "INT",
                    {
                        "default": d("refs_per_chunk"),
                        "min": 1,
                        "max": 64,
                        "tooltip": "References per forward pass: fewer use less memory; the "
                        "result is the same (gradients are accumulated).",
                        **adv,
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the random faces and noise: the notebook's run "
                        "after torch.manual_seed(seed); the same seed gives the same model.",
                    },
                ),
            },
            "optional": {
                "dataset": (
                    S.DATASET,
                    {
                        "tooltip": "Instead of references + latent: a paired set from Build "
                        "Mixed Dataset (S space, the paper's sets, custom layers)."
                    },
                ),
                "arcface": (
                    S.ARCFACE,
                    {"tooltip": "Load ArcFace, for id_weight > 0."},
                ),
                "precision": (
                    list(PRECISIONS),
                    {"default": "float32", "tooltip": _PRECISION, **adv},
                ),
                "train_layers": (
                    "STRING",
                    {
                        "default": "",
                        "tooltip": "S layers whose weights are trained, e.g. '8-13' (the finest "
                        "two resolutions of the 64 px toy model); empty = all (the notebook)",
                        **adv,
                    },
                ),
                "structure_weight": (
                    "FLOAT",
                    {
                        "default": d("structure_weight"),
                        "min": 0.0,
                        "max": 1e5,
                        "step": 0.05,
                        "tooltip": "random faces keep the edges the base model draws for them "
                        "(less of the reference's outline on other faces); 0 = off (the paper)",
                        **adv,
                    },
                ),
                "gram_weight": (
                    "FLOAT",
                    {
                        "default": d("gram_weight"),
                        "min": 0.0,
                        "max": 1e5,
                        "step": 1.0,
                        "tooltip": "random faces take the reference's texture statistics (Gram "
                        "matrices of the discriminator's first layers); 0 = off (the paper)",
                        **adv,
                    },
                ),
                "preview_every": _preview_every(),
                "references": (
                    "IMAGE",
                    {"tooltip": "The aligned style reference(s) (the notebook's targets)."},
                ),
                "latent": (
                    S.LATENT,
                    {"tooltip": "Their codes from Invert (the notebook's latents)."},
                ),
                "strength": (
                    "FLOAT",
                    {
                        "default": rel.blend,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "The notebook's style strength (its alpha slider): how far "
                        "the mixed layers go to random faces' codes; 1 = fully.",
                    },
                ),
                "preserve_color": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "The notebook's preserve_color: mix only W+ layers "
                        "9,11,15,16,17, so the outputs keep their own colours (1024 px models).",
                    },
                ),
            },
        }

    @_node_errors(DISPLAY)
    def finetune(
        self,
        generator,
        discriminator,
        dataset=None,
        arcface=None,
        references=None,
        latent=None,
        **widgets,
    ):
        gen = _need(self.DISPLAY, "generator", generator, S.GeneratorModel, S.GENERATOR)
        disc = _need(
            self.DISPLAY, "discriminator", discriminator, S.DiscriminatorModel, S.DISCRIMINATOR
        )
        arc = _optional(self.DISPLAY, "arcface", arcface, S.ArcFaceModel, S.ARCFACE, "model")
        g, d = gen.generator, disc.discriminator
        refs, lat, mixing = self._paired_set(dataset, references, latent, g)
        settings = jft.settings_from_widgets(g, d, mixing=mixing, arcface=arc, **widgets)
        bar = host.Progress(settings.steps)

        def callback(step, loss, preview):
            host.check_interrupted()
            bar.update(step, preview)

        with host.on_device(g, d, arc) as device, _training():
            codes = _to(lat.codes(settings.space), device)
            codes = _normal(codes) if isinstance(codes, torch.Tensor) else list(map(_normal, codes))
            shown = None
            if settings.preview_every:
                shown = jft.preview_codes(g, codes, lat.w.to(device), settings)
            result = jft.finetune(
                g,
                d,
                _normal(refs.to(device)),
                codes,
                settings,
                arcface=arc,
                callback=callback,
                preview_codes=shown,
            )
            preview = jst.stylize(result.generator, lat.w.to(device))
            result.generator.to(host.storage_device())
        style = jsm.StyleModel(
            result.generator, {"settings": settings.to_dict(), "recipe": settings.recipe()}
        )
        return (S.StyleModelSocket(style, gen, result), _out(preview, "preview"))

    def _paired_set(self, dataset, references, latent, g):
        """The references, their codes and the paired set's mixing (None: the released recipe's,
        from the widgets): a Build Mixed Dataset set, or 'references' + 'latent', checked
        against generator ``g``."""
        if dataset is not None:
            ds = _need(self.DISPLAY, "dataset", dataset, S.MixedDataset, S.DATASET)
            _codes_fit(self.DISPLAY, "dataset", ds.latents, g)
            if references is not None or latent is not None:
                raise ValueError(
                    f"{self.DISPLAY}: connect either 'dataset' or 'references' + 'latent', not both"
                )
            mixing = dict(space=ds.space, preset=ds.preset, layers=ds.layers, blend=float(ds.blend))
            return ds.references, ds.latents, mixing
        if references is None or latent is None:
            raise ValueError(
                f"{self.DISPLAY}: connect 'references' (the aligned style images) and 'latent' "
                "(their codes from Invert), or a 'dataset' from Build Mixed Dataset"
            )
        refs, lat = _references(self.DISPLAY, references, latent, g)
        return refs.to(host.offload_device()), lat, None


def _stylize_inputs(extra: dict, optional: dict | None = None) -> dict:
    d = functools.partial(_default, jst.stylize)
    req = {
        "style_model": (S.STYLE_MODEL, {"tooltip": _STYLE_MODEL}),
        "latent": (S.LATENT, {"tooltip": _LATENT}),
        **extra,
        "layer_start": (
            "INT",
            {
                "default": 0,
                "min": 0,
                "max": 64,
                "tooltip": "First synthesis layer that takes the style (0 = from the coarsest).",
            },
        ),
        "layer_end": (
            "INT",
            {
                "default": -1,
                "min": -1,
                "max": 64,
                "tooltip": "Last synthesis layer that takes the style (-1 = the last).",
            },
        ),
        "batch_size": (
            "INT",
            {
                "default": d("batch_size"),
                "min": 1,
                "max": 256,
                "tooltip": "Faces per forward pass: memory against speed; same result.",
            },
        ),
    }
    return {"required": req, **({"optional": optional} if optional else {})}


_INTENSITY = (
    "Style strength by feature interpolation (Sec. 4), no retraining: 0 = the base generator "
    "(the inversion), 1 = the fine-tuned one."
)


class Stylize:
    DISPLAY = "JoJoGAN Stylize"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "stylize"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The stylized faces (aligned crops; Paste Back puts them in the photo).",)
    DESCRIPTION = (
        "G_new(codes) for inverted faces (JoJoGAN step 4). intensity < 1 blends the base and "
        "fine-tuned generators' features per layer (Sec. 4); layer_start/layer_end limit the "
        "style to a range of synthesis layers (-1 = last)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jst.stylize)
        return _stylize_inputs(
            {
                "intensity": (
                    "FLOAT",
                    {
                        "default": d("intensity"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": _INTENSITY,
                    },
                ),
                "noise_mode": (
                    ["const", "random", "none"],
                    {
                        "tooltip": "const (default): the stored noise, what the inversion was "
                        "fitted with, the same on every frame of a video; random: the notebook's "
                        "(generator(w, input_is_latent=True)), drawn after "
                        "torch.manual_seed(seed); none: no noise (smoother)."
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the noise when noise_mode is random (the same seed "
                        "gives the same images).",
                    },
                ),
            },
            optional={
                "precision": (list(PRECISIONS), {"default": "float32", "tooltip": _PRECISION})
            },
        )

    @_node_errors(DISPLAY)
    def stylize(
        self,
        style_model,
        latent,
        intensity,
        noise_mode,
        seed,
        layer_start,
        layer_end,
        batch_size,
        precision="float32",
    ):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        lat = _need(self.DISPLAY, "latent", latent, S.Latents, S.LATENT)
        tuned = sm.generator
        _codes_fit(self.DISPLAY, "latent", lat, tuned)
        layers = _layer_range(int(tuned.n_styles), layer_start, layer_end, self.DISPLAY)
        b, size = len(lat), int(tuned.size)
        check_output_budget(
            b, size, size, what=f"{self.DISPLAY}: {b} faces in 'latent' at {size} px"
        )
        with host.on_device(tuned, sm.base.generator) as device:
            out = jst.stylize(
                tuned,
                lat.w.to(device),
                base=sm.base.generator,
                intensity=float(intensity),
                layers=layers,
                batch_size=int(batch_size),
                noise_mode=noise_mode,
                seed=int(seed),
                rng="global",  # the notebook's draws after torch.manual_seed(seed), restored
                precision=precision,
            )
            return (_out(out, "images"),)


class InterpolateStyle:
    DISPLAY = "JoJoGAN Interpolate Style"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "interpolate"
    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("images", "grid")
    OUTPUT_TOOLTIPS = (
        "count images per input, input by input (input 1 at every intensity, then input 2...).",
        "One picture: a row per input, a column per intensity (weakest on the left).",
    )
    DESCRIPTION = (
        "An intensity sweep by feature interpolation, no retraining: 'count' intensities from "
        "intensity_from to intensity_to for every input. 'grid' lays them out with one row per "
        "input and one column per intensity."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return _stylize_inputs(
            {
                "intensity_from": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "First intensity (0 = the base generator). " + _INTENSITY,
                    },
                ),
                "intensity_to": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "Last intensity (1 = the fine-tuned generator).",
                    },
                ),
                "count": (
                    "INT",
                    {
                        "default": 5,
                        "min": 1,
                        "max": 64,
                        "tooltip": "How many intensities, evenly spaced from first to last.",
                    },
                ),
            }
        )

    @_node_errors(DISPLAY)
    def interpolate(
        self,
        style_model,
        latent,
        intensity_from,
        intensity_to,
        count,
        layer_start,
        layer_end,
        batch_size,
    ):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        lat = _need(self.DISPLAY, "latent", latent, S.Latents, S.LATENT)
        tuned = sm.generator
        _codes_fit(self.DISPLAY, "latent", lat, tuned)
        layers = _layer_range(int(tuned.n_styles), layer_start, layer_end, self.DISPLAY)
        n, b, size = int(count), len(lat), int(tuned.size)
        # the images and the grid of the same images
        check_output_budget(
            2 * n * b, size, size, what=f"{self.DISPLAY}: 'count' {n} x {b} faces at {size} px"
        )
        alphas = [
            float(intensity_from)
            + (float(intensity_to) - float(intensity_from)) * k / max(n - 1, 1)
            for k in range(n)
        ]
        with host.on_device(tuned, sm.base.generator) as device:
            out = jst.interpolate(  # [B*count,3,H,W], input-major
                tuned,
                lat.w.to(device),
                alphas,
                base=sm.base.generator,
                layers=layers,
                batch_size=int(batch_size),
            )
        grid = image_grid(out.cpu(), cols=n, pad=max(2, out.shape[-1] // 64), fill=1.0)
        return (_out(out, "images"), _out(grid[None], "grid"))


class SampleStyled:
    DISPLAY = "JoJoGAN Sample Styled"
    CATEGORY = f"{CATEGORY}/pipeline"
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Random faces in the style.",)
    DESCRIPTION = (
        "Random stylized faces from z, as the notebook draws them: generator([z], truncation, "
        "truncation_latent=the base's mean of 10,000 w), z and noise drawn after "
        "torch.manual_seed(seed). What the style does to any face."
    )

    @classmethod
    def INPUT_TYPES(cls):
        d = functools.partial(_default, jst.sample)
        return {
            "required": {
                "style_model": (S.STYLE_MODEL, {"tooltip": _STYLE_MODEL}),
                "count": (
                    "INT",
                    {"default": 4, "min": 1, "max": 256, "tooltip": "How many faces to draw."},
                ),
                "seed": (
                    "INT",
                    {
                        "default": d("seed"),
                        "min": 0,
                        "max": INT_MAX,
                        "tooltip": "Seed of the random faces.",
                    },
                ),
                "truncation": (
                    "FLOAT",
                    {
                        "default": d("truncation"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": "Pull toward the average face: 1 = none, lower = more "
                        "typical faces (0.7 is StyleGAN2's usual).",
                    },
                ),
                "intensity": (
                    "FLOAT",
                    {
                        "default": d("intensity"),
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.05,
                        "tooltip": _INTENSITY,
                    },
                ),
            },
            "optional": {
                "noise_mode": (
                    ["random", "const", "none"],
                    {
                        "default": "random",
                        "tooltip": "random (default): the notebook's samples, noise drawn after "
                        "torch.manual_seed(seed); const: the stored noise; none: no noise.",
                    },
                ),
            },
        }

    @_node_errors(DISPLAY)
    def sample(self, style_model, count, seed, truncation, intensity, noise_mode="random"):
        sm = _need(self.DISPLAY, "style_model", style_model, S.StyleModelSocket, S.STYLE_MODEL)
        base = sm.base
        size = int(sm.generator.size)
        check_output_budget(count, size, size, what=f"{self.DISPLAY}: 'count' {count} at {size} px")
        with host.on_device(sm.generator, base.generator) as device:
            # the notebook's truncation_latent: original_generator.mean_latent(10000), here drawn
            # from its own seed (the notebook's after torch.manual_seed(0)), cached per base
            key = ("mean_latent", NOTEBOOK_MEAN_SAMPLES, 0)
            if key not in base.mean_cache:
                with torch.no_grad():
                    base.mean_cache[key] = base.generator.mean_latent(
                        NOTEBOOK_MEAN_SAMPLES, seed=0
                    ).cpu()
            out = jst.sample(
                sm.generator,
                int(count),
                base=base.generator,
                seed=int(seed),
                rng="global",  # the notebook's draws after torch.manual_seed(seed), restored
                truncation=float(truncation),
                mean_latent=base.mean_cache[key].to(device),
                noise_mode=noise_mode,
                intensity=float(intensity),
            )
            return (_out(out, "images"),)

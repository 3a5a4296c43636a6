"""Custom socket types: the values that travel between JoJoGAN nodes.

ComfyUI matches sockets by their type string; these strings are the contract with saved
workflows, so they never change. The payloads are small dataclasses around the core's objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

GENERATOR = "JOJOGAN_GENERATOR"
DISCRIMINATOR = "JOJOGAN_DISCRIMINATOR"
ENCODER = "JOJOGAN_ENCODER"
ARCFACE = "JOJOGAN_ARCFACE"
LATENT = "JOJOGAN_LATENT"
DATASET = "JOJOGAN_DATASET"
FACES = "JOJOGAN_FACES"
STYLE_MODEL = "JOJOGAN_STYLE_MODEL"
FACE_DETECTOR = "JOJOGAN_FACE_DETECTOR"

ALL_TYPES = (
    GENERATOR,
    DISCRIMINATOR,
    ENCODER,
    ARCFACE,
    LATENT,
    DATASET,
    FACES,
    STYLE_MODEL,
    FACE_DETECTOR,
)


@dataclass
class GeneratorModel:
    """A base StyleGAN2 generator (eval, frozen), its mean W and where it came from."""

    generator: nn.Module
    latent_avg: torch.Tensor | None
    source: str
    mean_cache: dict = field(default_factory=dict, repr=False)  # invert()'s mean-code cache


@dataclass
class DiscriminatorModel:
    discriminator: nn.Module
    source: str


@dataclass
class EncoderModel:
    encoder: nn.Module
    source: str


@dataclass
class ArcFaceModel:
    model: nn.Module
    source: str


@dataclass
class FaceDetectorModel:
    detector: Any
    name: str


@dataclass
class Latents:
    """Inverted codes: W+ ``[B,n_latent,D]``; for S-space blends also S codes (``[B,C]`` each)."""

    w: torch.Tensor
    styles: list[torch.Tensor] | None = None
    method: str = ""

    def __len__(self) -> int:
        return int(self.w.shape[0])

    def codes(self, space: str) -> torch.Tensor | list[torch.Tensor]:
        if space == "s" and self.styles is not None:
            return self.styles
        return self.w


@dataclass
class MixedDataset:
    """JoJoGAN's paired set (Eq. 1): the references, their codes and the mixing settings."""

    references: torch.Tensor  # [R,3,H,W] in [-1,1]
    latents: Latents
    space: str
    preset: str | None
    layers: tuple[int, ...] | None
    blend: float


@dataclass
class AlignedFaces:
    """Aligned faces with their transforms: ``faces[k]`` came from photo ``photo_index[k]``."""

    faces: list[Any]
    photo_index: list[int]
    size: int

    def __len__(self) -> int:
        return len(self.faces)


@dataclass
class StyleModelSocket:
    """A fine-tuned generator (`jojogan.style_model.StyleModel`) and the base it came from."""

    style: Any
    base: GeneratorModel
    result: Any = None  # the FinetuneResult when made in this session (for its metadata)

    @property
    def generator(self) -> nn.Module:
        return self.style.generator

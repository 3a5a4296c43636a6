"""The known pretrained files: one :class:`WeightFile` per file (name, kind, folder, public
sources, expected size and layout, licence) in :data:`REGISTRY`."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

MB = 1 << 20
HF_DEFAULT_ENDPOINT = "https://huggingface.co"


# ------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Source:
    """Where a file can be found. kind: "hf" (ref = "owner/repo:path/in/repo", fetched with
    huggingface_hub), "gdrive" (ref = a Google Drive file id; often a quota page), "url" (ref = a
    direct URL). note: where this source was confirmed (repository and file)."""

    kind: str
    ref: str
    note: str = ""

    @property
    def repo(self) -> str:
        return self.ref.partition(":")[0] if self.kind == "hf" else ""

    @property
    def path(self) -> str:
        return self.ref.partition(":")[2] if self.kind == "hf" else ""

    def url(self, endpoint: str | None = None) -> str:
        """A browser/plain-HTTP URL (Hub files: ``<endpoint>/<repo>/resolve/main/<path>``, with
        the public Hub unless ``endpoint`` is given)."""
        if self.kind == "hf":
            base = (endpoint or HF_DEFAULT_ENDPOINT).rstrip("/")
            return f"{base}/{self.repo}/resolve/main/{urllib.parse.quote(self.path)}"
        if self.kind == "gdrive":
            # drive.usercontent with confirm=t skips the "cannot scan for viruses" page of large
            # files; a quota page can still come back (refused with a clear message).
            return (
                "https://drive.usercontent.google.com/download?"
                f"id={self.ref}&export=download&confirm=t"
            )
        return self.ref

    def describe(self) -> str:
        if self.kind == "hf":
            return f"Hugging Face {self.repo} (file {self.path})"
        if self.kind == "gdrive":
            return f"Google Drive id {self.ref} (https://drive.google.com/file/d/{self.ref}/view)"
        return self.ref


@dataclass(frozen=True)
class WeightFile:
    """One known file. approx_size: bytes (estimated from parameter counts unless a source
    states it); min_size: smaller files are refused (truncated downloads). layout: the
    `jojogan.checkpoints.detect_layout` names accepted (None: any file the safe loader reads).
    sha256: None where no source states it (all of them so far). licence: one line the
    download command and the missing-file message show ("" where none is recorded)."""

    name: str
    kind: str
    description: str
    sources: tuple[Source, ...]
    folder: str = "jojogan"
    approx_size: int | None = None
    min_size: int = 1 * MB
    layout: tuple[str, ...] | None = None
    sha256: str | None = None
    licence: str = ""
    extra: dict = field(default_factory=dict, compare=False)


# NVIDIA's FFHQ StyleGAN2 weights (converted by rosinality) are under NVIDIA's licence; its text:
# NVlabs/stylegan2 LICENSE.txt.
NVIDIA_NC = (
    "NVIDIA's FFHQ weights, under the Nvidia Source Code License-NC: non-commercial use only "
    "(https://nvlabs.github.io/stylegan2/license.html)"
)

# Where each source was confirmed (read with the project's code-search tools; no network here).
_NB_NEW = "mchong6/JoJoGAN stylize.ipynb drive_ids (commit f58c629)"
_NB_OLD = "mchong6/JoJoGAN stylize.ipynb drive_ids (commit 030ba20)"
_E4E_README = "omertov/encoder4editing README.md, Pretrained Models"
_RESTYLE_README = "yuval-alaluf/restyle-encoder README.md, Pretrained Models"
_SPACE = (
    "the akhaliq/JoJoGAN Space's app.py: hf_hub_download(repo_id=..., filename=...), read in a "
    "copy of it in the code index (the copy's repository is not named there)"
)

_STYLE_IDS = {
    "arcane_caitlyn": "1gOsDTiTPcENiFOrhmkkxJcTURykW1dRc",
    "arcane_caitlyn_preserve_color": "1cUTyjU-q98P75a8THCaO545RTwpVV-aH",
    "arcane_jinx": "1quQ8vPjYpUiXM4k1_KIwP4EccOefPpG_",
    "arcane_jinx_preserve_color": "1jElwHxaYPod5Itdy18izJk49K1nl4ney",
    "arcane_multi": "15V9s09sgaw-zhKp116VHigf5FowAy43f",
    "arcane_multi_preserve_color": "1enJgrC08NpWpx2XGBmLt1laimjpGCyfl",
    "sketch_multi": "1GdaeHGBGjBAFsWipTL0y-ssUiAqk8AxD",
    "disney": "1zbE2upakFUAx8ximYnLofFwfT8MilqJA",
    "disney_preserve_color": "1Bnh02DjfvN_Wm8c4JdOiNV4q9J7Z_tsi",
    "jojo": "13cR2xjIBj8Ga5jMO7gtxzIJj2PDsBYK4",
    "jojo_preserve_color": "1ZRwYLRytCEKi__eT2Zxv1IlV6BGVQ_K2",
    "jojo_yasuho": "1grZT3Gz1DLzFoJchAmoj3LoM9ew9ROX_",
    "jojo_yasuho_preserve_color": "1SKBu1h0iRNyeKBnya_3BBmLr4pkPeg_L",
    "art": "1a0QDEHwXQ6hE_FcYEyNMuv5r5UnRQLKT",
    "supergirl": "1L0y9IYgzLNzB-33xTpXpecsKU-t9DpVC",
    "supergirl_preserve_color": "1VmKGuvThWHym7YuayXxjv0fSn32lfDpE",
}
_STYLE_NOTEBOOK = {"supergirl": _NB_OLD, "supergirl_preserve_color": _NB_OLD}
# Released styles mirrored on the Hub by the akhaliq/JoJoGAN Space (none found for the others).
_STYLE_HUB = {
    "jojo_preserve_color": "akhaliq/JoJoGAN-jojo",
    "jojo_yasuho_preserve_color": "akhaliq/JoJoGAN-jojo",
    "disney_preserve_color": "akhaliq/jojogan-disney",
    "arcane_jinx_preserve_color": "akhaliq/jojo-gan-jinx",
    "arcane_caitlyn_preserve_color": "akhaliq/jojogan-arcane",
    "arcane_multi_preserve_color": "akhaliq/jojogan-arcane",
    "art": "akhaliq/jojo-gan-art",
}


def _registry() -> dict[str, WeightFile]:
    files = [
        WeightFile(
            "stylegan2-ffhq-config-f.pt",
            "stylegan2",
            "FFHQ StyleGAN2 1024 px, rosinality layout (g_ema, g, d, latent_avg)",
            (
                Source(
                    "hf",
                    "akhaliq/jojogan-stylegan2-ffhq-config-f:stylegan2-ffhq-config-f.pt",
                    "gradio-app/gradio guides/4)integrating_other_frameworks/"
                    "Gradio_and_Wandb_Integration.md (the JoJoGAN demo's hf_hub_download)",
                ),
                Source("gdrive", "1Yr7KuD959btpmcKGAUsbAk5rPjX2MytK", _NB_NEW),
                Source(
                    "gdrive",
                    "1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT",
                    f"{_E4E_README} (FFHQ StyleGAN); {_RESTYLE_README}",
                ),
            ),
            approx_size=364 * MB,  # g_ema + g (30.4 M) and d (22.5 M) params, float32
            min_size=100 * MB,
            layout=("rosinality", "rosinality-training"),
            licence=NVIDIA_NC,
        ),
        WeightFile(
            "e4e_ffhq_encode.pt",
            "encoder",
            "e4e FFHQ encoder (Tov et al. 2021) into W+ of the FFHQ generator",
            (
                Source(
                    "hf",
                    "AIRI-Institute/HairFastGAN:pretrained_models/encoder4editing/"
                    "e4e_ffhq_encode.pt",
                    "AIRI-Institute/HairFastGAN README.md (weights: the Hub repo's "
                    "pretrained_models/) and models/Embedding.py (this path)",
                ),
                Source("gdrive", "1o6ijA3PkcewZvwJJ73dJ0fxhndn0nnh7", _NB_NEW),
                Source("gdrive", "1cUv_reLE6k3604or78EranS7XzuVMWeO", _E4E_README),
            ),
            approx_size=1100 * MB,
            min_size=200 * MB,
            layout=("psp-encoder",),
        ),
        WeightFile(
            "restyle_psp_ffhq_encode.pt",
            "encoder",
            "ReStyle over pSp, FFHQ (Alaluf et al. 2021), iterative W+ encoder",
            (
                Source("gdrive", "1nbxCIVw9H3YnQsoIPykNEFwWJnHVHlVd", _NB_NEW),
                Source("gdrive", "1sw6I2lRIB0MpuJkpc8F5BJiSZrc0hjfE", _RESTYLE_README),
            ),
            approx_size=None,
            min_size=100 * MB,
            layout=("psp-encoder",),
        ),
        WeightFile(
            "model_ir_se50.pth",
            "arcface",
            "ArcFace IR-SE50 (TreB1eN InsightFace_Pytorch) for the identity loss",
            (
                Source(
                    "hf",
                    "Sanoojan/REFace:Other_dependencies/arcface/model_ir_se50.pth",
                    "a third-party copy (the REFace project's Hub repo), seen only in REFace's "
                    "download script in the code index (its repository is not named there); "
                    "the arcface layout is checked on download",
                ),
                Source(
                    "gdrive",
                    "1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn",
                    f"{_E4E_README} (IR-SE50 Model); {_RESTYLE_README}",
                ),
            ),
            approx_size=175 * MB,  # 43.8 M params
            min_size=50 * MB,
            layout=("arcface",),
        ),
        WeightFile(
            "detection_Resnet50_Final.pth",
            "detector",
            "RetinaFace-ResNet50 face detector (facexlib)",
            (
                # The official release first: a GitHub release has no quota, and the Hub copy is a
                # third party's (this file has no layout to check it against).
                Source(
                    "url",
                    "https://github.com/xinntao/facexlib/releases/download/v0.1.0/"
                    "detection_Resnet50_Final.pth",
                    "xinntao/facexlib facexlib/detection/__init__.py (init_detection_model)",
                ),
                Source(
                    "hf",
                    "camenduru/facexlib:detection_Resnet50_Final.pth",
                    "a third-party copy, used by adritoon/FaceA gfpgan_download.py",
                ),
            ),
            folder="facedetection",
            approx_size=105 * MB,
            min_size=50 * MB,
            layout=None,
        ),
    ]
    for style, gid in _STYLE_IDS.items():
        colour = " (colour-preserving)" if style.endswith("_preserve_color") else ""
        sources = [Source("gdrive", gid, _STYLE_NOTEBOOK.get(style, _NB_NEW))]
        if style in _STYLE_HUB:
            sources.insert(0, Source("hf", f"{_STYLE_HUB[style]}:{style}.pt", _SPACE))
        files.append(
            WeightFile(
                f"{style}.pt",
                "style",
                f"released JoJoGAN style '{style}'{colour}, {{'g': state_dict}} of the FFHQ "
                "generator",
                tuple(sources),
                approx_size=127 * MB,  # the 1024 px generator's 30.4 M params, float32
                min_size=60 * MB,
                layout=("jojogan-style",),
            )
        )
    return {f.name: f for f in files}


REGISTRY: dict[str, WeightFile] = _registry()


def _entry(name: str | os.PathLike) -> WeightFile | None:
    return REGISTRY.get(Path(name).name)

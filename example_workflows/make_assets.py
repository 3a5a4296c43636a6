"""Make the input files the bundled workflows load, and the workflows' template thumbnails.

    python example_workflows/make_assets.py                  # everything
    python example_workflows/make_assets.py --skip-toy       # all but the toy demo's thumbnail
    python example_workflows/make_assets.py --only video     # one part (repeatable): inputs,
                                                             # video, cards or toy

What it writes, all from public-domain photos that ship inside PyPI wheels (nothing is
downloaded; a missing source file is an error):

- ``inputs/jojogan_face.jpg``: scikit-image's ``skimage/data/astronaut.png`` (Eileen Collins,
  NASA), re-encoded as JPEG.
- ``inputs/jojogan_reference.jpg``: matplotlib's ``mpl-data/sample_data/grace_hopper.jpg``
  (Grace Hopper, U.S. Navy) through :func:`cartoon` (edge-preserving smoothing, a k-means colour
  palette, dark outlines).
- ``inputs/jojogan_reference_2.jpg``: the same photo mirrored, cropped closer and turned by a few
  degrees, through the same :func:`cartoon` with reference 1's palette (one style, a second
  view).
- ``inputs/jojogan_video.mp4``: ``jojogan_face.jpg`` under a slow camera move (zoom, pan, a small
  rotation): 48 frames at 24 fps (2 s), 448 x 336 px, H.264 (PyAV's libx264), no audio.
- ``<workflow>.jpg`` next to each workflow JSON, the thumbnail ComfyUI's template browser shows:
  for ``jojogan_toy_demo`` a real run of that workflow's pipeline on the shipped toy model (the
  nodes' settings, through the library; the slow part: about 3 minutes on two CPU cores); for the
  FFHQ workflows, whose weights cannot ship, a card with the workflow's own input images, what it
  does and the model files it needs (never an invented result).

``inputs/LICENSES.md`` (hand-written) states each file's source and licence. Needs Pillow and
numpy; scikit-image and matplotlib for ``inputs``; PyAV (``av``) for ``video``; torch and this
pack for ``toy``; ``video`` and ``cards`` read the images ``inputs`` wrote. A part whose packages
are missing stops with the package's name: run it where they are (e.g. ``--only video`` with
ComfyUI's Python, which has PyAV). Runs again give the same bytes for the same package versions.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INPUTS = HERE / "inputs"

FACE = "jojogan_face.jpg"
REFERENCE = "jojogan_reference.jpg"
REFERENCE_2 = "jojogan_reference_2.jpg"
VIDEO = "jojogan_video.mp4"
JPEG_QUALITY = 90

FPS = 24
FRAMES = 48  # 2 s
VIDEO_SIZE = (448, 336)  # width, height (even, for yuv420p)

THUMB_SIZE = (512, 384)
BACKGROUND = (246, 243, 236)
INK = (34, 34, 40)
MUTED = (96, 96, 104)
ACCENT = (196, 72, 44)


# ------------------------------------------------------------------------------------ sources


def _missing(what: str, package: str) -> SystemExit:
    return SystemExit(f"make_assets: {what} needs {package} (pip install {package})")


def astronaut() -> Image.Image:
    """scikit-image's astronaut.png (512x512), read from the installed wheel."""
    try:
        import skimage
    except ImportError:
        raise _missing("the face photo", "scikit-image") from None
    path = Path(skimage.__file__).parent / "data" / "astronaut.png"
    if not path.is_file():
        raise SystemExit(f"make_assets: {path} is missing (it ships in scikit-image's wheel)")
    return Image.open(path).convert("RGB")


def grace_hopper() -> Image.Image:
    """matplotlib's sample_data/grace_hopper.jpg (512x600), read from the installed wheel."""
    try:
        import matplotlib
    except ImportError:
        raise _missing("the style references", "matplotlib") from None
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise SystemExit(f"make_assets: {path} is missing (it ships in matplotlib's wheel)")
    return Image.open(path).convert("RGB")


# ---------------------------------------------------------------------------- cartoon filter


def _kmeans_palette(pixels: np.ndarray, k: int, iters: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(centres [k,3], labels [N]) of Lloyd's k-means, started from k pixels evenly spaced in
    lightness order (deterministic, no random draws)."""
    order = np.argsort(pixels[:, 0], kind="stable")
    centres = pixels[order[((np.arange(k) + 0.5) * len(order) / k).astype(int)]].copy()
    labels = np.zeros(len(pixels), dtype=np.int64)
    for _ in range(iters):
        d = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        labels = d.argmin(1)
        for j in range(k):
            members = pixels[labels == j]
            if len(members):
                centres[j] = members.mean(0)
    return centres, labels


def _smooth_lab(x: np.ndarray) -> np.ndarray:
    from skimage import color, restoration

    for _ in range(3):
        x = restoration.denoise_bilateral(x, sigma_color=0.06, sigma_spatial=3.0, channel_axis=-1)
    return color.rgb2lab(x)


def cartoon_palette(img: Image.Image, colours: int = 12) -> np.ndarray:
    """The cartoon's palette for ``img``: [colours, 3] CIELAB k-means centres of its smoothed
    pixels (every 7th pixel)."""
    x = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    return _kmeans_palette(_smooth_lab(x).reshape(-1, 3)[::7], colours)[0]


def cartoon(img: Image.Image, palette: np.ndarray | None = None) -> Image.Image:
    """A flat comic look: bilateral smoothing (edges kept), each pixel given the nearest colour
    of ``palette`` (CIELAB; default: :func:`cartoon_palette` of ``img``; pass one image's palette
    to draw another in the same colours) with the chroma raised, and dark ink lines where the
    photo has thin dark features (a difference of Gaussians of its gray image below a threshold;
    specks removed)."""
    try:
        from skimage import color, filters, morphology
    except ImportError:
        raise _missing("the cartoon filter", "scikit-image") from None
    x = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    lab = _smooth_lab(x)
    centres = cartoon_palette(img) if palette is None else palette
    flat = lab.reshape(-1, 3)
    d = ((flat[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    q = centres[d.argmin(1)].reshape(lab.shape)
    q[..., 1:] *= 1.2  # livelier colours
    out = np.clip(color.lab2rgb(q), 0.0, 1.0)
    gray = color.rgb2gray(x)
    dog = filters.gaussian(gray, sigma=1.2) - filters.gaussian(gray, sigma=1.2 * 1.6)
    lines = morphology.remove_small_objects(dog < -0.015, max_size=30)
    out[lines] = (0.10, 0.08, 0.12)
    return Image.fromarray((out * 255.0 + 0.5).astype(np.uint8))


def reference_2_view(photo: Image.Image) -> Image.Image:
    """Reference 2's view of the portrait: mirrored, turned 4 degrees, cropped closer."""
    m = ImageOps.mirror(photo)
    w, h = m.size
    m = m.rotate(4.0, resample=Image.BICUBIC, center=(w / 2, h * 0.4), fillcolor=(40, 44, 60))
    box = (46, 24, w - 46, 24 + (w - 92) * 6 // 5)  # 420 x 504, the face larger in frame
    return m.crop(box)


# ------------------------------------------------------------------------------------- video


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def video_frames(photo: Image.Image, n: int = FRAMES, size=VIDEO_SIZE) -> list[Image.Image]:
    """A slow camera move over ``photo``: the view narrows from 360 to 300 px (a 1.2x zoom),
    drifts 24 px right and 14 px up and turns by 3 degrees, eased in and out."""
    out_w, out_h = size
    frames = []
    for i in range(n):
        t = _ease(i / max(1, n - 1))
        view_w = 360.0 - 60.0 * t
        cx, cy = 222.0 + 24.0 * t, 148.0 - 14.0 * t
        a = math.radians(3.0 * t)
        s = view_w / out_w  # source px per output px
        ca, sa = math.cos(a) * s, math.sin(a) * s
        # output (u, v) -> source (x, y) = centre + R(a) * s * (u - W/2, v - H/2)
        coeffs = (
            ca,
            -sa,
            cx - ca * out_w / 2 + sa * out_h / 2,
            sa,
            ca,
            cy - sa * out_w / 2 - ca * out_h / 2,
        )
        frames.append(photo.transform(size, Image.AFFINE, coeffs, resample=Image.BICUBIC))
    return frames


def write_video(frames: Sequence[Image.Image], path: Path, fps: int = FPS) -> None:
    try:
        import av
    except ImportError:
        raise _missing("the video", "av") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as box:
        st = box.add_stream("libx264", rate=Fraction(fps, 1))
        st.width, st.height = frames[0].size
        st.pix_fmt = "yuv420p"
        # deterministic: one thread, fixed quality, no bitstream metadata with a build string
        st.options = {"crf": "20", "preset": "medium", "threads": "1", "x264-params": "info=0"}
        st.codec_context.thread_count = 1
        for i, im in enumerate(frames):
            frame = av.VideoFrame.from_image(im)
            frame.pts = i
            for packet in st.encode(frame):
                box.mux(packet)
        for packet in st.encode():
            box.mux(packet)


# ------------------------------------------------------------------------------------ inputs


def save_jpeg(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)


def make_inputs() -> None:
    face = astronaut()
    save_jpeg(face, INPUTS / FACE)
    hopper = grace_hopper()
    palette = cartoon_palette(hopper)  # both references in the same colours
    save_jpeg(cartoon(hopper, palette), INPUTS / REFERENCE)
    save_jpeg(cartoon(reference_2_view(hopper), palette), INPUTS / REFERENCE_2)


def make_video() -> None:
    face = Image.open(INPUTS / FACE).convert("RGB")  # run "inputs" first
    write_video(video_frames(face), INPUTS / VIDEO)


# ---------------------------------------------------------------------------------- drawing


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _text(draw, xy, text, size, fill=INK, width=THUMB_SIZE[0] - 32, spacing=4) -> int:
    """Draw wrapped text from ``xy``; returns the y below it."""
    font = _font(size)
    x, y = xy
    for line in _wrap(draw, text, font, width):
        draw.text((x, y), line, font=font, fill=fill)
        y += size + spacing
    return y


def _arrow(draw: ImageDraw.ImageDraw, x0: int, x1: int, y: int, colour=ACCENT) -> None:
    draw.line((x0, y, x1 - 10, y), fill=colour, width=5)
    draw.polygon([(x1, y), (x1 - 14, y - 10), (x1 - 14, y + 10)], fill=colour)


def _tile(img: Image.Image, side: int) -> Image.Image:
    """``img`` cropped to a centred square (the upper part for a portrait) at ``side`` px."""
    w, h = img.size
    s = min(w, h)
    top = 0 if h > w else (h - s) // 2
    box = ((w - s) // 2, top, (w - s) // 2 + s, top + s)
    return img.crop(box).resize((side, side), Image.LANCZOS)


def _paste_labelled(canvas, draw, img, xy, label, side) -> None:
    x, y = xy
    canvas.paste(_tile(img, side), (x, y))
    draw.rectangle((x - 1, y - 1, x + side, y + side), outline=(180, 176, 168))
    font = _font(13)
    tw = draw.textlength(label, font=font)
    draw.text((x + (side - tw) / 2, y + side + 4), label, font=font, fill=MUTED)


# -------------------------------------------------------------------------------- FFHQ cards

FFHQ_MODELS = "stylegan2-ffhq-config-f.pt, e4e_ffhq_encode.pt"

# name: (title, [(input file or "video:<i>", label)], result text, caption, model files)
CARDS: dict[str, tuple[str, list[tuple[str, str]], str, str, str]] = {
    "jojogan_one_shot_face": (
        "One-shot face stylization",
        [(REFERENCE, "style reference"), (FACE, "photo")],
        "the photo in the reference's style + a saved style file",
        "Fine-tunes StyleGAN2 on one reference (300 steps), then stylizes the photo.",
        FFHQ_MODELS,
    ),
    "jojogan_multi_shot": (
        "Multi-shot: one style, two references",
        [(REFERENCE, "reference 1"), (REFERENCE_2, "reference 2"), (FACE, "photo")],
        "4 random faces + the photo in the style",
        "Learns the style from both references (500 steps): random styled faces and the photo.",
        FFHQ_MODELS,
    ),
    "jojogan_preserve_color_identity": (
        "Keep the photo's colours and identity",
        [(REFERENCE, "style reference"), (FACE, "photo")],
        "the photo in the reference's style, its own colours and identity kept",
        "The paper's colour-preserving set (S space, preset C, grayscale loss) with an "
        "identity (ArcFace) loss.",
        FFHQ_MODELS + ", model_ir_se50.pth",
    ),
    "jojogan_intensity_sweep": (
        "Style intensity sweep",
        [(FACE, "photo")],
        "5 images: intensity 0, 0.25, 0.5, 0.75, 1",
        "A released style (jojo.pt) at five intensities, no training: features of the base "
        "and styled generators blended.",
        FFHQ_MODELS + ", jojo.pt",
    ),
    "jojogan_released_style_paste_back": (
        "A released style, pasted back",
        [(FACE, "photo")],
        "the whole photo, every face stylized and pasted back",
        "Every face found is aligned, stylized with arcane_jinx.pt and feathered back into "
        "the full photo.",
        FFHQ_MODELS + ", arcane_jinx.pt",
    ),
    "jojogan_video_frames": (
        "Video, frame by frame",
        [
            ("video:0", "frame 1"),
            (f"video:{FRAMES // 2}", f"frame {FRAMES // 2 + 1}"),
            (f"video:{FRAMES - 1}", f"frame {FRAMES}"),
        ],
        "every frame stylized and pasted back",
        f"{VIDEO}: {FRAMES} frames at {FPS} fps. One face per frame, alignment smoothed over "
        "time, disney.pt applied, pasted back.",
        FFHQ_MODELS + ", disney.pt",
    ),
}


def _card_image(spec: str, cache: dict) -> Image.Image:
    if spec.startswith("video:"):
        if "video" not in cache:
            cache["video"] = video_frames(Image.open(INPUTS / FACE).convert("RGB"))
        return cache["video"][int(spec.split(":")[1])]
    return Image.open(INPUTS / spec).convert("RGB")


def card(name: str, cache: dict | None = None) -> Image.Image:
    """The thumbnail of an FFHQ workflow: its inputs, an arrow to what it makes (in words)."""
    title, inputs, result, caption, models = CARDS[name]
    cache = {} if cache is None else cache
    canvas = Image.new("RGB", THUMB_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _text(draw, (16, 12), title, 22)
    n = len(inputs)
    box_w = 140 if n < 3 else 120
    arrow_w, gap = 48, 12
    room = THUMB_SIZE[0] - 32 - box_w - arrow_w - gap * (n - 1)
    side = min(176, room // n)
    box_w = THUMB_SIZE[0] - 32 - n * side - gap * (n - 1) - arrow_w  # the rest of the row
    fetch = "python -m jojogan download " + " ".join(m.strip() for m in models.split(","))
    needs = ["Needs: " + models, "in ComfyUI/models/jojogan/; get them: " + fetch]
    text_w = THUMB_SIZE[0] - 32
    cap_lines = _wrap(draw, caption, _font(15), text_w)
    need_lines = [ln for t in needs for ln in _wrap(draw, t, _font(13), text_w)]
    height = side + 30 + len(cap_lines) * 19 + 6 + len(need_lines) * 17
    top = 48 + max(0, (THUMB_SIZE[1] - 48 - 8 - height) // 2)  # centred below the title
    x = 16
    for spec, label in inputs:
        _paste_labelled(canvas, draw, _card_image(spec, cache), (x, top), label, side)
        x += side + gap
    _arrow(draw, x - gap + 8, x - gap + arrow_w - 8, top + side // 2)
    bx0, bx1 = THUMB_SIZE[0] - 16 - box_w, THUMB_SIZE[0] - 16
    draw.rounded_rectangle((bx0, top, bx1, top + side), radius=10, outline=ACCENT, width=2)
    font = _font(14)
    lines = _wrap(draw, result, font, min(box_w - 28, 180))
    y = top + (side - len(lines) * 18) // 2
    for line in lines:
        tw = draw.textlength(line, font=font)
        draw.text(((bx0 + bx1 - tw) / 2, y), line, font=font, fill=INK)
        y += 18
    y = _text(draw, (16, top + side + 30), caption, 15)
    for t in needs:
        y = _text(draw, (16, y + 6 if t is needs[0] else y), t, 13, fill=MUTED)
    return canvas


def make_cards() -> None:
    cache: dict = {}
    for name in CARDS:
        save_jpeg(card(name, cache), HERE / f"{name}.jpg")


# ----------------------------------------------------------------------------- the toy demo


def toy_run(threads: int = 2, log: Callable[[str], None] = print) -> dict:
    """jojogan_toy_demo's pipeline with its nodes' settings, through the library: the sketch
    reference (seed 7) inverted by the toy encoder then 200 ``edges`` steps (lr 0.01); 4 photo
    inputs (seed 100) by the encoder then 300 pixel + discriminator steps (lr 0.01); the Finetune
    node's defaults (FinetuneSettings(), 300 steps); stylized at intensity 1. Returns uint8 HWC
    arrays: ``reference`` [1,...], ``inputs`` [4,...], ``stylized`` [4,...]."""
    import torch

    from jojogan.finetune import FinetuneSettings, finetune
    from jojogan.invert import invert
    from jojogan.stylize import stylize
    from jojogan.toy import render
    from jojogan.toy.model import load_toy

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g, d, enc, _avg, _cfg = load_toy(device="cpu")  # read-only

    def images(style: str, seed: int, count: int) -> torch.Tensor:  # ToyRender, size 64
        x = render.render_float(render.sample_params(seed, count), style, 64)
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous() * 2.0 - 1.0

    ref = images("sketch", 7, 1)
    photos = images("photo", 100, 4)
    mean_cache: dict = {}
    log("inverting the reference (encoder + 200 edges steps)")
    w_ref = invert(ref, g, "encoder", encoder=enc)
    w_ref = invert(
        ref,
        g,
        "optimize",
        init=w_ref,
        steps=200,
        lr=0.01,
        seed=0,
        discriminator=None,
        objective="edges",
        mean_cache=mean_cache,
    )
    log("inverting the inputs (encoder + 300 steps with the discriminator)")
    w_in = invert(photos, g, "encoder", encoder=enc)
    w_in = invert(
        photos,
        g,
        "optimize",
        init=w_in,
        steps=300,
        lr=0.01,
        seed=0,
        discriminator=d,
        objective="pixel",
        mean_cache=mean_cache,
    )
    st = FinetuneSettings(space="w+", preset="full", blend=1.0, seed=0)  # the nodes' defaults
    st.validate()
    log(f"fine-tuning ({st.steps} steps, lr {st.lr})")
    result = finetune(g, d, ref, w_ref, st)
    out = stylize(result.generator, w_in, base=g, intensity=1.0, noise_mode="const", seed=0)

    def u8(x: torch.Tensor) -> np.ndarray:
        x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)
        return x.permute(0, 2, 3, 1).numpy()

    return {"reference": u8(ref), "inputs": u8(photos), "stylized": u8(out)}


def toy_card(run: dict) -> Image.Image:
    """The toy demo's thumbnail: the reference, the 4 inputs and their stylized versions."""
    canvas = Image.new("RGB", THUMB_SIZE, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    _text(draw, (16, 12), "Toy faces: one-shot style on a CPU", 22)
    side, gap, top = 88, 6, 52
    x0 = 16 + side + 24
    row2 = top + side + 24

    def big(a: np.ndarray) -> Image.Image:
        return Image.fromarray(a).resize((side, side), Image.LANCZOS)

    _paste_labelled(canvas, draw, big(run["reference"][0]), (16, top), "reference", side)
    font = _font(13)
    for y, key in ((top, "inputs"), (row2, "stylized")):
        for i, a in enumerate(run[key]):
            canvas.paste(big(a), (x0 + i * (side + gap), y))
        draw.text((x0, y + side + 3), key, font=font, fill=MUTED)
    _arrow(draw, 22, x0 - 10, row2 + side // 2)
    draw.text((22, row2 + side // 2 - 24), "its style", font=font, fill=ACCENT)
    y = _text(
        draw,
        (16, row2 + side + 26),
        "A real run of this workflow's pipeline on the toy model shipped in the pack (64 px, no "
        "download): a sketch reference, 300 fine-tuning steps, the style on 4 toy photos.",
        15,
    )
    _text(draw, (16, y + 4), "Made by example_workflows/make_assets.py", 13, fill=MUTED)
    return canvas


def make_toy() -> None:
    save_jpeg(toy_card(toy_run()), HERE / "jojogan_toy_demo.jpg")


# -------------------------------------------------------------------------------------- main

PARTS: dict[str, Callable[[], None]] = {
    "inputs": make_inputs,
    "video": make_video,
    "cards": make_cards,
    "toy": make_toy,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=list(PARTS), action="append", help="make only this part")
    ap.add_argument("--skip-toy", action="store_true", help="leave the toy thumbnail as it is")
    args = ap.parse_args(argv)
    parts = args.only or [p for p in PARTS if not (p == "toy" and args.skip_toy)]
    for part in parts:
        print(f"make_assets: {part}", flush=True)
        PARTS[part]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

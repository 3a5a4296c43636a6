"""Write the bundled workflows, each in both formats, from one description (so they cannot drift).

    python example_workflows/generate.py          # rewrite example_workflows/*.json
    python example_workflows/generate.py --check  # exit 1 when a file differs from its description

For each workflow NAME: ``NAME.json`` is the UI format (what users drag into ComfyUI: nodes with
positions, a links array, widgets_values) and ``api/NAME.json`` the API format (what ``/prompt``
takes). Widget order comes from the pack's own ``INPUT_TYPES``; ComfyUI's core nodes used here are
described in ``CORE_NODES``. ComfyUI's front end adds a "control after generate" value after every
widget named ``seed``; the UI files carry it ("fixed").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# ComfyUI core nodes used by the workflows: (inputs [(name, type, is_widget)], outputs, ui extras)
CORE_NODES: dict[str, dict] = {
    "LoadImage": {
        "inputs": [("image", "COMBO", True)],
        "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
        "ui_extra": {"image": ["image"]},  # the upload button's widget value
    },
    "SaveImage": {"inputs": [("images", "IMAGE", False), ("filename_prefix", "STRING", True)]},
    "ImageBatch": {
        "inputs": [("image1", "IMAGE", False), ("image2", "IMAGE", False)],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "LoadVideo": {
        "inputs": [("file", "COMBO", True)],
        "outputs": [("VIDEO", "VIDEO")],
        "ui_extra": {"file": ["image"]},
    },
    "GetVideoComponents": {
        "inputs": [("video", "VIDEO", False)],
        "outputs": [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")],
    },
    "CreateVideo": {
        "inputs": [("images", "IMAGE", False), ("fps", "FLOAT", True), ("audio", "AUDIO", False)],
        "outputs": [("VIDEO", "VIDEO")],
    },
    "SaveVideo": {
        "inputs": [
            ("video", "VIDEO", False),
            ("filename_prefix", "STRING", True),
            ("format", "COMBO", True),
            ("codec", "COMBO", True),
        ]
    },
}

SOCKET_TYPES = {"IMAGE", "MASK", "VIDEO", "AUDIO", "LATENT", "MODEL"}


def _pack():
    """The pack, imported as ComfyUI's loader does (a module spec on the folder's __init__.py;
    no sys.path edit), once per process."""
    name = "comfyui_jojogan_workflow_generator"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pack_nodes() -> dict[str, type]:
    return _pack().NODE_CLASS_MAPPINGS


def display_name(class_type: str) -> str:
    """What ComfyUI shows as the node's title: the pack's display name, else the class type."""
    if class_type in CORE_NODES:
        return class_type
    return _pack().NODE_DISPLAY_NAME_MAPPINGS.get(class_type, class_type)


def node_spec(class_type: str) -> dict:
    """inputs [(name, type, is_widget)] in INPUT_TYPES order and outputs [(name, type)]."""
    if class_type in CORE_NODES:
        spec = CORE_NODES[class_type]
        return {
            "inputs": spec["inputs"],
            "outputs": spec.get("outputs", []),
            "ui_extra": spec.get("ui_extra", {}),
        }
    cls = pack_nodes()[class_type]
    it = cls.INPUT_TYPES()
    inputs = []
    for section in ("required", "optional"):
        for name, spec in it.get(section, {}).items():
            t = spec[0]
            if isinstance(t, list):
                inputs.append((name, "COMBO", True))
            elif t in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                inputs.append((name, t, True))
            else:
                inputs.append((name, t, False))
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    outputs = list(zip(names, cls.RETURN_TYPES, strict=True))
    return {"inputs": inputs, "outputs": outputs, "ui_extra": {}}


@dataclass
class N:
    """One node: id, class, widget values by name, links {input: (source id, output index)}."""

    id: int
    type: str
    widgets: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    pos: tuple[int, int] = (0, 0)
    title: str | None = None


@dataclass
class Workflow:
    name: str
    title: str
    nodes: list[N]
    note: str = ""  # Markdown shown in a note node of the UI format
    note_pos: tuple[int, int] = (0, -320)


NOTE_ID = 99  # the note node's id in the UI format (API graphs have no notes)
OUTPUT_NODE_SIZE = [400, 440]  # Save Image / Save Video: room for what they show


def to_api(wf: Workflow) -> dict:
    out = {}
    for n in wf.nodes:
        spec = node_spec(n.type)
        inputs: dict = {}
        for name, _t, is_widget in spec["inputs"]:
            if name in n.links:  # a socket, or a widget fed by another node's output
                src, idx = n.links[name]
                inputs[name] = [str(src), idx]
            elif is_widget:
                if name not in n.widgets:
                    raise KeyError(f"{wf.name}: node {n.id} ({n.type}) lacks widget {name!r}")
                inputs[name] = n.widgets[name]
        unknown = (set(n.widgets) | set(n.links)) - {i[0] for i in spec["inputs"]}
        if unknown:
            raise KeyError(f"{wf.name}: node {n.id} ({n.type}) has unknown inputs {unknown}")
        out[str(n.id)] = {
            "class_type": n.type,
            "inputs": inputs,
            "_meta": {"title": n.title or display_name(n.type)},
        }
    return out


def model_download(name: str) -> dict:
    """ComfyUI's ``properties.models`` entry for a known model file: the frontend's
    missing-models dialog offers it (name, url, directory) when the file is absent."""
    from jojogan import weights

    entry = weights.REGISTRY[name]
    hub = [s for s in entry.sources if s.kind == "hf"]
    url = (hub or list(entry.sources))[0].url()
    return {"name": name, "url": url, "directory": entry.folder}


def ui_inputs(spec: dict, n: N) -> list[tuple[str, str, bool]]:
    """The node's input slots in the UI format: its sockets, then the widgets fed by links."""
    sockets = [(name, t, False) for name, t, w in spec["inputs"] if not w]
    linked_widgets = [(name, t, True) for name, t, w in spec["inputs"] if w and name in n.links]
    return sockets + linked_widgets


def to_ui(wf: Workflow) -> dict:
    by_id = {n.id: n for n in wf.nodes}
    links = []
    out_links: dict[tuple[int, int], list[int]] = {}
    in_link: dict[tuple[int, str], int] = {}
    for n in wf.nodes:
        slots = ui_inputs(node_spec(n.type), n)
        for dst_slot, (name, _t, _w) in enumerate(slots):
            if name not in n.links:
                continue
            src, idx = n.links[name]
            src_type = node_spec(by_id[src].type)["outputs"][idx][1]
            link_id = len(links) + 1
            links.append([link_id, src, idx, n.id, dst_slot, src_type])
            out_links.setdefault((src, idx), []).append(link_id)
            in_link[(n.id, name)] = link_id
    ui_nodes = []
    for order, n in enumerate(wf.nodes):
        spec = node_spec(n.type)
        widgets_values = []
        for name, _t, is_widget in spec["inputs"]:
            if not is_widget:
                continue
            widgets_values.append(n.widgets[name])
            if name == "seed":
                widgets_values.append("fixed")  # the front end's control_after_generate
            widgets_values.extend(spec["ui_extra"].get(name, []))
        n_in = sum(1 for i in spec["inputs"] if not i[2])
        n_out = len(spec["outputs"])
        n_widgets = sum(1 for i in spec["inputs"] if i[2])
        properties: dict = {"Node name for S&R": n.type}
        models = [
            model_download(n.widgets[w]) for w in MODEL_WIDGETS if n.widgets.get(w) is not None
        ]
        if models:
            properties["models"] = models
        inputs = []
        for name, t, is_widget in ui_inputs(spec, n):
            slot = {"name": name, "type": t, "link": in_link.get((n.id, name))}
            if is_widget:
                slot["widget"] = {"name": name}
            inputs.append(slot)
        ui_nodes.append(
            {
                "id": n.id,
                "type": n.type,
                "pos": list(n.pos),
                "size": OUTPUT_NODE_SIZE
                if n.type in ("SaveImage", "SaveVideo")
                else [320, 60 + 24 * (max(n_in, n_out) + n_widgets)],
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": inputs,
                "outputs": [
                    {
                        "name": name,
                        "type": t,
                        "links": out_links.get((n.id, k), []),
                        "slot_index": k,
                    }
                    for k, (name, t) in enumerate(spec["outputs"])
                ],
                "title": n.title or display_name(n.type),
                "properties": properties,
                "widgets_values": widgets_values,
            }
        )
    if wf.note:
        # a note for the reader (the frontend's MarkdownNote; not part of the API format)
        ui_nodes.append(
            {
                "id": NOTE_ID,
                "type": "MarkdownNote",
                "pos": list(wf.note_pos),
                "size": [440, 260],
                "flags": {},
                "order": len(ui_nodes),
                "mode": 0,
                "inputs": [],
                "outputs": [],
                "title": "Read me",
                "properties": {},
                "widgets_values": [wf.note],
                "color": "#432",
                "bgcolor": "#653",
            }
        )
    return {
        "last_node_id": max(n["id"] for n in ui_nodes),
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"jojogan": {"title": wf.title}},
        "version": 0.4,
    }


# ------------------------------------------------------------------------------- the workflows

FFHQ = "stylegan2-ffhq-config-f.pt"
E4E = "e4e_ffhq_encode.pt"
# The pack ships these inputs (example_workflows/inputs/, copied into ComfyUI's input folder
# when the pack loads; example_workflows/make_assets.py makes them).
REF_IMAGE = "jojogan_reference.jpg"
REF_IMAGE_2 = "jojogan_reference_2.jpg"
FACE_IMAGE = "jojogan_face.jpg"
VIDEO = "jojogan_video.mp4"
# Loader widgets that name a model file (models/jojogan), for the frontend's missing-models dialog.
MODEL_WIDGETS = ("ckpt_name", "encoder_name", "model_name", "style_name")


def _invert(id_, gen, images, pos, encoder=None, method="encoder", discriminator=None, **kw):
    links = {"generator": gen, "images": images}
    if encoder is not None:
        links["encoder"] = encoder
    if discriminator is not None:
        links["discriminator"] = discriminator
    widgets = {
        "method": method,
        "steps": 300,
        "lr": 0.05,
        "seed": 0,
        "n_iters": 0,
        "blend_layers": "",
        "objective": "pixel",
        "preview_every": 25,
    }
    widgets.update(kw)
    return N(id_, "JoJoGAN_Invert", widgets, links, pos)


def _dataset(id_, gen, refs, latent, pos, space="w+", preset="full", layers="", seed=0):
    return N(
        id_,
        "JoJoGAN_BuildMixedDataset",
        {
            "space": space,
            "preset": preset,
            "layers": layers,
            "blend": 1.0,
            "preview_count": 4,
            "seed": seed,
        },
        {"generator": gen, "references": refs, "latent": latent},
        pos,
    )


def _finetune(
    id_,
    gen,
    disc,
    pos,
    *,
    dataset=None,
    references=None,
    latent=None,
    steps=300,
    grayscale=False,
    id_weight=0.0,
    arcface=None,
    noise_mode="random",
):
    """The Finetune node: the released recipe from references + latent (its defaults), or a
    Build Mixed Dataset paired set."""
    links = {"generator": gen, "discriminator": disc}
    if dataset is not None:
        links["dataset"] = dataset
    else:
        links.update(references=references, latent=latent)
    if arcface is not None:
        links["arcface"] = arcface
    return N(
        id_,
        "JoJoGAN_Finetune",
        {
            "steps": steps,
            "lr": 0.002,
            "grayscale": grayscale,
            "id_weight": id_weight,
            "feature_layers": "",
            "noise_mode": noise_mode,
            "refs_per_chunk": 4,
            "seed": 0,
            "precision": "float32",
            "train_layers": "",
            "structure_weight": 0.0,
            "gram_weight": 0.0,
            "preview_every": 25,
            "strength": 1.0,
            "preserve_color": False,
        },
        links,
        pos,
    )


def _stylize(id_, style, latent, pos, intensity=1.0):
    return N(
        id_,
        "JoJoGAN_Stylize",
        {
            "intensity": intensity,
            "noise_mode": "const",
            "seed": 0,
            "layer_start": 0,
            "layer_end": -1,
            "batch_size": 8,
            "precision": "float32",
        },
        {"style_model": style, "latent": latent},
        pos,
    )


def _save(id_, images, prefix, pos):
    return N(id_, "SaveImage", {"filename_prefix": prefix}, {"images": images}, pos)


def _load_image(id_, name, pos, title=None):
    return N(id_, "LoadImage", {"image": name}, {}, pos, title)


def _align(id_, images, pos, size=1024, which="largest", detector=None):
    links = {"images": images}
    if detector is not None:
        links["detector"] = detector
    widgets = {"size": size, "which": which, "min_face": 20.0}
    return N(id_, "JoJoGAN_AlignFaces", widgets, links, pos)


def _stylegan(id_, pos):
    return N(id_, "JoJoGAN_LoadStyleGAN2", {"ckpt_name": FFHQ}, {}, pos)


def _encoder(id_, pos):
    return N(id_, "JoJoGAN_LoadEncoder", {"encoder_name": E4E}, {}, pos)


def _style_file(id_, gen, name, pos):
    return N(
        id_,
        "JoJoGAN_LoadStyleModel",
        {"style_name": name, "check_base": True},
        {"generator": gen},
        pos,
    )


def workflows() -> list[Workflow]:
    toy = Workflow(
        "jojogan_toy_demo",
        "Toy faces: one-shot style in a minute on a CPU (shipped model, no download)",
        [
            N(1, "JoJoGAN_LoadToyModel", {}, {}, (0, 0)),
            N(
                2,
                "JoJoGAN_ToyRender",
                {"style": "sketch", "seed": 7, "count": 1, "size": 64},
                {},
                (0, 260),
                "Reference (sketch style)",
            ),
            N(
                3,
                "JoJoGAN_ToyRender",
                {"style": "photo", "seed": 100, "count": 4, "size": 64},
                {},
                (0, 680),
                "Inputs (photo style)",
            ),
            # the toy recipe's reference inversion (jojogan.__main__ "edges"): the encoder's
            # code, then matched to the sketch's edges
            _invert(
                4,
                (1, 0),
                (2, 0),
                (380, 0),
                encoder=(1, 2),
                method="optimize",
                objective="edges",
                steps=200,
                lr=0.01,
            ),
            # the toy recipe (`python -m jojogan demo`): the pack's settings on a Build Mixed
            # Dataset set, constant noise
            _dataset(5, (1, 0), (2, 0), (4, 0), (760, 0)),
            _finetune(6, (1, 0), (1, 1), (1140, 0), dataset=(5, 0), noise_mode="const"),
            # the inputs as the default toy recipe ("refined") inverts them: the encoder's codes
            # refined toward the photos (pixels and discriminator features)
            _invert(
                7,
                (1, 0),
                (3, 0),
                (380, 680),
                encoder=(1, 2),
                discriminator=(1, 1),
                method="optimize",
                steps=300,
                lr=0.01,
            ),
            _stylize(8, (6, 0), (7, 0), (1520, 0)),
            _save(9, (8, 0), "jojogan/toy_stylized", (1900, 0)),
            N(
                10,
                "JoJoGAN_InterpolateStyle",
                {
                    "intensity_from": 0.0,
                    "intensity_to": 1.0,
                    "count": 3,
                    "layer_start": 0,
                    "layer_end": -1,
                    "batch_size": 8,
                },
                {"style_model": (6, 0), "latent": (7, 0)},
                (1520, 480),
            ),
            _save(11, (10, 1), "jojogan/toy_intensity_grid", (1900, 480)),
        ],
    )
    one_shot = Workflow(
        "jojogan_one_shot_face",
        "One-shot face stylization: one reference, e4e inversion, 300 steps, save the style",
        [
            _stylegan(1, (0, 0)),
            _encoder(2, (0, 200)),
            _load_image(3, REF_IMAGE, (0, 360), "Style reference"),
            _align(4, (3, 0), (380, 360)),
            _invert(5, (1, 0), (4, 0), (760, 200), encoder=(2, 0)),
            # the released notebook's recipe: the references and their codes, no paired-set node
            _finetune(7, (1, 0), (1, 1), (1140, 0), references=(4, 0), latent=(5, 0)),
            _load_image(8, FACE_IMAGE, (0, 760), "Photo to stylize"),
            _align(9, (8, 0), (380, 760)),
            _invert(10, (1, 0), (9, 0), (760, 600), encoder=(2, 0)),
            _stylize(11, (7, 0), (10, 0), (1900, 400)),
            _save(12, (11, 0), "jojogan/one_shot", (2280, 400)),
            N(
                13,
                "JoJoGAN_SaveStyleModel",
                {"filename_prefix": "styles/one_shot", "dtype": "float16"},
                {"style_model": (7, 0)},
                (1900, 0),
            ),
        ],
    )
    multi = Workflow(
        "jojogan_multi_shot",
        "Multi-shot: several references of one style (each with its own paired set), samples",
        [
            _stylegan(1, (0, 0)),
            _encoder(2, (0, 200)),
            _load_image(3, REF_IMAGE, (0, 360), "Reference 1"),
            _load_image(4, REF_IMAGE_2, (0, 700), "Reference 2"),
            N(5, "ImageBatch", {}, {"image1": (3, 0), "image2": (4, 0)}, (380, 500)),
            _align(6, (5, 0), (760, 500)),
            _invert(7, (1, 0), (6, 0), (1140, 300), encoder=(2, 0)),
            _finetune(9, (1, 0), (1, 1), (1520, 0), references=(6, 0), latent=(7, 0), steps=500),
            N(
                10,
                "JoJoGAN_SampleStyled",
                {
                    "count": 4,
                    "seed": 0,
                    "truncation": 0.7,
                    "intensity": 1.0,
                    "noise_mode": "random",
                },
                {"style_model": (9, 0)},
                (2280, 0),
            ),
            _save(11, (10, 0), "jojogan/multi_shot_samples", (2660, 0)),
            _load_image(12, FACE_IMAGE, (0, 1040), "Photo to stylize"),
            _align(13, (12, 0), (380, 1040)),
            _invert(14, (1, 0), (13, 0), (1140, 900), encoder=(2, 0)),
            _stylize(15, (9, 0), (14, 0), (2280, 500)),
            _save(16, (15, 0), "jojogan/multi_shot", (2660, 500)),
        ],
    )
    colour = Workflow(
        "jojogan_preserve_color_identity",
        "Colour-preserving (the paper's set C in S space, grayscale loss) with identity loss",
        [
            _stylegan(1, (0, 0)),
            _encoder(2, (0, 200)),
            N(3, "JoJoGAN_LoadArcFace", {"model_name": "model_ir_se50.pth"}, {}, (0, 360)),
            _load_image(4, REF_IMAGE, (0, 520), "Style reference"),
            _align(5, (4, 0), (380, 520)),
            _invert(6, (1, 0), (5, 0), (760, 300), encoder=(2, 0)),
            _dataset(7, (1, 0), (5, 0), (6, 0), (1140, 0), space="s", preset="C"),
            _finetune(
                8,
                (1, 0),
                (1, 1),
                (1520, 0),
                dataset=(7, 0),
                grayscale=True,
                id_weight=2000.0,
                arcface=(3, 0),
            ),
            _load_image(9, FACE_IMAGE, (0, 880), "Photo to stylize"),
            _align(10, (9, 0), (380, 880)),
            _invert(11, (1, 0), (10, 0), (760, 700), encoder=(2, 0)),
            _stylize(12, (8, 0), (11, 0), (1900, 400)),
            _save(13, (12, 0), "jojogan/preserve_color", (2280, 400)),
        ],
    )
    sweep = Workflow(
        "jojogan_intensity_sweep",
        "Style intensity at inference (feature interpolation, no retraining) with a released style",
        [
            _stylegan(1, (0, 0)),
            _encoder(2, (0, 200)),
            _style_file(3, (1, 0), "jojo.pt", (380, 0)),
            _load_image(4, FACE_IMAGE, (0, 360), "Photo to stylize"),
            _align(5, (4, 0), (380, 360)),
            _invert(6, (1, 0), (5, 0), (760, 200), encoder=(2, 0)),
            N(
                7,
                "JoJoGAN_InterpolateStyle",
                {
                    "intensity_from": 0.0,
                    "intensity_to": 1.0,
                    "count": 5,
                    "layer_start": 0,
                    "layer_end": -1,
                    "batch_size": 8,
                },
                {"style_model": (3, 0), "latent": (6, 0)},
                (1140, 200),
            ),
            _save(8, (7, 1), "jojogan/intensity_sweep_grid", (1520, 200)),
        ],
    )
    released = Workflow(
        "jojogan_released_style_paste_back",
        "A released JoJoGAN style on every face of a photo, pasted back into the full photo",
        [
            _stylegan(1, (0, 0)),
            _encoder(2, (0, 200)),
            _style_file(3, (1, 0), "arcane_jinx.pt", (380, 0)),
            N(4, "JoJoGAN_LoadFaceDetector", {"backend": "auto"}, {}, (0, 360)),
            _load_image(5, FACE_IMAGE, (0, 520), "Photo"),
            _align(6, (5, 0), (380, 420), which="all", detector=(4, 0)),
            _invert(7, (1, 0), (6, 0), (760, 300), encoder=(2, 0)),
            _stylize(8, (3, 0), (7, 0), (1140, 200)),
            N(
                9,
                "JoJoGAN_PasteBack",
                {"feather": 0.1},
                {"images": (5, 0), "stylized": (8, 0), "faces": (6, 1)},
                (1520, 300),
            ),
            _save(10, (9, 0), "jojogan/pasted", (1900, 300)),
        ],
    )
    video = Workflow(
        "jojogan_video_frames",
        "Video: one face per frame with smoothed alignment, a released style, pasted back",
        [
            _stylegan(1, (0, 0)),
            _encoder(2, (0, 200)),
            _style_file(3, (1, 0), "disney.pt", (380, 0)),
            N(4, "LoadVideo", {"file": VIDEO}, {}, (0, 360)),
            N(5, "GetVideoComponents", {}, {"video": (4, 0)}, (380, 360)),
            N(
                6,
                "JoJoGAN_AlignVideo",
                {
                    "size": 1024,
                    "smooth": True,
                    "fps": 30.0,
                    "min_cutoff": 1.0,
                    "beta": 5.0,
                    "min_face": 48.0,
                },
                {"frames": (5, 0), "fps": (5, 2)},
                (760, 360),
            ),
            _invert(7, (1, 0), (6, 0), (1140, 300), encoder=(2, 0)),
            _stylize(8, (3, 0), (7, 0), (1520, 200)),
            N(
                9,
                "JoJoGAN_PasteBack",
                {"feather": 0.1},
                {"images": (5, 0), "stylized": (8, 0), "faces": (6, 1)},
                (1900, 300),
            ),
            # the stylized frames as a video again, at the clip's frame rate, with its sound
            N(
                10,
                "CreateVideo",
                {"fps": 24.0},
                {"images": (9, 0), "fps": (5, 2), "audio": (5, 1)},
                (2280, 300),
            ),
            N(
                11,
                "SaveVideo",
                {"filename_prefix": "jojogan/video_stylized", "format": "auto", "codec": "auto"},
                {"video": (10, 0)},
                (2660, 300),
            ),
        ],
    )
    toy.note = (
        "## Toy faces: JoJoGAN in a minute, no download\n"
        "Runs on the small toy model shipped inside the pack: press **Run**.\n\n"
        "1. *Toy Render* draws a reference in the sketch style and four photo-style faces.\n"
        "2. *Invert* finds their codes (watch the reconstruction in the node).\n"
        "3. *Build Mixed Dataset* mixes the reference's code with random faces (Eq. 1).\n"
        "4. *Finetune* (300 steps) shows the current stylization every 25 steps.\n"
        "5. *Stylize* and *Interpolate Style* draw the inputs in the style; the grid has one row "
        "per face, intensity 0 (left) to 1 (right).\n\n"
        "Try another `style` in the reference's Toy Render node."
    )
    for wf in (one_shot, multi, colour, sweep, released, video):
        wf.note = _ffhq_note(wf)
    return [toy, one_shot, multi, colour, sweep, released, video]


def _ffhq_note(wf: Workflow) -> str:
    """What the workflow needs and the command that fetches it."""
    models = sorted(
        {n.widgets[w] for n in wf.nodes for w in MODEL_WIDGETS if n.widgets.get(w) is not None}
    )
    inputs = sorted({n.widgets[k] for n in wf.nodes for k in ("image", "file") if k in n.widgets})
    listed = "\n".join(f"- `{m}`" for m in models)
    return (
        f"## {wf.title}\n"
        f"Needs these files in `ComfyUI/models/jojogan` (loaders list them even when absent; "
        f"running without them tells you the same):\n{listed}\n\n"
        "Get them in a terminal, from the pack's folder `ComfyUI/custom_nodes/comfyui-jojogan`, "
        "with ComfyUI's Python:\n\n"
        f"`python -m jojogan download {' '.join(models)}`\n\n"
        "then press R in ComfyUI (it refreshes the model lists) and **Run**. The example inputs "
        f"({', '.join(f'`{i}`' for i in inputs)}) ship with the pack; load your own in the "
        "Load nodes."
    )


def render_all() -> dict[Path, str]:
    files = {}
    for wf in workflows():
        files[HERE / f"{wf.name}.json"] = json.dumps(to_ui(wf), indent=2) + "\n"
        files[HERE / "api" / f"{wf.name}.json"] = json.dumps(to_api(wf), indent=2) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = ap.parse_args(argv)
    stale = []
    for path, text in render_all().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for p in stale:
        print(("differs: " if args.check else "wrote: ") + str(p.relative_to(ROOT)))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())

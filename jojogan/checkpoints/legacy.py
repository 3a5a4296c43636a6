"""NVIDIA StyleGAN2-ADA network pickles -> rosinality layout, without running their code
(cf. NVlabs stylegan3 ``legacy.py``): an unpickler that resolves only tensor rebuilders and a key
table that fails on any unmatched key."""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..stylegan2 import Discriminator, Generator
from .layouts import _keys_summary
from .reading import CheckpointError, PathLike, _check_readable, _short, sniff
from .stylegan2 import StyleGAN2Checkpoint, _count_indexed, _list, load_stylegan2, save_stylegan2


class _Stub:
    """Stands in for any class or function a pickle names: records its arguments, runs nothing."""

    _global = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Persistent:
    """NVIDIA's persistent object: class name and ``__dict__``; the embedded source is dropped."""

    def __init__(self, meta: Any) -> None:
        meta = dict(meta) if isinstance(meta, Mapping) else {}
        self.class_name = str(meta.get("class_name"))
        self.state = meta.get("state") if isinstance(meta.get("state"), Mapping) else {}


class _EasyDict(dict):
    pass


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, meta=None):
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise ValueError(f"a tensor whose storage is a {type(storage).__name__}")
    t = torch.empty((0,), dtype=getattr(storage, "dtype", torch.uint8))
    untyped = storage._untyped_storage if hasattr(storage, "_untyped_storage") else storage
    shape, strides = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    return t.set_(untyped, int(offset), shape, strides)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"a parameter holding a {type(data).__name__}")
    return data


def _storage_from_bytes(b: bytes) -> Any:
    return torch.load(io.BytesIO(b), weights_only=True)


def _persistent_obj(meta: Any) -> _Persistent:
    return _Persistent(meta)


_NV_FUNCTIONS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): dict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("_codecs", "encode"): lambda s, enc="latin1": str(s).encode(enc),
}


class _StubUnpickler(pickle.Unpickler):
    """Resolves only the tensor rebuilders above; every other global becomes a harmless stub."""

    def __init__(self, f: Any) -> None:
        super().__init__(f)
        self._stubs: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        known = _NV_FUNCTIONS.get((module, name))
        if known is not None:
            return known
        key = f"{module}.{name}"
        if key not in self._stubs:
            self._stubs[key] = type(name, (_Stub,), {"_global": key})
        return self._stubs[key]

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError("persistent ids are not used by NVIDIA network pickles")


def _flatten_module(
    obj: Any, prefix: str, out: dict[str, torch.Tensor], seen: set[int] | None = None
) -> None:
    seen = set() if seen is None else seen
    state = obj.state if isinstance(obj, _Persistent | _Stub) else None
    if not isinstance(state, Mapping) or id(obj) in seen or prefix.count(".") > 32:
        return
    seen.add(id(obj))
    for group in ("_parameters", "_buffers"):
        for k, v in (state.get(group) or {}).items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v
    for k, v in (state.get("_modules") or {}).items():
        _flatten_module(v, f"{prefix}{k}.", out, seen)


def _nv_filter_ok(t: torch.Tensor) -> bool:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    ref = torch.outer(k, k) / torch.outer(k, k).sum()
    return tuple(t.shape) == (4, 4) and torch.allclose(t.float(), ref)


class _Taker:
    """Consumes source keys one by one; what is left at the end is an error (no silent drops)."""

    def __init__(self, sd: Mapping[str, torch.Tensor], p: Path, what: str) -> None:
        self.sd, self.p, self.what, self.used = sd, p, what, set()

    def __call__(self, key: str) -> torch.Tensor:
        if key not in self.sd:
            raise CheckpointError(
                f"{self.p}: NVIDIA {self.what}: key '{key}' is missing (found: "
                f"{_keys_summary(self.sd.keys())}); not a StyleGAN2-ADA network in the layout "
                "this converter knows."
            )
        self.used.add(key)
        return self.sd[key].detach().float().clone()

    def filter(self, key: str) -> None:
        if key in self.sd:
            if not _nv_filter_ok(self(key)):
                raise CheckpointError(
                    f"{self.p}: NVIDIA {self.what}: '{key}' is not the [1,3,3,1] resampling "
                    "filter; networks with other filters are not supported."
                )

    def finish(self) -> None:
        left = sorted(set(self.sd) - self.used)
        if left:
            raise CheckpointError(
                f"{self.p}: NVIDIA {self.what}: keys with no rosinality counterpart: "
                f"{_list(left)}. The network has another architecture (StyleGAN3, conditional, "
                "'orig'/'resnet' generator, ...), which cannot be converted to StyleGAN2."
            )


def _default_kernels() -> dict[str, torch.Tensor]:
    g = Generator(16, style_dim=1, n_mlp=1, channels={r: 1 for r in (4, 8, 16)})
    d = Discriminator(16, channels={r: 1 for r in (4, 8, 16)})
    gs, ds = g.state_dict(), d.state_dict()
    return {
        "up_blur": gs["convs.0.conv.blur.kernel"],
        "rgb_up": gs["to_rgbs.0.upsample.kernel"],
        "down_blur": ds["convs.1.conv2.0.kernel"],
        "skip_blur": ds["convs.1.skip.0.kernel"],
    }


def _convert_nv_generator(
    sd: Mapping[str, torch.Tensor], p: Path, kernels: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    take = _Taker(sd, p, "generator")
    out: dict[str, torch.Tensor] = {}
    n_mlp = len(_count_indexed((k for k in sd if k.endswith(".weight")), "mapping.fc"))
    for i in range(n_mlp):
        for wb in ("weight", "bias"):
            out[f"style.{i + 1}.{wb}"] = take(f"mapping.fc{i}.{wb}")
    latent_avg = take("mapping.w_avg")
    res_list = sorted(
        int(k.split(".")[1][1:])
        for k in sd
        if k.startswith("synthesis.b") and k.endswith("conv1.weight")
    )
    for res in res_list:
        b = f"synthesis.b{res}."
        if res == 4:
            out["input.input"] = take(b + "const")[None]
            layers = [("conv1", "conv1", 0)]
            rgb = "to_rgb1"
        else:
            i = int(math.log2(res)) - 3
            layers = [
                ("conv0", f"convs.{2 * i}", 2 * i + 1),
                ("conv1", f"convs.{2 * i + 1}", 2 * i + 2),
            ]
            rgb = f"to_rgbs.{i}"
            out[f"convs.{2 * i}.conv.blur.kernel"] = kernels["up_blur"].clone()
            out[f"{rgb}.upsample.kernel"] = kernels["rgb_up"].clone()
        take.filter(b + "resample_filter")
        for src, dst, noise_idx in layers:
            s = f"{b}{src}."
            out[f"{dst}.conv.weight"] = take(s + "weight")[None]
            out[f"{dst}.conv.modulation.weight"] = take(s + "affine.weight")
            out[f"{dst}.conv.modulation.bias"] = take(s + "affine.bias")
            out[f"{dst}.noise.weight"] = take(s + "noise_strength").reshape(1)
            out[f"{dst}.activate.bias"] = take(s + "bias")
            out[f"noises.noise_{noise_idx}"] = take(s + "noise_const")[None, None]
            take.filter(s + "resample_filter")
        s = f"{b}torgb."
        out[f"{rgb}.conv.weight"] = take(s + "weight")[None]
        out[f"{rgb}.conv.modulation.weight"] = take(s + "affine.weight")
        out[f"{rgb}.conv.modulation.bias"] = take(s + "affine.bias")
        out[f"{rgb}.bias"] = take(s + "bias").reshape(1, -1, 1, 1)
    take.finish()
    return out, latent_avg


def _convert_nv_discriminator(
    sd: Mapping[str, torch.Tensor], p: Path, kernels: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    take = _Taker(sd, p, "discriminator")
    out: dict[str, torch.Tensor] = {}
    res_list = sorted(
        (int(k.split(".")[0][1:]) for k in sd if k.endswith("conv0.weight")), reverse=True
    )
    if not res_list:
        take("b8.conv0.weight")  # raises the missing-key error
    top = res_list[0]
    out["convs.0.0.weight"] = take(f"b{top}.fromrgb.weight")
    out["convs.0.1.bias"] = take(f"b{top}.fromrgb.bias")
    take.filter(f"b{top}.fromrgb.resample_filter")
    for j, res in enumerate(res_list, start=1):
        b, c = f"b{res}.", f"convs.{j}."
        out[c + "conv1.0.weight"] = take(b + "conv0.weight")
        out[c + "conv1.1.bias"] = take(b + "conv0.bias")
        out[c + "conv2.0.kernel"] = kernels["down_blur"].clone()
        out[c + "conv2.1.weight"] = take(b + "conv1.weight")
        out[c + "conv2.2.bias"] = take(b + "conv1.bias")
        out[c + "skip.0.kernel"] = kernels["skip_blur"].clone()
        out[c + "skip.1.weight"] = take(b + "skip.weight")
        for f in ("", "conv0.", "conv1.", "skip."):
            take.filter(f"{b}{f}resample_filter")
    out["final_conv.0.weight"] = take("b4.conv.weight")
    out["final_conv.1.bias"] = take("b4.conv.bias")
    take.filter("b4.conv.resample_filter")
    out["final_linear.0.weight"] = take("b4.fc.weight")
    out["final_linear.0.bias"] = take("b4.fc.bias")
    out["final_linear.1.weight"] = take("b4.out.weight")
    out["final_linear.1.bias"] = take("b4.out.bias")
    take.finish()
    return out


def _check_nv_attrs(p: Path, obj: _Persistent, name: str) -> None:
    st = obj.state
    if obj.class_name not in ("Generator", "Discriminator"):
        raise CheckpointError(f"{p}: '{name}' is a {obj.class_name}, not a StyleGAN2 network.")
    if st.get("c_dim", 0):
        raise CheckpointError(
            f"{p}: '{name}' is class-conditional (c_dim {st.get('c_dim')}); JoJoGAN needs an "
            "unconditional StyleGAN2."
        )
    if name.startswith("G") and st.get("z_dim") != st.get("w_dim"):
        raise CheckpointError(
            f"{p}: '{name}' has z_dim {st.get('z_dim')} != w_dim {st.get('w_dim')}; "
            "rosinality's generator needs them equal."
        )
    if st.get("img_channels", 3) != 3:
        raise CheckpointError(f"{p}: '{name}' makes {st.get('img_channels')}-channel images.")


def read_nvidia_pkl(path: PathLike) -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2-ADA network pickle *without running its code* and convert it
    to rosinality's layout: ``{"g_ema", "g", "d", "latent_avg"}`` (those present).

    Only tensor rebuilders are resolved; every class the pickle names (including the embedded
    source of NVIDIA's modules) becomes an inert stub, and the weights are read from the stubs'
    recorded state. Every NVIDIA key must map to a rosinality key (else :class:`CheckpointError`
    lists the unmatched ones). Semantics differences: NVIDIA's optional activation clamp
    (``conv_clamp``, used with fp16 layers) is not applied by rosinality's modules.
    """
    p = _check_readable(path)
    kind = sniff(p)
    if kind != "pickle":
        raise CheckpointError(f"{p}: not a pickle ({kind}); nothing to convert.")
    try:
        with open(p, "rb") as f:
            data = _StubUnpickler(f).load()
    except Exception as e:
        raise CheckpointError(
            f"{p}: could not read the NVIDIA pickle ({_short(e, 160)}); it is corrupt or not "
            "a StyleGAN2-ADA network pickle."
        ) from None
    if not isinstance(data, Mapping) or not any(
        isinstance(data.get(k), _Persistent) for k in ("G_ema", "G", "D")
    ):
        raise CheckpointError(
            f"{p}: not a StyleGAN2-ADA network pickle (expected G_ema/G/D networks saved by "
            "stylegan2-ada-pytorch; TensorFlow .pkl files need rosinality's convert_weight.py)."
        )
    kernels = _default_kernels()
    out: dict[str, Any] = {}
    for src, dst in (("G_ema", "g_ema"), ("G", "g"), ("D", "d")):
        obj = data.get(src)
        if not isinstance(obj, _Persistent):
            continue
        _check_nv_attrs(p, obj, src)
        sd: dict[str, torch.Tensor] = {}
        _flatten_module(obj, "", sd)
        if dst == "d":
            out[dst] = _convert_nv_discriminator(sd, p, kernels)
        else:
            out[dst], w_avg = _convert_nv_generator(sd, p, kernels)
            if dst == "g_ema" or "latent_avg" not in out:
                out["latent_avg"] = w_avg
    return out


def convert_nvidia_pkl(
    src: PathLike, dst: PathLike, *, metadata: Mapping[str, str] | None = None
) -> StyleGAN2Checkpoint:
    """Convert an NVIDIA StyleGAN2-ADA ``.pkl`` to a rosinality-layout ``.safetensors`` file
    (atomically; never over ``src``), then load it back strictly and return it."""
    parts = read_nvidia_pkl(src)
    meta = {"converted_from": Path(src).name, "converter": "jojogan.checkpoints"}
    meta.update(metadata or {})
    save_stylegan2(
        dst,
        g_ema=parts.get("g_ema"),
        g=parts.get("g"),
        d=parts.get("d"),
        latent_avg=parts.get("latent_avg"),
        metadata=meta,
        inputs=[src],
    )
    return load_stylegan2(dst)

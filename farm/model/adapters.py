"""LoRA adapters on resident experts: read, check, cache and activate them per phase.

    file (.safetensors) ──read_lora──> diffusers layout (WanLoraLoaderMixin.lora_state_dict
                                       converts the original Wan / ComfyUI and musubi
                                       layouts) ──> LoraLayers: per Linear, (A, B, bias, alpha/r)
    AdapterCache (one per worker, LRU within a byte budget) ──> adapters on the device
    phase: `scoped(steps, active)` ──> the expert's Linear layers add
           sum_k w_k * alpha_k/r_k * (B_k A_k x + b_k) while the phase's generator runs

The base weights are never touched (nothing merged into them), so switching adapters
between phases leaves no trace and a phase without adapters runs the bare expert: the
hooks add nothing when no adapter is active. This is PEFT's unmerged LoRA forward (same
ops, same order per layer); the farm does it itself because PEFT's layers are injected
into the module tree once per adapter *name*, while a resident expert serves many films
whose adapter sets change every phase, possibly interleaved in one thread.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import struct
from collections.abc import Generator
from dataclasses import dataclass

import fsspec
import torch
import torch.nn.functional as F

log = logging.getLogger("farm.model")
_PREFIXES = ("transformer.",)  # how diffusers names the expert's keys in a LoRA file


class AdapterError(ValueError):
    """A LoRA file that cannot be used with this model; the message names the file."""


@dataclass(frozen=True, slots=True)
class LoraLayer:
    down: torch.Tensor  # lora_A (r, in)
    up: torch.Tensor  # lora_B (out, r)
    bias: torch.Tensor | None  # lora_B.bias (out,), Wan's `diff_b`
    scale: float  # alpha / r (PEFT's scaling at weight 1)

    @property
    def nbytes(self) -> int:
        parts = (self.down, self.up) + ((self.bias,) if self.bias is not None else ())
        return sum(t.numel() * t.element_size() for t in parts)


@dataclass(frozen=True, slots=True)
class Lora:
    """One adapter file, parsed: its layers by module path in the expert."""

    location: str
    sha256: str
    # "diffusers" (PEFT keys) or the layout diffusers converted from ("wan", "musubi").
    layout: str
    layers: dict[str, LoraLayer]

    @property
    def nbytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers.values())

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(sorted({layer.down.shape[0] for layer in self.layers.values()}))

    def to(self, device: torch.device, dtype: torch.dtype) -> Lora:
        def move(t):
            return None if t is None else t.to(device, dtype)
        return Lora(self.location, self.sha256, self.layout,
                    {k: LoraLayer(move(v.down), move(v.up), move(v.bias), v.scale)
                     for k, v in self.layers.items()})


def read_lora(location: str) -> Lora:
    """Read a LoRA file (path or URL) on the CPU; AdapterError if it is none."""
    try:
        with fsspec.open(location, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AdapterError(f"{location}: cannot read: {exc}") from None
    return parse_lora(data, location)


def parse_lora(data: bytes, location: str) -> Lora:
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin
    from safetensors.torch import load

    try:
        raw = load(data)
        meta = _lora_metadata(data)
    except Exception as exc:  # safetensors raises its own error types
        raise AdapterError(f"{location}: not a safetensors file: {exc}") from None
    layout = ("wan" if any(k.startswith("diffusion_model.") for k in raw)
              else "musubi" if any(k.startswith("lora_unet_") for k in raw) else "diffusers")
    try:  # diffusers' own conversion of the original Wan / ComfyUI and musubi layouts
        sd = WanLoraLoaderMixin.lora_state_dict(dict(raw))
    except Exception as exc:
        raise AdapterError(f"{location}: not a Wan LoRA diffusers can read ({layout} "
                           f"layout): {type(exc).__name__}: {exc}") from None
    return Lora(location, hashlib.sha256(data).hexdigest(), layout, _layers(sd, meta, location))


def _lora_metadata(data: bytes) -> dict:
    """diffusers' adapter config (alpha, rank) from the safetensors header, if saved."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size]).get("__metadata__") or {}
    raw = header.get("lora_adapter_metadata")
    meta = json.loads(raw) if raw else {}
    return {k.removeprefix("transformer."): v for k, v in meta.items()}


def _layers(sd: dict[str, torch.Tensor], meta: dict, location: str) -> dict[str, LoraLayer]:
    if meta.get("use_dora") or meta.get("alpha_pattern") or meta.get("rank_pattern"):
        raise AdapterError(f"{location}: DoRA and per-module alpha / rank patterns are not "
                           "supported; save the LoRA with one lora_alpha")
    groups: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in sd.items():
        key = next((key[len(p):] for p in _PREFIXES if key.startswith(p)), key)
        module, dot, part = key.partition(".lora_")
        if not dot or part not in ("A.weight", "B.weight", "B.bias"):
            unknown.append(key)
            continue
        groups.setdefault(module, {})[part] = value
    if unknown:
        raise AdapterError(f"{location}: keys that are no LoRA weights: "
                           f"{', '.join(sorted(unknown)[:5])}{' ...' if len(unknown) > 5 else ''}")
    if not groups:
        raise AdapterError(f"{location}: no LoRA weights in the file")
    out = {}
    for module, parts in sorted(groups.items()):
        if "A.weight" not in parts or "B.weight" not in parts:
            half = "A" if "A.weight" not in parts else "B"
            raise AdapterError(f"{location}: {module} has no lora_{half} weight")
        down, up = parts["A.weight"], parts["B.weight"]
        if down.ndim != 2 or up.ndim != 2 or down.shape[0] != up.shape[1]:
            raise AdapterError(f"{location}: {module}: rank of lora_A {tuple(down.shape)} and "
                               f"lora_B {tuple(up.shape)} differ")
        rank = down.shape[0]
        alpha = float(meta.get("lora_alpha", rank))
        scale = alpha / rank ** 0.5 if meta.get("use_rslora") else alpha / rank
        # in the file's dtype: cast once, to the worker's, when cached (Lora.to)
        out[module] = LoraLayer(down, up, parts.get("B.bias"), scale)
    return out


def linear_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """(in, out) features of every Linear layer of an expert, by module path."""
    return {name: (m.in_features, m.out_features) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)}


def mismatches(lora: Lora, shapes: dict[str, tuple[int, int]]) -> list[str]:
    """What does not fit the expert: modules it lacks, shapes of another model."""
    missing = sorted(m for m in lora.layers if m not in shapes)
    problems = []
    if missing:
        problems.append(f"{len(missing)} of its {len(lora.layers)} layers are not in this "
                        f"model ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}): "
                        "a LoRA of another model family or size")
    for module, layer in lora.layers.items():
        if module in shapes and (layer.down.shape[1], layer.up.shape[0]) != shapes[module]:
            (i, o), r = shapes[module], layer.down.shape[0]
            problems.append(f"{module}: the LoRA maps {layer.down.shape[1]} -> "
                            f"{layer.up.shape[0]} features (rank {r}), the model's layer "
                            f"{i} -> {o}: a LoRA of another model family or size")
            break  # one shape is enough to tell
    return problems


# ---- activation: hooks that read the phase's adapters from a context variable ----------

@dataclass(frozen=True, slots=True)
class Active:
    """The adapters of one phase on one expert: (adapter, weight), in order."""

    model: torch.nn.Module
    entries: tuple[tuple[Lora, float], ...]


_ACTIVE: contextvars.ContextVar[Active | None] = contextvars.ContextVar("farm_lora", default=None)


class _Hook:
    """Forward hook of one Linear layer: out + sum_k w_k * s_k * (B_k(A_k x) + b_k)."""

    def __init__(self, model: torch.nn.Module, path: str):
        self.model, self.path = model, path

    def __call__(self, module, args, out):
        active = _ACTIVE.get()
        if active is None or active.model is not self.model:
            return None  # the bare layer
        x = args[0]
        for lora, weight in active.entries:
            layer = lora.layers.get(self.path)
            if layer is not None:  # PEFT's order: result + lora_B(lora_A(x)) * scaling
                delta = F.linear(F.linear(x.to(layer.down.dtype), layer.down), layer.up,
                                 layer.bias)
                out = out + (delta * (weight * layer.scale)).to(out.dtype)
        return out


def install_hooks(model: torch.nn.Module, paths) -> None:
    """Hook the layers an adapter targets (once per layer and model; they stay)."""
    hooked = model.__dict__.setdefault("_farm_lora_hooked", set())
    modules = dict(model.named_modules())
    for path in paths:
        if path not in hooked:
            modules[path].register_forward_hook(_Hook(model, path))
            hooked.add(path)


def scoped(steps: Generator, active: Active | None) -> Generator:
    """Run a phase generator with `active` set while it computes (not while it waits at
    its yields: other phases may run in this thread meanwhile)."""
    value = None
    while True:
        token = _ACTIVE.set(active)
        try:
            item = steps.send(value)
        except StopIteration as done:
            return done.value
        finally:
            _ACTIVE.reset(token)
        value = yield item


# ---- at submission: every adapter of a film read and checked against the model ---------

def model_shapes(source) -> dict[str, tuple[int, int]]:
    """Linear shapes of the model's experts, from its config (no weights read)."""
    from farm.model.loader import ModelLoader

    loader = ModelLoader(source)
    config = loader.transformer_config()
    with torch.device("meta"):
        model = loader.family.transformer_class().from_config(config)
    return linear_shapes(model)


def adapter_checks(film, source) -> list:
    """Every adapter of every scene (and the draft's) read and fitted to the model, as
    FieldErrors naming the scene, the file and the mismatch."""
    from farm.spec.errors import FieldError

    film_adapters = film.draft.adapters if film.draft is not None else ()
    if not film_adapters and not any(s.adapters for s in film.scenes):
        return []
    try:
        shapes = model_shapes(source)
    except (OSError, ValueError, TypeError) as exc:  # a folder without diffusers configs
        return [FieldError("loras", f"cannot fit LoRA adapters to model {source.ref}: {exc}")]
    problems: dict[str, str | None] = {}  # location -> problem (each file read once)
    errors = []
    places = [("draft.loras", a) for a in film_adapters]
    places += [(f"scenes[{s.index}].loras", a) for s in film.scenes for a in s.adapters]
    for at, adapter in places:
        if adapter.location not in problems:
            problems[adapter.location] = _problem(adapter.location, shapes)
        if problems[adapter.location] is not None:
            errors.append(FieldError(at, f"{adapter.name}: {problems[adapter.location]}"))
    return errors


def _problem(location: str, shapes: dict[str, tuple[int, int]]) -> str | None:
    try:
        lora = read_lora(location)
    except AdapterError as exc:
        return str(exc).removeprefix(f"{location}: ")
    found = mismatches(lora, shapes)
    return "; ".join(found) if found else None

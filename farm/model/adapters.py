"""LoRA adapters on resident experts: read, check, and activate them per phase with
diffusers' PEFT adapter API.

    file (.safetensors) ──read_lora──> diffusers layout (WanLoraLoaderMixin.lora_state_dict
                                       converts the original Wan / ComfyUI and musubi
                                       layouts) ──> Lora: per Linear (A, B, bias), config
    AdapterCache (farm.model.adapter_cache, one per worker, LRU within a byte budget)
        load:  expert.load_lora_adapter(state, adapter_name=farm_<sha256>, prefix=...)
        evict: expert.delete_adapters(name)
    phase: `scoped(steps, active)` ──> before each step it computes, when the expert's
           active set differs: expert.set_adapters(names, weights) (none: set_adapters([]))

The expert's Linear layers become PEFT LoRA layers once an adapter is loaded; the base
weights are never touched (nothing fused), so switching adapters between phases leaves no
trace, and a phase without adapters runs the bare expert bit for bit. This is what
diffusers' WanPipeline runs after `load_lora_weights` + `set_adapters` (tested).

Phases with different adapters may interleave step by step on one expert in one thread
(a worker's slots): the active set is the expert's, so `scoped` sets it before each step,
when it changes. A switch walks every module of the expert (bench/lora_switch.py, 2
adapters, a busy 2-core CPU): 0.7 to 1.8 ms on the tiny 2-block model, 36 to 85 ms at
Wan 14B's 40 blocks (400 LoRA layers), next to a real A14B step of seconds on a GPU.
Steps in other threads wanting another set wait for the running step (`computing`), as
do loads and deletes (`changing`). Two gangs whose ranks wait on each other across two
such experts would each hold a step the other needs: the scheduler never places phases of
different adapters on one expert at once (farm.sched.placement's first rule), and
STEP_WAIT_S bounds the wait if a runtime is driven otherwise (the phase fails and is retried).

No hot-swap (`load_lora_adapter(..., hotswap=True)`): it overwrites one loaded adapter's
weights in place so a *compiled* model need not recompile; the farm compiles nothing, and
the cache keeps several adapters resident and switches among them with set_adapters, which
copies no weights at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import fsspec
import torch

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
    def numel(self) -> int:
        return sum(t.numel() for t in (self.down, self.up, self.bias) if t is not None)


@dataclass(frozen=True, slots=True)
class Lora:
    """One adapter file, parsed: its layers by module path in the expert."""

    location: str
    sha256: str
    # "diffusers" (PEFT keys) or the layout diffusers converted from ("wan", "musubi").
    layout: str
    layers: dict[str, LoraLayer]

    # the file's LoraConfig (diffusers' adapter metadata), None: inferred from the keys
    config: dict | None = None

    def nbytes(self, dtype: torch.dtype) -> int:
        """Its size loaded into an expert (PEFT keeps it at the expert's dtype)."""
        return sum(layer.numel for layer in self.layers.values()) * dtype.itemsize

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(sorted({layer.down.shape[0] for layer in self.layers.values()}))


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
    layers = _layers(sd, meta, location)
    return Lora(location, hashlib.sha256(data).hexdigest(), layout, layers,
                _lora_config(meta, layers, location))


def _lora_config(meta: dict, layers: dict, location: str) -> dict | None:
    """The file's metadata as diffusers' loader will use it: LoraConfig(**metadata), checked
    here so a bad one is named at submission. It needs the target modules, which files
    written by hand may lack (without metadata, diffusers infers them from the keys)."""
    from peft import LoraConfig

    if not meta:
        return None
    config = {"target_modules": sorted(layers), **meta}
    try:
        LoraConfig(**config)
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"{location}: its adapter metadata is no PEFT LoraConfig: "
                           f"{exc}") from None
    return config


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
        # in the file's dtype: PEFT casts it to the expert's when it loads it
        out[module] = LoraLayer(down, up, parts.get("B.bias"), scale)
    return out


def linear_shapes(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """(in, out) features of every Linear layer of an expert, by module path (a PEFT
    LoRA layer's base Linear under the path it wraps; its lora_A / lora_B are not ours)."""
    return {name.removesuffix(".base_layer"): (m.in_features, m.out_features)
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and ".lora_" not in name}


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


# ---- activation: diffusers' PEFT adapter API on the resident expert ---------------------

# A step waits this long for steps of another adapter set on the same expert in other
# threads (one thread interleaving phases never waits: its steps run one at a time).
STEP_WAIT_S = 600.0


def adapter_name(lora: Lora) -> str:
    """The PEFT adapter name of a file: its content, so one file is one adapter however
    it is named (hex only: PEFT names are module-dict keys)."""
    return f"farm_{lora.sha256[:16]}"


def peft_state(lora: Lora) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The adapter as diffusers' loader takes it: `transformer.`-prefixed PEFT keys and
    the file's LoraConfig metadata, prefixed the same way (None: inferred from the keys)."""
    sd = {}
    for module, layer in lora.layers.items():
        sd[f"transformer.{module}.lora_A.weight"] = layer.down
        sd[f"transformer.{module}.lora_B.weight"] = layer.up
        if layer.bias is not None:
            sd[f"transformer.{module}.lora_B.bias"] = layer.bias
    meta = None if lora.config is None else {f"transformer.{k}": v for k, v in lora.config.items()}
    return sd, meta


class Active:
    """The adapters of one phase on one expert: PEFT adapter names and their weights, in
    order (none: the bare expert). Holds the cache's pin on them until `release()` (called
    when the phase's generator ends, or when this object is dropped)."""

    def __init__(self, model: torch.nn.Module, entries: Sequence[tuple[str, float]],
                 release: Callable[[], None] | None = None):
        self.model, self.key = model, tuple(entries)
        self.release = weakref.finalize(self, release) if release is not None else _noop


def _noop() -> None:
    return None


class _Lease:
    """What an expert's PEFT layers run now (`key`: ((name, weight), ...); None: unknown,
    after a load or delete) and how many steps compute with it in other threads."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.key: tuple[tuple[str, float], ...] | None = ()
        self.users = 0


_LEASES: weakref.WeakKeyDictionary[torch.nn.Module, _Lease] = weakref.WeakKeyDictionary()
_LEASES_LOCK = threading.Lock()


def _lease(model: torch.nn.Module) -> _Lease:
    with _LEASES_LOCK:
        return _LEASES.setdefault(model, _Lease())


def _wait_idle(lease: _Lease, ok: Callable[[], bool], what: str, timeout_s: float) -> None:
    if not lease.cond.wait_for(ok, timeout_s):
        raise TimeoutError(f"{what}: the expert stayed busy with other LoRA adapters in "
                           f"another thread for {timeout_s:.0f} s")


@contextmanager
def changing(model: torch.nn.Module, timeout_s: float = STEP_WAIT_S) -> Iterator[None]:
    """Hold `model` while adapters are loaded into or deleted from it: no step computes
    meanwhile, and the next one sets its adapters afresh."""
    lease = _lease(model)
    with lease.cond:
        _wait_idle(lease, lambda: lease.users == 0, "loading a LoRA", timeout_s)
        lease.key = None  # PEFT activates what it loads and re-picks what it deletes
        yield
        _regroup(model)


def _regroup(model: torch.nn.Module) -> None:
    # Under group offload the hooks list each block's tensors: re-apply them so the new
    # (or deleted) LoRA weights move with their block, as diffusers does after a load.
    from diffusers.hooks.group_offloading import _maybe_remove_and_reapply_group_offloading

    _maybe_remove_and_reapply_group_offloading(model)


@contextmanager
def computing(active: Active, timeout_s: float = STEP_WAIT_S) -> Iterator[None]:
    """One step of a phase with exactly its adapters active on its expert."""
    lease, key = _lease(active.model), active.key
    with lease.cond:
        _wait_idle(lease, lambda: lease.users == 0 or lease.key == key, "a step", timeout_s)
        if lease.key != key:
            switch(active.model, key)
            lease.key = key
        lease.users += 1
    try:
        yield
    finally:
        with lease.cond:
            lease.users -= 1
            lease.cond.notify_all()


def switch(model: torch.nn.Module, key: tuple[tuple[str, float], ...]) -> None:
    """diffusers' set_adapters: each LoRA layer's active adapters, in order, and their
    scaling (weight * alpha / r). None active: every LoRA layer runs its base Linear alone,
    bit for bit the bare expert (tested). Called only after a load (an expert that never
    had an adapter starts, and stays, at `()`: nothing to set)."""
    model.set_adapters([name for name, _ in key], [weight for _, weight in key])


def scoped(steps: Generator, active: Active) -> Generator:
    """Run a phase generator with `active`'s adapters set on its expert for each step it
    computes (not while it waits at its yields: other phases, with other adapters, may
    step the same expert in this thread meanwhile). Releases the pins when it ends."""
    value = None
    try:
        while True:
            with computing(active):
                try:
                    item = steps.send(value)
                except StopIteration as done:
                    return done.value
            value = yield item
    finally:
        active.release()


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

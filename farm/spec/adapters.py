"""LoRA adapters and few-step drafts: the storyboard's `loras:` and `draft:` (pure).

    loras:                                  on the film (every scene) and per scene
      - {name: mira.safetensors, weight: 0.8}           every expert at 0.8
      - {name: style/, high: 1.0, low: 0.5}             per expert (0: that expert has none)
      - {name: lightning_high.safetensors, high: 1}     a Wan2.2 pair is two entries,
      - {name: lightning_low.safetensors, low: 1}       one file per expert
    draft: {loras: [...], steps: 4, guidance: 1}        render fast with a distilled pair

`name` is a `.safetensors` file, a folder holding `pytorch_lora_weights.safetensors` (as
diffusers saves one), a URL, or over the API an uploaded adapter (`media/{sha256}`). A
scene's entry replaces the film's entry of the same name (`weight: 0` turns it off there).
Whether the file fits the model (rank, modules, shapes) is checked where weights can be
read (farm.model.adapters), before any phase runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from farm.spec.errors import FieldError
from farm.spec.profiles import ModelProfile

# What diffusers' `save_lora_weights` writes into a folder.
LORA_FILE = "pytorch_lora_weights.safetensors"
# LoRA weights users pass: negative ones subtract a look; beyond +-4 nothing is useful
# (the adapter dominates the base), so larger values are taken as a typo.
Weight = Annotated[float, Field(ge=-4, le=4, allow_inf_nan=False)]


class LoraSpec(BaseModel):
    """One adapter: `weight` on every expert, or `high` / `low` per expert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    weight: Weight | None = None
    high: Weight | None = None
    low: Weight | None = None


class DraftSpec(BaseModel):
    """Render the film as a draft: a step-distilled LoRA pair, few steps, guidance 1.
    `reelfarm films rerender NAME --final` renders the same seeds without it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loras: list[LoraSpec] = []
    steps: Annotated[int, Field(ge=1, le=64)] = 4
    guidance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0


@dataclass(frozen=True, slots=True)
class Adapter:
    """A resolved adapter: where its file is and its weight on each expert."""

    # As written in the storyboard (named in errors, logs and manifests).
    name: str
    # Absolute path or URL of the .safetensors file.
    location: str
    # Weight per expert, in profile.experts order (0: not loaded on that expert).
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Draft:
    """How a film renders as a draft, and the final values `final_film` restores."""

    steps: int
    guidance: float
    # The draft's own adapters, active on top of each scene's.
    adapters: tuple[Adapter, ...]
    # The film's steps and every scene's guidance (per expert) without the draft.
    final_steps: int
    final_guidance: tuple[tuple[float, ...], ...]


# (field, as written) -> (location, error or None), as farm.spec.inputs.Locator.
Locator = Callable[[str, str], "tuple[str, str | None]"]


def lora_location(raw: str, locator: Locator) -> tuple[str, str | None]:
    """A file, URL or media name as it is; anything else is a folder diffusers saved."""
    if raw.endswith(".safetensors") or "://" in raw or raw.startswith("media/"):
        return locator("loras", raw)
    location, err = locator("loras", f"{raw.rstrip('/')}/{LORA_FILE}")
    if err:
        err = (f"{err} (a LoRA is a .safetensors file or a folder holding {LORA_FILE}, as "
               "diffusers saves one)")
    return location, err


def resolve_loras(at: str, specs: Sequence[LoraSpec], profile: ModelProfile,
                  locator: Locator) -> tuple[list[Adapter], list[FieldError]]:
    """The entries of one `loras:` list (at `at`, e.g. "scenes[2].loras")."""
    out: list[Adapter] = []
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    for j, spec in enumerate(specs):
        path = f"{at}[{j}]"
        if spec.name in seen:
            errors.append(FieldError(f"{path}.name", f"{spec.name!r} is listed twice "
                                                     f"(also {at}[{seen[spec.name]}])"))
            continue
        seen[spec.name] = j
        weights, w_errors = _weights(path, spec, profile)
        location, err = lora_location(spec.name, locator)
        if err:
            w_errors.append(FieldError(f"{path}.name", err))
        errors += w_errors
        if not w_errors:
            out.append(Adapter(spec.name, location, weights))
    return out, errors


def _weights(path: str, spec: LoraSpec,
             profile: ModelProfile) -> tuple[tuple[float, ...], list[FieldError]]:
    per_expert = {e: getattr(spec, e) for e in ("high", "low") if getattr(spec, e) is not None}
    if spec.weight is not None and per_expert:
        return (), [FieldError(path, "give either `weight` (every expert) or `high` / `low` "
                                     "(per expert), not both")]
    if spec.weight is not None:
        return tuple(spec.weight for _ in profile.experts), []
    if not per_expert:
        return (), [FieldError(f"{path}.weight", "required: `weight`, or `high` / `low`")]
    unknown = sorted(set(per_expert) - set(profile.experts))
    if unknown:
        return (), [FieldError(f"{path}.{unknown[0]}", (
            f"{profile.family} has no {unknown[0]!r} expert; its experts: "
            f"{', '.join(profile.experts)} (one expert: use `weight`)"))]
    return tuple(float(per_expert.get(e, 0.0)) for e in profile.experts), []


def merge(film: Sequence[Adapter], scene: Sequence[Adapter]) -> tuple[Adapter, ...]:
    """The film's adapters with the scene's replacing those of the same name, then the
    scene's others; adapters at weight 0 on every expert are dropped."""
    own = {a.name: a for a in scene}
    merged = [own.pop(a.name, a) for a in film] + list(own.values())
    return tuple(a for a in merged if any(a.weights))



def lora_names(board) -> list[str]:
    """Every adapter a storyboard names, as written, once each (film, characters, scenes,
    draft)."""
    lists = [board.loras, *(c.loras for c in board.characters),
             *(s.loras or () for s in board.scenes),
             board.draft.loras if board.draft is not None else ()]
    return list(dict.fromkeys(spec.name for items in lists for spec in items))


def rename_loras(data: dict, rename: Callable[[str], str]) -> None:
    """Rewrite every adapter name of a dumped storyboard (`model_dump`) in place."""
    lists = [data.get("loras") or [], *(c.get("loras") or [] for c in data.get("characters") or []),
             *(s.get("loras") or [] for s in data["scenes"]),
             (data.get("draft") or {}).get("loras") or []]
    for items in lists:
        for entry in items:
            entry["name"] = rename(entry["name"])

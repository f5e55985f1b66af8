"""LoRA adapters and drafts between the storyboard / resolved film and pb (for convert).

    storyboard `loras:` / `draft:` (dicts) <──> pb.Lora / pb.Draft
    resolved Adapter (location, weight per expert) ──> pb.Lora named `media/{sha256}`
"""

from __future__ import annotations

from typing import Any

from farm.api.protos import pb
from farm.media.library import blob_sha
from farm.spec.adapters import Adapter, Draft

_WEIGHTS = ("weight", "high", "low")


def loras_to_pb(items: list[dict[str, Any]]) -> list[pb.Lora]:
    return [pb.Lora(name=d["name"], **{k: d[k] for k in _WEIGHTS if d.get(k) is not None})
            for d in items]


def loras_to_storyboard(items) -> list[dict[str, Any]]:
    return [{"name": m.name, **{k: getattr(m, k) for k in _WEIGHTS if m.HasField(k)}}
            for m in items]


def draft_to_pb(d: dict[str, Any]) -> pb.Draft:
    out = pb.Draft(loras=loras_to_pb(d.get("loras") or []))
    for key in ("steps", "guidance"):
        if d.get(key) is not None:
            setattr(out, key, d[key])
    return out


def draft_to_storyboard(d: pb.Draft) -> dict[str, Any]:
    out: dict[str, Any] = {"loras": loras_to_storyboard(d.loras)}
    for key in ("steps", "guidance"):
        if d.HasField(key):
            out[key] = getattr(d, key)
    return out


def adapters_to_pb(adapters: tuple[Adapter, ...], experts: tuple[str, ...]) -> list[pb.Lora]:
    """Resolved adapters as the media names the film was created with (files of a film
    created in-process keep the name written)."""
    out = []
    for a in adapters:
        sha = blob_sha(a.location)
        lora = pb.Lora(name=f"media/{sha}" if sha else a.name)
        if len(set(a.weights)) == 1:
            lora.weight = a.weights[0]
        else:
            for expert, w in zip(experts, a.weights, strict=True):
                setattr(lora, expert, w)
        out.append(lora)
    return out


def resolved_draft_to_pb(d: Draft, experts: tuple[str, ...]) -> pb.Draft:
    return pb.Draft(loras=adapters_to_pb(d.adapters, experts), steps=d.steps,
                    guidance=d.guidance)

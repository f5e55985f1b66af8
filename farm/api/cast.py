"""Characters and dialogue scenes between the storyboard and pb (for convert).

    storyboard `characters:` (dicts)        <──> pb.Character (film)
    a scene's `characters:` (ids)           <──> pb.Scene.characters
    a scene's `dialogue:` (dict)            <──> pb.Dialogue {audio, speakers, turns}

Field names are the storyboard's, so farm.spec's error paths
(`scenes[0].dialogue.turns[2].end`) name the request's fields once prefixed with `film.`.
Turn times are doubles both ways: the float the storyboard holds, never rounded.
Empty strings on the wire are unset fields (proto3), so farm.spec sees them as missing.
"""

from __future__ import annotations

from typing import Any

from farm.api import loras
from farm.api.protos import pb

_SPEAKER = ("character", "id", "photo", "audio")


def characters_to_pb(items: list[dict[str, Any]]) -> list[pb.Character]:
    out = []
    for c in items:
        ch = pb.Character(id=c["id"], name=c.get("name") or "",
                          description=c.get("description") or "",
                          references=c.get("references") or [],
                          first_frame=bool(c.get("first_frame")))
        ch.loras.extend(loras.loras_to_pb(c.get("loras") or []))
        out.append(ch)
    return out


def characters_to_storyboard(items) -> list[dict[str, Any]]:
    out = []
    for c in items:
        data: dict[str, Any] = {"id": c.id}
        if c.description:
            data["description"] = c.description
        if c.name:
            data["name"] = c.name
        if c.references:
            data["references"] = list(c.references)
        if c.loras:
            data["loras"] = loras.loras_to_storyboard(c.loras)
        if c.first_frame:
            data["first_frame"] = True
        out.append(data)
    return out


def dialogue_to_pb(d: dict[str, Any]) -> pb.Dialogue:
    out = pb.Dialogue(audio=d.get("audio") or "")
    for s in d["speakers"]:
        out.speakers.add(**{k: s[k] for k in _SPEAKER if s.get(k) is not None})
    for t in d["turns"]:
        out.turns.add(speaker=t["speaker"], start=t["start"], end=t["end"],
                      reaction=bool(t.get("reaction")))
    return out


def dialogue_to_storyboard(d: pb.Dialogue) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.audio:
        out["audio"] = d.audio
    out["speakers"] = [{k: getattr(s, k) for k in _SPEAKER if getattr(s, k)} for s in d.speakers]
    out["turns"] = [{"speaker": t.speaker, "start": t.start, "end": t.end,
                     **({"reaction": True} if t.reaction else {})} for t in d.turns]
    return out

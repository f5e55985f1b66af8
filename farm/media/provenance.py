"""Provenance of deliverables: an "AI-generated" label inside every file, C2PA content
credentials (a signed manifest) inside every mp4 and PNG, and a manifest JSON beside each
deliverable that says how it was made and pins its bytes with sha256.

    film.mp4                      film.mp4.provenance.json      (a file deliverable)
    frames/s010/s010.0001.png ... frames/s010/provenance.json   (a sequence: one per folder)

`verify(path)` checks both. The sidecar proves integrity (the file is the one the farm
wrote), not authenticity: anyone can write a new sidecar for a changed file. The embedded
credentials are signed (farm.media.credentials) and travel with the file: a signed file
verifies without its sidecar, even renamed. The label inside the file survives renaming too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm import __version__
from farm.media.credentials import DIGITAL_SOURCE_TYPE, Credentials, read_credentials, sign_file
from farm.spec.dialogue import split_slice
from farm.spec.speed import speed_record

LABEL = "AI-generated"
SCHEMA = "reelfarm.provenance/1"
DIR_MANIFEST = "provenance.json"
SIDECAR_SUFFIX = ".provenance.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
# The kinds that carry embedded, signed C2PA manifests (farm.media.credentials).
SIGNED = (".mp4", ".png")


def label_tags(kind: str) -> dict[str, str]:
    """Metadata that says "AI-generated" in each container's own vocabulary."""
    comment = f"{LABEL} with reelfarm {__version__}"
    if kind == "mp4":  # mp4 tags (written as mdta keys: movflags=use_metadata_tags)
        return {"comment": comment, "ai_generated": LABEL,
                "digital_source_type": DIGITAL_SOURCE_TYPE}
    if kind == "png":  # PNG tEXt keywords
        return {"Comment": comment, "AI-Generated": LABEL, "Software": f"reelfarm {__version__}",
                "DigitalSourceType": DIGITAL_SOURCE_TYPE}
    if kind == "exr":  # EXR header attributes ("comments" is a standard one)
        return {"comments": comment, "aiGenerated": LABEL, "digitalSourceType": DIGITAL_SOURCE_TYPE}
    raise ValueError(kind)


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as f:
        return _sha256_stream(f)


def _sha256_stream(f: Any) -> str:
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()


def sha256_path(path: str | Path) -> str:
    """A file's sha256, or for a folder (an .otiod bundle) the hash of its files' hashes."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def weight_hashes(model_ref: str, seed: int = 0,
                  folder: str | Path | None = None) -> str | dict[str, str]:
    """sha256 of every weight file of a model folder (`folder`, the resolved one, e.g. a
    shipped model's; else `model_ref` is the folder); "tiny:<seed>" for built-in tiny
    models (their weights are made from the seed, so the seed identifies them)."""
    if model_ref == "tiny" or model_ref.startswith("tiny-"):
        return f"tiny:{seed}"
    root = Path(folder if folder is not None else model_ref).expanduser()
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in WEIGHT_SUFFIXES}


def input_media_hashes(scenes: Iterable[Any],
                       known: Callable[[str], str | None] = lambda _: None) -> list[dict[str, Any]]:
    """The media each scene was given (farm.spec.inputs), pinned: {"scene", "field",
    "location" (the file's name), "sha256"}; a URL is read through fsspec, and one that
    cannot be read gets a "note" instead of a hash. `known(location)`: a sha256 already
    known (a content-addressed store's blob: not read again). Callers may add keys to an
    entry (a "rights" statement: {"holder", "reference"}); the record carries them."""
    hashed: dict[str, dict[str, str]] = {}  # a file shared by scenes is read once
    out = []
    for scene in scenes:
        for name, location in scene.inputs.items():
            file = split_slice(location)[0]  # a dialogue shot's slice: the file's hash
            if file not in hashed:
                sha = known(file)
                hashed[file] = {"sha256": sha} if sha else _input_hash(file)
            base = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            out.append({"scene": scene.id, "field": name, "location": base, **hashed[file]})
    return out


def _input_hash(location: str) -> dict[str, str]:
    from farm.spec.inputs import is_url

    try:
        if is_url(location):
            import fsspec

            with fsspec.open(location, "rb") as f:
                return {"sha256": _sha256_stream(f)}
        return {"sha256": sha256_file(location)}
    except Exception as exc:  # noqa: BLE001 - any store's error: the record says so, no hash
        return {"note": f"not hashed: cannot read it ({type(exc).__name__}: {exc})"}


def film_record(film: Any, weights: Any, inputs: list[dict]) -> dict[str, Any]:
    """What made a film (farm.spec.film.Film), as every manifest and credential of it
    says, rendered locally or served."""
    record = {
        "software": {"name": "reelfarm", "version": __version__},
        "model": {"ref": film.model, "family": film.profile.family, "weights": weights},
        "film": {"title": film.title, "fps": film.fps, "width": film.width,
                 "height": film.height, "steps": film.num_steps, "shift": film.shift,
                 "solver": film.solver},
        "scenes": [{"id": s.id, "seed": s.seed, "frames": s.num_frames, "prompt": s.prompt,
                    "negative_prompt": s.negative_prompt, "guidance": list(s.guidance),
                    "speed": speed_record(s.speed or tuple(None for _ in s.guidance),
                                          film.profile.experts),
                    # the film's characters in the scene, how it took them, what it could not
                    "characters": [{"id": c.id, "used": list(c.used), "not_used": c.not_used}
                                   for c in getattr(s, "characters", ())]}
                   for s in film.scenes],
        "inputs": inputs,
    }
    return record | adapter_record(film, record["scenes"])


def adapter_record(film: Any, scenes: list[dict[str, Any]]) -> dict[str, Any]:
    """The LoRA adapters each scene ran with ("loras": name, sha256, weight per expert) and
    the draft the film was rendered as, if any; adds the scenes' entries in place."""
    from farm.media.library import blob_sha

    hashed: dict[str, dict[str, str]] = {}  # a file shared by scenes is read once

    def pinned(adapters: Any) -> list[dict[str, Any]]:
        out = []
        for a in adapters:
            if a.location not in hashed:
                sha = blob_sha(a.location)  # an upload's name is its hash
                hashed[a.location] = {"sha256": sha} if sha else _input_hash(a.location)
            out.append({"name": a.name, **hashed[a.location],
                        "weights": dict(zip(film.profile.experts, a.weights, strict=True))})
        return out
    for entry, scene in zip(scenes, film.scenes, strict=True):
        entry["loras"] = pinned(getattr(scene, "adapters", ()))
    d = getattr(film, "draft", None)
    if d is None:
        return {"draft": None}
    return {"draft": {"steps": d.steps, "guidance": d.guidance, "loras": pinned(d.adapters),
                      "final_steps": d.final_steps}}


@dataclass
class Provenance:
    """What every manifest of one render shares (everything but the deliverable itself)."""

    record: dict[str, Any] = field(default_factory=dict)
    # A farm.media.credentials.Signer: mp4 and PNG files get embedded, signed C2PA
    # manifests too. None: the label and the sidecar only.
    signer: Any = None

    def manifest(self, deliverable: dict[str, Any]) -> dict[str, Any]:
        return {"schema": SCHEMA, "label": LABEL, "digital_source_type": DIGITAL_SOURCE_TYPE,
                "deliverable": deliverable, **self.record}

    def sign(self, path: Path, kind: str, name: str | None = None,
             extra: dict[str, Any] | None = None) -> None:
        """Embed the signed credential (mp4, PNG; others keep label and sidecar). Before
        hashing, so the sidecar's sha256 covers the signed bytes. The embedded record is
        the sidecar's minus the hashes (a file cannot hold its own hash). `name`: the
        file's final name, when it is signed under a temporary one. `extra`: more about
        this deliverable (a conformed one's {"conform": ...})."""
        if self.signer is not None and path.suffix.lower() in SIGNED:
            sign_file(path, self.manifest({"kind": kind, "file": name or path.name,
                                           **(extra or {})}),
                      self.signer, title=name or path.name)

    def write_file(self, path: str | Path, kind: str, name: str | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
        """`<file>.provenance.json` for one deliverable file (`<name>.provenance.json` when
        `path` is the file under a temporary name, moved to `name` next)."""
        path = Path(path)
        name = name or path.name
        self.sign(path, kind, name, extra)
        out = path.with_name(name + SIDECAR_SUFFIX)
        body = self.manifest({"kind": kind, "file": name, **(extra or {}),
                              "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        out.write_text(json.dumps(body, indent=2) + "\n")
        return out

    def write_sequence(self, folder: str | Path, kind: str, files: list[Path],
                       sign: bool = True, extra: dict[str, Any] | None = None) -> Path:
        """`<folder>/provenance.json` for an image sequence: every frame file's hash
        (`sign=False`: the frames were signed as they were written)."""
        folder = Path(folder)
        for p in files if sign else ():
            self.sign(Path(p), kind, extra=extra)
        body = self.manifest({"kind": kind, **(extra or {}), "frames": len(files),
                              "files": {p.name: sha256_file(p) for p in sorted(files)}})
        out = folder / DIR_MANIFEST
        out.write_text(json.dumps(body, indent=2) + "\n")
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    # "ok", "modified" or "no-manifest": the CLI's exit code depends on it.
    status: str
    lines: tuple[str, ...]


def find_manifest(path: Path) -> tuple[Path | None, str]:
    """(manifest, key): the sidecar of a file, a sequence folder's, or a frame's folder's."""
    if path.is_dir():
        m = path / DIR_MANIFEST
        return (m, "") if m.is_file() else (None, "")
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        return sidecar, ""
    folder = path.parent / DIR_MANIFEST
    return (folder, path.name) if folder.is_file() else (None, "")


def verify(path: str | Path) -> Verdict:
    """Check a deliverable (a file, a frame of a sequence, or a sequence folder): its
    embedded credentials (mp4, PNG) and its sidecar manifest, whichever it has."""
    path = Path(path)
    if not path.exists():
        return Verdict(False, "no-manifest", (f"{path}: no such file or folder",))
    if path.is_dir():
        return _verify_folder(path)
    return _combine(path, read_credentials(path), _check_sidecar(path))


def _load_manifest(manifest_path: Path) -> tuple[dict[str, Any], str]:
    """(the manifest's deliverable, '') or ({}, why it is no reelfarm manifest)."""
    try:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
            raise ValueError(f"schema {got!r}, expected {SCHEMA!r}")
        deliverable = manifest["deliverable"]
        if not isinstance(deliverable, dict) or not (isinstance(deliverable.get("files"), dict)
                or isinstance(deliverable.get("sha256"), str)):
            raise ValueError("its deliverable has no sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return {}, f"{manifest_path}: not a reelfarm manifest ({exc})"
    return deliverable, ""


def _check_sidecar(path: Path) -> Verdict | None:
    """The file against its sidecar or its folder's manifest; None when it has neither."""
    manifest_path, key = find_manifest(path)
    if manifest_path is None:
        return None
    deliverable, problem = _load_manifest(manifest_path)
    if problem:
        return Verdict(False, "no-manifest", (problem,))
    if "files" in deliverable:
        files = deliverable["files"]
        if (key or path.name) not in files:
            return Verdict(False, "no-manifest", (f"{path}: not listed in {manifest_path}",))
        return _verify_files(manifest_path, {path.name: files[key or path.name]}, [path])
    verdict = _verify_files(manifest_path, {path.name: deliverable["sha256"]}, [path])
    recorded = deliverable.get("file")
    if verdict.ok and recorded != path.name:  # moved together with its sidecar
        return Verdict(True, "ok", (f"{verdict.lines[0]}; renamed from {recorded}",))
    return verdict


def _combine(path: Path, creds: Credentials, sidecar: Verdict | None) -> Verdict:
    """Either check failing is a modification; either one passing verifies the file."""
    side = sidecar.lines if sidecar else ()
    if creds.present and not creds.valid:
        by = f"; they were signed by {creds.signer}" if creds.signer else ""
        why = "; ".join(creds.problems) or "invalid"
        return Verdict(False, "modified", side + (
            f"{path}: MODIFIED: its content credentials do not match it ({why}){by}",))
    if sidecar is not None and sidecar.status == "modified":
        return sidecar
    if creds.present:
        if sidecar is not None and not sidecar.ok:
            side = (f"{side[0]}; the embedded credentials suffice",)
        return Verdict(True, "ok", side + (_credentials_line(path, creds),))
    if sidecar is not None:
        return sidecar
    where = path.with_name(path.name + SIDECAR_SUFFIX)
    why = f" ({creds.problems[0]})" if creds.problems else ""
    return Verdict(False, "no-manifest", (
        f"{path}: no provenance manifest (looked for {where}) and no content credentials"
        f"{why}; it cannot be verified",))


def _credentials_line(path: Path, creds: Credentials, scope: str = "") -> str:
    root = "trusted root" if creds.trusted else "untrusted root"
    if creds.source_type == DIGITAL_SOURCE_TYPE:
        source = f"{LABEL} (trainedAlgorithmicMedia)"
    else:
        source = f"source type {creds.source_type}" if creds.source_type else "no source type"
    record = ("reelfarm render record" if creds.record is not None
              else "no reelfarm record (signed outside this farm)")
    return (f"{path}: content credentials valid{scope}: signed by {creds.signer}, {root}; "
            f"{source}, {record}")


def _verify_folder(folder: Path) -> Verdict:
    manifest_path = folder / DIR_MANIFEST
    if not manifest_path.is_file():
        return Verdict(False, "no-manifest", (
            f"{folder}: no provenance manifest (looked for {manifest_path}); "
            "it cannot be verified",))
    deliverable, problem = _load_manifest(manifest_path)
    if problem or "files" not in deliverable:
        return Verdict(False, "no-manifest", (problem or f"{manifest_path}: lists no files",))
    files = deliverable["files"]
    extra = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.name != DIR_MANIFEST and p.name not in files)
    verdict = _verify_files(manifest_path, files, [folder / n for n in sorted(files)])
    if extra:
        lines = verdict.lines + (f"{folder}: files not in the manifest: {', '.join(extra)}",)
        return Verdict(False, "modified", lines)
    if not verdict.ok:
        return verdict
    creds = {n: read_credentials(folder / n) for n in sorted(files)
             if Path(n).suffix.lower() in SIGNED}
    if bad := [n for n, c in creds.items() if c.present and not c.valid]:
        return Verdict(False, "modified", (
            f"{folder}: MODIFIED: the content credentials of {', '.join(bad)} do not match",))
    if signed := [c for c in creds.values() if c.present]:
        scope = f" in {len(signed)} of {len(creds)} files"
        return Verdict(True, "ok", verdict.lines + (_credentials_line(folder, signed[0], scope),))
    return verdict


def _verify_files(manifest_path: Path, expected: dict[str, str], paths: list[Path]) -> Verdict:
    bad = []
    for p in paths:
        if not p.is_file():
            bad.append(f"{p}: missing (listed in {manifest_path.name})")
        elif sha256_file(p) != expected[p.name]:
            bad.append(f"{p}: MODIFIED: its sha256 differs from {manifest_path.name}")
    unlabelled = [p for p in paths if p.is_file() and not has_label(p)]
    if bad:
        return Verdict(False, "modified", tuple(bad))
    note = f"; {len(unlabelled)} file(s) without an embedded label" if unlabelled else ""
    what = paths[0] if len(paths) == 1 else f"{manifest_path.parent} ({len(paths)} files)"
    return Verdict(True, "ok", (f"{what}: matches {manifest_path.name} ({LABEL}){note}",))


def has_label(path: Path) -> bool:
    """Whether the file's own metadata says it is AI-generated (mp4, PNG, EXR, .otio)."""
    return LABEL in " ".join(str(v) for v in embedded_metadata(path).values())


def embedded_metadata(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".mp4", ".mov", ".m4v"):
            import av

            with av.open(str(path)) as c:
                return dict(c.metadata)
        if suffix == ".png":
            from farm.media.stills import png_text

            return png_text(path)
        if suffix == ".exr":
            from farm.media.stills import read_exr

            return read_exr(path)[1]
        if suffix == ".otio":  # the export's render record (timeline metadata)
            return dict(json.loads(path.read_text())["metadata"].get("reelfarm_render", {}))
    except Exception:  # noqa: BLE001 - an unreadable file simply carries no label
        return {}
    return {}

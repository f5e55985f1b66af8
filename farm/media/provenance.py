"""Provenance of deliverables: an "AI-generated" label inside every file, and a manifest
JSON beside it that says how it was made and pins its bytes with sha256.

    film.mp4                      film.mp4.provenance.json      (a file deliverable)
    frames/s010/s010.0001.png ... frames/s010/provenance.json   (a sequence: one per folder)

`verify(path)` recomputes the hashes. The manifest proves integrity (the file is the one
the farm wrote), not authenticity: anyone can write a new manifest for a changed file, so
pipelines that need more sign the manifest. The label inside the file survives renaming
and travels without the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm import __version__

LABEL = "AI-generated"
# IPTC's term for media made by a trained model (what C2PA and platform labels use).
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SCHEMA = "reelfarm.provenance/1"
DIR_MANIFEST = "provenance.json"
SIDECAR_SUFFIX = ".provenance.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


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
    h = hashlib.sha256()
    with open(path, "rb") as f:
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


@dataclass
class Provenance:
    """What every manifest of one render shares (everything but the deliverable itself)."""

    record: dict[str, Any] = field(default_factory=dict)

    def manifest(self, deliverable: dict[str, Any]) -> dict[str, Any]:
        return {"schema": SCHEMA, "label": LABEL, "digital_source_type": DIGITAL_SOURCE_TYPE,
                "deliverable": deliverable, **self.record}

    def write_file(self, path: str | Path, kind: str) -> Path:
        """`<file>.provenance.json` for one deliverable file."""
        path = Path(path)
        out = path.with_name(path.name + SIDECAR_SUFFIX)
        body = self.manifest({"kind": kind, "file": path.name, "bytes": path.stat().st_size,
                              "sha256": sha256_file(path)})
        out.write_text(json.dumps(body, indent=2) + "\n")
        return out

    def write_sequence(self, folder: str | Path, kind: str, files: list[Path]) -> Path:
        """`<folder>/provenance.json` for an image sequence: every frame file's hash."""
        folder = Path(folder)
        body = self.manifest({"kind": kind, "frames": len(files),
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
    """Check a deliverable (a file, a frame of a sequence, or a sequence folder)."""
    path = Path(path)
    if not path.exists():
        return Verdict(False, "no-manifest", (f"{path}: no such file or folder",))
    manifest_path, key = find_manifest(path)
    if manifest_path is None:
        where = ((path / DIR_MANIFEST) if path.is_dir()
                 else path.with_name(path.name + SIDECAR_SUFFIX))
        return Verdict(False, "no-manifest", (
            f"{path}: no provenance manifest (looked for {where}); it cannot be verified",))
    try:
        manifest = json.loads(manifest_path.read_text())
        deliverable = manifest["deliverable"]
        if manifest.get("schema") != SCHEMA:
            raise ValueError(f"schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verdict(False, "no-manifest", (f"{manifest_path}: not a reelfarm manifest ({exc})",))
    if "files" in deliverable:
        return _verify_sequence(path, manifest_path, deliverable["files"], key)
    return _verify_files(manifest_path, {deliverable["file"]: deliverable["sha256"]}, [path])


def _verify_sequence(path: Path, manifest_path: Path, files: dict[str, str], key: str) -> Verdict:
    folder = manifest_path.parent
    if key:
        if key not in files:
            return Verdict(False, "no-manifest", (f"{path}: not listed in {manifest_path}",))
        return _verify_files(manifest_path, {key: files[key]}, [path])
    extra = sorted(p.name for p in folder.iterdir()
                   if p.is_file() and p.name != DIR_MANIFEST and p.name not in files)
    verdict = _verify_files(manifest_path, files, [folder / n for n in sorted(files)])
    if extra:
        lines = verdict.lines + (f"{folder}: files not in the manifest: {', '.join(extra)}",)
        return Verdict(False, "modified", lines)
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

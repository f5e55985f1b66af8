"""NVIDIA DALI decoding of images and video, the GPU backend of farm.media.decode.

Standalone on purpose: numpy and nvidia.dali only, no farm imports, so it also runs in a
Python that has DALI but not the farm (`.venv-dali`, see .ci/dali-env), as a script:

    python dali_decode.py REQUEST.json      # writes each request's "out" .npy file

REQUEST.json: {"device": "cpu" | "gpu", "requests": [{"kind": "image" | "video",
"path": FILE, "indices": [frame, ...] (video), "size": [width, height] | null, "out": NPY}]}

    bytes ──external_source──> decoders.image / decoders.video ──> resize ──> uint8 RGB
            (GPU: "mixed" decoders, nvJPEG / NVDEC; CPU: images, VP8 and VP9 only)

Resizing is DALI's Lanczos-3 with antialiasing (what Pillow's LANCZOS does on the CPU
path); video colour conversion is BT.601 limited range with bilinear chroma upsampling.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def available() -> str:
    """'' when DALI can be imported here, else why not."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError as exc:
        return f"NVIDIA DALI is not installed ({exc}); pip install 'reelfarm[dali]'"
    return ""


def _run(kind: str, data: bytes, size: tuple[int, int] | None, device: str) -> np.ndarray:
    """Decode (and resize) one encoded file: image (H, W, 3) or video (F, H, W, 3)."""
    from nvidia.dali import fn, pipeline_def, types

    gpu = device == "gpu"

    @pipeline_def(batch_size=1, num_threads=2, device_id=0 if gpu else None)
    def pipe():
        # 1. encoded bytes in, decoded on the GPU (mixed) or the CPU
        enc = fn.external_source(name="enc", dtype=types.UINT8, ndim=1)
        where = "mixed" if gpu else "cpu"
        if kind == "image":
            out = fn.decoders.image(enc, device=where, output_type=types.RGB)
        else:
            out = fn.decoders.video(enc, device=where)  # (F, H, W, 3)
        # 2. resize where the frames are
        if size is not None:
            out = fn.resize(out, resize_x=size[0], resize_y=size[1],
                            interp_type=types.INTERP_LANCZOS3, antialias=True)
        return out

    p = pipe()
    p.build()
    p.feed_input("enc", [np.frombuffer(data, dtype=np.uint8)])
    (out,) = p.run()
    if gpu:
        out = out.as_cpu()
    return np.asarray(out[0]).copy()


def decode_image(data: bytes, size: tuple[int, int] | None = None,
                 device: str = "cpu") -> np.ndarray:
    """RGB uint8 (H, W, 3), resized to size = (width, height) when given."""
    return _run("image", data, size, device)


def decode_video(data: bytes, indices: list[int], size: tuple[int, int] | None = None,
                 device: str = "cpu") -> np.ndarray:
    """The frames `indices` (decode order) of a video, RGB uint8 (F, H, W, 3)."""
    frames = _run("video", data, size, device)
    if indices and max(indices) >= len(frames):
        raise ValueError(f"frame {max(indices)} asked, the video has {len(frames)}")
    return frames[np.asarray(indices, dtype=np.int64)]


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        request = json.load(f)
    device = request.get("device", "cpu")
    for r in request["requests"]:
        with open(r["path"], "rb") as f:
            data = f.read()
        size = tuple(r["size"]) if r.get("size") else None
        if r["kind"] == "image":
            out = decode_image(data, size, device)
        else:
            out = decode_video(data, list(r["indices"]), size, device)
        np.save(r["out"], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

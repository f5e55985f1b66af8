"""Upload throughput of media over the API on loopback, against a plain file copy.

    python bench/media_upload.py [--megabytes 48] [--repeats 3]

A `reelfarm serve --local` child process (its own artifact folder), the Python SDK's
`Client.upload` of one incompressible PNG (noise: every byte must travel), and, in the
same run on the same disk, `shutil.copyfile` of the same file: the floor any upload pays
(read the file, write it into the store). The upload does more, on purpose: it hashes the
file on the client (to skip what the server has), streams 1 MiB messages over gRPC,
hashes again on the server, and decodes the image once to check it. The last row is a
re-upload of the same bytes: the client finds it by hash and sends nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from serve_proc import start_server, stop_server


def noise_png(path: Path, megabytes: float) -> Path:
    side = int((megabytes * 1e6 / 3) ** 0.5)
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, compress_level=0)
    return path


def timed(run, repeats: int) -> float:
    """Median seconds of `run()` over `repeats` runs (after one warm-up)."""
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=48.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from farm.client import Client

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        png = noise_png(root / "noise.png", args.megabytes)
        size = png.stat().st_size
        proc, address = start_server(["--artifacts", str(root / "art"), "--model", "tiny",
                                      "--db", f"sqlite:///{root / 'jobs.db'}"],
                                     root / "serve.log")
        try:
            with Client(address) as client:
                copy = timed(lambda: shutil.copyfile(png, root / "copy.png"), args.repeats)

                def fresh_upload() -> None:
                    for blob in (root / "art" / "media" / "blobs").glob("*"):
                        blob.unlink()  # make the server take the bytes again
                    for entry in (root / "art" / "media" / "tenants").rglob("*.json"):
                        entry.unlink()
                    client.upload(png)

                upload = timed(fresh_upload, args.repeats)
                again = timed(lambda: client.upload(png), args.repeats)
        finally:
            stop_server(proc)
    mb = size / 1e6
    print(f"file: {mb:.1f} MB noise PNG; loopback gRPC, 1 MiB chunks; median of "
          f"{args.repeats} runs after a warm-up; same disk for copy and store")
    print(f"{'path':<34}{'seconds':>9}{'MB/s':>9}{'vs copy':>9}")
    for name, seconds in (("plain file copy (baseline)", copy), ("UploadMedia (new bytes)", upload),
                          ("UploadMedia (server has it)", again)):
        print(f"{name:<34}{seconds:>9.3f}{mb / seconds:>9.1f}{copy / seconds:>8.2f}x")


if __name__ == "__main__":
    main()

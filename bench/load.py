"""Load on a real `reelfarm serve --local` process: streaming clients (some dropping and
resuming), plus unary GetFilm callers, against tiny films. Prints throughput and latency
percentiles, and the server's peak memory.

    python bench/load.py [--clients 50] [--films 2] [--drop-share 0.3] [--unary 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from films import board, scene
from load_harness import run_load
from serve_proc import start_server, stop_server

from farm.client import Client

TOKEN = "bench-token-0123456789abcdef"


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--films", type=int, default=2)
    ap.add_argument("--drop-share", type=float, default=0.3)
    ap.add_argument("--unary", type=int, default=200, help="GetFilm calls after the streams")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reelfarm-load-"))
    (root / "tokens").write_text(f"bench {TOKEN}\n")
    proc, address = start_server(["--artifacts", str(root / "art"),
                                  "--tokens", str(root / "tokens"),
                                  "--max-concurrent-rpcs", str(args.clients * 2),
                                  "--max-streams-per-tenant", str(args.clients * 2)],
                                 root / "serve.log")
    try:
        with Client(address, token=TOKEN) as client:
            storyboard = board([scene(f"s{i}", 17, seed=i + 1) for i in range(2)],
                               model="tiny", width=32, height=32, steps=4)
            films = {client.submit(storyboard).name: 34 for _ in range(args.films)}
            result = run_load(address, TOKEN, films, args.clients, args.drop_share,
                              server_pid=proc.pid)
            for name in films:
                client.film(name).wait()
            unary = []
            for i in range(args.unary):
                t0 = time.perf_counter()
                client.get(list(films)[i % len(films)])
                unary.append(time.perf_counter() - t0)
    finally:
        stop_server(proc)
    ok = [r for r in result.runs if not r.error and r.indices == list(range(films[r.film]))]
    first = [r.first_frame_s for r in result.runs if r.indices]
    print(f"{args.clients} streaming clients ({sum(r.dropped_at is not None for r in result.runs)} "
          f"dropped and resumed), {args.films} tiny films of 34 frames, one server process")
    print(f"{'metric':<34}{'value':>12}")
    print(f"{'clients with every frame once':<34}{len(ok):>9}/{len(result.runs)}")
    print(f"{'frames delivered':<34}{result.frames:>12}")
    print(f"{'throughput (frames/s)':<34}{result.frames / result.seconds:>12.1f}")
    for q in (50, 95, 99):
        print(f"{f'first frame latency p{q} (s)':<34}{pct(first, q):>12.3f}")
    for q in (50, 95, 99):
        print(f"{f'GetFilm latency p{q} (ms)':<34}{pct(unary, q) * 1000:>12.2f}")
    print(f"{'server peak RSS (MiB)':<34}{result.peak_rss_mb:>12.0f}")


if __name__ == "__main__":
    main()

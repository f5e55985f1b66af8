"""Cross-host handoffs over slow links: the same film on one host, and on four hosts (the
head, and one per pool: high-noise, low-noise, decode) whose links are shaped (a rate
with tc tbf: 1 Gbit/s, 100 Mbit/s; a delay on every link, each way, at 1 Gbit/s: 0, 5,
20 ms through a relay, bench/netrelay.py, as this kernel has no tc netem; the 0 ms row
shows what the relay itself costs), as ratios against the one-host run of the same
invocation. Needs root (network namespaces; bench/cluster_harness.py).

    python bench/cluster.py [--size 128] [--frames 17] [--steps 4] [--delays 0,5,20]
                            [--rates 1000,100]

Per run: time to first frame and total time (measured by the director), the bytes each
phase hands to the next task (WatchFilm's PhaseFinished.output_bytes: latents + solver
state), and seconds per handoff (the render log: a segment's low-noise phase starting after
its high-noise phase ended; dispatch and the object transfer included).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from cluster_harness import HOSTS, ONE_HOST, start_cluster

from farm.api.protos import pb
from farm.client import Client


def board(size: int, frames: int, steps: int, title: str) -> dict:
    return {"title": title, "fps": 16, "width": size, "height": size, "model": "tiny",
            "steps": steps, "scenes": [{"id": f"s{i}", "prompt": f"shot {i}", "frames": frames,
                                        "seed": i + 1} for i in range(3)]}


def render(address: str, film: dict) -> dict[str, float]:
    with Client(address) as client:
        handle = client.submit(film)
        sent = [e.phase_finished.output_bytes for e in handle.watch()
                if e.WhichOneof("event") == "phase_finished"]
        done = handle.get()
        assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
        log = [e for e in handle.executions() if e.kind == pb.Execution.KIND_PHASE]
    ends = {(e.unit_id, e.phase_index): e.end_time.ToNanoseconds() / 1e9 for e in log}
    gaps = [ends[(e.unit_id, e.phase_index)] - e.duration.ToNanoseconds() / 1e9
            - ends[(e.unit_id, e.phase_index - 1)]
            for e in log if e.phase_index > 0 and (e.unit_id, e.phase_index - 1) in ends]
    return {"ttff": done.time_to_first_frame.ToNanoseconds() / 1e9,
            "total": (done.update_time.ToNanoseconds() - done.create_time.ToNanoseconds()) / 1e9,
            "bytes": statistics.mean(b for b in sent if b) if any(sent) else 0.0,
            "handoff": statistics.mean(gaps) if gaps else 0.0}


def runs(args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    threads = torch.get_num_threads()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        with start_cluster(Path(tmp) / "one", ONE_HOST, threads=threads) as one:
            render(one.address, board(args.size, args.frames, args.steps, "warm-up"))
            out.append(("1 host", render(one.address, board(args.size, args.frames,
                                                                args.steps, "1 host"))))
        with start_cluster(Path(tmp) / "four", HOSTS, threads=threads) as four:
            render(four.address, board(args.size, args.frames, args.steps, "warm-up"))
            for rate in (None, *args.rates):
                name = "4 hosts" + (f", {rate:g} Mbit/s" if rate else ", unshaped")
                out.append((name, shaped(four, rate, args, name)))
        for delay in args.delays:  # a delay is the network's: a cluster each
            with start_cluster(Path(tmp) / f"delay{delay:g}", HOSTS, threads=threads,
                               delay_ms=delay) as relayed:
                render(relayed.address, board(args.size, args.frames, args.steps, "warm-up"))
                name = f"4 hosts, 1000 Mbit/s, {delay:g} ms"
                out.append((name, shaped(relayed, 1000.0, args, name)))
    return out


def shaped(cluster, rate: float | None, args: argparse.Namespace, name: str) -> dict:
    """The film on `cluster` with every worker host's link at `rate` (None: unlimited)."""
    for role in ("high", "low", "decode"):
        cluster.net.shape(cluster.hosts[role], rate)
    return render(cluster.address, board(args.size, args.frames, args.steps, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--delays", default="0,5,20",
                        help="link delays (ms, each way) of 4-host runs at 1 Gbit/s (relayed)")
    parser.add_argument("--rates", default="1000,100",
                        help="link rates (Mbit/s) of 4-host runs without delay (tbf)")
    args = parser.parse_args()
    args.delays = [float(d) for d in args.delays.split(",") if d]
    args.rates = [float(r) for r in args.rates.split(",") if r]
    results = runs(args)
    base = results[0][1]
    print(f"film: tiny model, 3 scenes x {args.frames} frames at {args.size}x{args.size}, "
          f"{args.steps} steps, high/low expert split; every worker host's link shaped in both "
          "directions; one warm-up film per cluster; all hosts share this machine's cores, so "
          "compute does not scale out here: the ratios show what the network adds")
    print(f"{'run':<30}{'ttff s':>8}{'total s':>9}{'bytes/handoff':>15}{'s/handoff':>11}"
          f"{'ttff x':>8}{'total x':>9}")
    for name, r in results:
        print(f"{name:<30}{r['ttff']:>8.2f}{r['total']:>9.2f}{r['bytes']:>15,.0f}"
              f"{r['handoff']:>11.3f}{r['ttff'] / base['ttff']:>8.2f}"
              f"{r['total'] / base['total']:>9.2f}")


if __name__ == "__main__":
    main()

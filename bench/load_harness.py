"""Many streaming clients against one server: bench/load.py and the load test (tests/serving).

Each client streams one film's frames; a share of them drop the connection at a random
frame and resume from the next one on a new connection. The server's memory is sampled
meanwhile (it runs as its own process).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass, field

from farm.client import Client


@dataclass
class ClientRun:
    film: str
    indices: list[int] = field(default_factory=list)
    dropped_at: int | None = None
    first_frame_s: float = 0.0
    seconds: float = 0.0
    error: str = ""


@dataclass
class LoadResult:
    runs: list[ClientRun]
    peak_rss_mb: float
    seconds: float

    @property
    def frames(self) -> int:
        return sum(len(r.indices) for r in self.runs)

    def percentile(self, values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def stream_client(address: str, token: str, film: str, drop_at: int | None) -> ClientRun:
    run = ClientRun(film, dropped_at=drop_at)
    started = time.perf_counter()
    try:
        with Client(address, token=token) as client:
            for frame in client.film(film).frames():
                if not run.indices:
                    run.first_frame_s = time.perf_counter() - started
                run.indices.append(frame.film_index)
                if drop_at is not None and len(run.indices) == drop_at:
                    break  # leaving the with-block closes the channel mid-stream
        if drop_at is not None:
            resume = run.indices[-1] + 1 if run.indices else 0
            with Client(address, token=token) as client:
                run.indices += [f.film_index for f in client.film(film).frames(start=resume)]
    except Exception as exc:  # noqa: BLE001 - reported in the result
        run.error = f"{type(exc).__name__}: {exc}"
    run.seconds = time.perf_counter() - started
    return run


def run_load(address: str, token: str, films: dict[str, int], clients: int = 50,
             drop_share: float = 0.3, seed: int = 0, server_pid: int | None = None) -> LoadResult:
    """`films`: film name -> frame count. Every client streams one film to its end."""
    rng = random.Random(seed)
    names = list(films)
    plan = []
    for i in range(clients):
        name = names[i % len(names)]
        drop = rng.randrange(1, films[name]) if rng.random() < drop_share else None
        plan.append((name, drop))
    runs: list[ClientRun | None] = [None] * clients
    peak = [0.0]
    done = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(server_pid, peak, done), daemon=True)
    sampler.start()
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda i=i, p=p: runs.__setitem__(
        i, stream_client(address, token, *p))) for i, p in enumerate(plan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    done.set()
    sampler.join(timeout=5)
    return LoadResult([r for r in runs if r is not None], peak[0], time.perf_counter() - started)


def _sample_rss(pid: int | None, peak: list[float], done: threading.Event) -> None:
    if pid is None:
        return
    import psutil

    proc = psutil.Process(pid)
    while not done.is_set():
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True))
        except psutil.Error:
            return
        peak[0] = max(peak[0], rss / 2**20)
        done.wait(0.1)

"""Bounded load on a real server process: 50 concurrent streaming clients, 30 % of them
dropping their connection at a random frame and resuming; a burst of submissions past
the queue limit. Every client gets every frame exactly once, the excess submissions get
RESOURCE_EXHAUSTED, and the server's memory stays bounded (the peak is printed)."""

from __future__ import annotations

import concurrent.futures

import grpc
import pytest

from bench.load_harness import run_load
from bench.serve_proc import start_server, stop_server
from farm.client import Client
from farm.client.errors import ApiError
from tests.serving.api.helpers import tiny_board, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model, pytest.mark.slow]
TOKEN = "load-token-0123456789abcdef"
MAX_FILMS = 4


def test_fifty_streaming_clients_and_a_burst_past_the_queue(tmp_path):
    (tmp_path / "tokens").write_text(f"studio {TOKEN}\n")
    proc, address = start_server(
        ["--artifacts", str(tmp_path / "art"), "--db", f"sqlite:///{tmp_path}/db.sqlite",
         "--tokens", str(tmp_path / "tokens"), "--max-concurrent-rpcs", "96",
         "--max-streams-per-tenant", "64", "--max-films-per-tenant", str(MAX_FILMS)],
        tmp_path / "serve.log")
    try:
        with Client(address, token=TOKEN) as client:
            films = {client.submit(tiny_board(scenes=2, frames=17)).name: 34 for _ in range(2)}
            result = run_load(address, TOKEN, films, clients=50, drop_share=0.3, seed=7,
                              server_pid=proc.pid)
            for name in films:
                assert wait_final(client.film(name)).frames_done == 34
            burst = _burst(client, MAX_FILMS + 6)
        assert all(not r.error for r in result.runs), [r.error for r in result.runs if r.error]
        assert len(result.runs) == 50
        assert all(r.indices == list(range(films[r.film])) for r in result.runs)
        assert sum(r.dropped_at is not None for r in result.runs) >= 10
        assert burst["RESOURCE_EXHAUSTED"] >= 6 and set(burst) <= {"OK", "RESOURCE_EXHAUSTED"}
        print(f"\nload: {len(result.runs)} clients, {result.frames} frames in "
              f"{result.seconds:.1f} s, server peak RSS {result.peak_rss_mb:.0f} MiB, "
              f"burst {burst}")
        assert result.peak_rss_mb < 4096  # bounded: no per-client copies of the film
    finally:
        stop_server(proc)


def _burst(client: Client, n: int) -> dict[str, int]:
    def submit(i: int) -> str:
        try:
            client.submit(tiny_board(scenes=1, frames=9))
            return "OK"
        except ApiError as exc:
            return exc.code.name if isinstance(exc.code, grpc.StatusCode) else str(exc.code)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        codes = list(pool.map(submit, range(n)))
    return {c: codes.count(c) for c in set(codes)}

"""The links the cluster tests and bench/cluster.py build (bench/netns.py): a relayed link
holds every frame its delay each way (bench/netrelay.py, for kernels without tc netem) and
delivers every byte in order; a cut link carries nothing until restored."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from bench.netns import Network

pytestmark = [pytest.mark.cluster]

# Round trip over TCP between two hosts: the client sends `n` bytes ending in "!", the
# server answers one byte once it has them all; prints the seconds of the first exchange.
ECHO = """
import socket, sys, time
if sys.argv[1] == "serve":
    s = socket.socket(); s.bind((sys.argv[2], 5001)); s.listen(1); print("up", flush=True)
    c, _ = s.accept(); got = b""
    while not got.endswith(b"!"):
        got += c.recv(1 << 20)
    c.sendall(b"%d" % len(got))
else:
    c = socket.create_connection((sys.argv[2], 5001), timeout=10)
    n = int(sys.argv[3]); t = time.perf_counter(); c.sendall(b"x" * (n - 1) + b"!")
    print(c.recv(64).decode(), time.perf_counter() - t)
"""


@pytest.fixture
def relayed(tmp_path):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2: the hosts are network namespaces")
    with Network(delay_ms=5.0) as net:
        net.logs = tmp_path
        yield net, net.add_host("a"), net.add_host("b")


def exchange(net, a, b, n: int, timeout: float = 30.0) -> tuple[int, float]:
    log = net.logs / f"echo-{time.monotonic_ns()}.log"
    server = net.start(b, [sys.executable, "-u", "-c", ECHO, "serve", b.address], log=log)
    try:
        deadline = time.monotonic() + timeout
        while "up" not in log.read_text():
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.05)
        done = net.run(a, [sys.executable, "-c", ECHO, "send", b.address, str(n)],
                       timeout=timeout)
    finally:
        server.kill()
        server.wait()
    assert done.returncode == 0, done.stderr
    count, seconds = done.stdout.split()
    return int(count), float(seconds)


def test_a_relayed_link_delays_each_way_and_loses_nothing(relayed):
    net, a, b = relayed
    # connect + the data + the answer: at least two round trips of 4 x 5 ms (each host's
    # link, each way), however idle or busy the machine
    count, seconds = exchange(net, a, b, 3_000_000)
    assert count == 3_000_000
    assert seconds >= 0.020


def test_a_cut_relayed_link_carries_nothing_until_restored(relayed):
    net, a, b = relayed
    net.link(b, up=False)
    done = net.run(a, [sys.executable, "-c", ECHO, "send", b.address, "10"], timeout=60)
    assert done.returncode != 0  # no route to the host's eth0 while its link is down
    net.link(b, up=True)
    assert exchange(net, a, b, 10)[0] == 10

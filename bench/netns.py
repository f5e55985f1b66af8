"""Hosts on one machine: Linux network namespaces on a bridge, each with its own address in
198.18.0.0/15 (reserved for benchmarking networks), for tests of what crosses a network.

    root namespace (this test process)          198.18.K.254/24 on the bridge
        └── bridge rf<run>br ──┬── veth ── ns rf<run>h0  "head"   198.18.K.1   eth0
                               ├── veth ── ns rf<run>h1  "high"   198.18.K.2   eth0
                               └── veth ── ns rf<run>h2  ...       (K: a /24 not in use)

With `delay_ms` (0 or more), every host's link is a pair of TAP devices joined by a relay process
(bench/netrelay.py) that holds each frame `delay_ms` each way: a link with latency on a
kernel without tc netem (this machine's has neither netem nor fq). Frames are up to 64 kB
(MTU 65000) there, as segmentation offload makes them on the veth links.

Only what this module creates is touched: its namespaces, veths and bridge (names carry the
run's id), the processes it starts in them, and addresses in a /24 of 198.18.0.0/15
that no interface on the machine uses yet. A host's
processes are ended by the PIDs of its namespace (`ip netns pids`), never by name; nothing
like `ray stop` that ends every Ray process on the machine. `close()` undoes everything and
is safe to call twice; use the Network as a context manager so that a failure or Ctrl-C
tears down too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Networks come from 198.18.0.0/15: 512 /24s, one per Network, never one in use already
# (two runs at once, e.g. a test and a benchmark, each get their own).
RANGE = [f"198.{18 + k // 256}.{k % 256}" for k in range(512)]


def _free_subnet(start: int) -> str:
    used = _ip("-4", "-o", "addr", "show").stdout
    for k in range(512):
        subnet = RANGE[(start + k) % 512]
        if f" {subnet}." not in used:
            return subnet
    raise RuntimeError("every /24 of 198.18.0.0/15 is in use on this machine")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass
class Host:
    name: str  # the role, e.g. "head"
    namespace: str
    address: str
    veth: str  # the root-side end of its link
    processes: list[subprocess.Popen] = field(default_factory=list)

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.namespace, check=False).stdout
        return [int(p) for p in out.split()]


RELAY = Path(__file__).with_name("netrelay.py")
RELAY_MTU = 65000


class Network:
    def __init__(self, run_id: str | None = None, delay_ms: float | None = None):
        """`delay_ms`: every link holds frames that long each way (a relay per host; 0 is a
        relay without delay). None: veth links."""
        self.run_id = run_id or f"{os.getpid() % 100000}"
        self.bridge = f"rf{self.run_id}br"
        self.hosts: dict[str, Host] = {}
        self.delay_ms = delay_ms
        self.relays: list[subprocess.Popen] = []
        # Run after the hosts are gone (e.g. removing a database's folder).
        self.cleanups: list = []
        _ip("link", "add", self.bridge, "type", "bridge")
        self.subnet = _free_subnet(os.getpid())
        _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        index = len(self.hosts)
        host = Host(name, f"rf{self.run_id}h{index}", f"{self.subnet}.{index + 1}",
                    f"rf{self.run_id}v{index}")
        inner = f"rf{self.run_id}i{index}"
        _ip("netns", "add", host.namespace)
        self.hosts[name] = host
        inside = ("netns", "exec", host.namespace, "ip")
        if self.delay_ms is not None:
            self._relay(inner, host.veth)
        else:
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.namespace)
        _ip("link", "set", host.veth, "master", self.bridge)
        _ip("link", "set", host.veth, "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "set", inner, "name", "eth0")
        if self.delay_ms is not None:
            _ip(*inside, "link", "set", "eth0", "mtu", str(RELAY_MTU))
        _ip(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        return host

    def _relay(self, inner: str, port: str) -> None:
        """Two TAP devices (`inner` for the host, `port` for the bridge) and the relay
        between them; returns once both exist."""
        proc = subprocess.Popen([sys.executable, str(RELAY), inner, port, str(self.delay_ms)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.relays.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"the link relay did not start: {line}{proc.stdout.read()}")
        _ip("link", "set", port, "mtu", str(RELAY_MTU))

    # ---- processes ----------------------------------------------------------------------

    def start(self, host: Host, argv: list[str], log: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """`argv` inside the host's namespace, output to `log` (never a pipe nobody reads)."""
        with log.open("ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", host.namespace, *argv],
                                    stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        host.processes.append(proc)
        return proc

    def run(self, host: Host, argv: list[str], env: dict[str, str] | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", host.namespace, *argv], env=env,
                              capture_output=True, text=True, timeout=timeout)

    def kill_host(self, host: Host) -> int:
        """SIGKILL every process in the host's namespace (a host losing power): how many."""
        pids = host.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    # ---- links --------------------------------------------------------------------------

    def link(self, host: Host, up: bool) -> None:
        """Cut or restore the host's link (its processes live on, unreachable)."""
        _ip("link", "set", host.veth, "up" if up else "down")

    def shape(self, host: Host, rate_mbit: float | None = None) -> None:
        """Limit the host's link to `rate_mbit` in both directions (tbf on the bridge side's
        egress towards the host and on the host's eth0); None: no limit. Delays are the
        Network's (`delay_ms`)."""
        if rate_mbit:  # burst: one jiffy's worth at the rate, at least 64 kB / two frames
            least = 2 * (RELAY_MTU + 14) if self.delay_ms is not None else 65536
            burst = max(least, int(rate_mbit * 1e6 / 8 / 250))
            spec = ["tbf", "rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", "50ms"]
        else:
            spec = ["pfifo"]
        for argv in (["tc", "qdisc", "replace", "dev", host.veth, "root", *spec],
                     ["ip", "netns", "exec", host.namespace, "tc", "qdisc", "replace", "dev",
                      "eth0", "root", *spec]):
            done = subprocess.run(argv, capture_output=True, text=True)
            if done.returncode:
                raise ValueError(f"tc {spec[0]}: {done.stderr.strip()}")

    # ---- teardown -----------------------------------------------------------------------

    def stop_hosts(self, hosts: list[Host], grace_s: float = 10.0) -> bool:
        """End the hosts' processes: SIGTERM to our own children (a host shut down), then
        SIGKILL whatever is left in their namespaces after `grace_s`. True if none was
        left to kill."""
        for host in hosts:
            for proc in host.processes:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(h.pids() for h in hosts):
            time.sleep(0.2)
        polite = not any(h.pids() for h in hosts)
        for host in hosts:
            self.kill_host(host)
            for proc in host.processes:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        return polite

    def close(self) -> None:
        self.stop_hosts(list(self.hosts.values()))
        for relay in self.relays:  # the links go after the hosts (TAPs vanish with them)
            relay.terminate()
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
        self.relays.clear()
        for host in self.hosts.values():
            _ip("link", "del", host.veth, check=False)
            _ip("netns", "del", host.namespace, check=False)
        self.hosts.clear()
        _ip("link", "del", self.bridge, check=False)
        while self.cleanups:
            self.cleanups.pop()()

"""Hosts on one machine: Linux network namespaces on a bridge, each with its own address in
198.18.0.0/15 (reserved for benchmarking networks), for tests of what crosses a network.

    root namespace (this test process)          198.18.0.254/24 on the bridge
        └── bridge rf<run>br ──┬── veth ── ns rf<run>h0  "head"   198.18.0.1   eth0
                               ├── veth ── ns rf<run>h1  "high"   198.18.0.2   eth0
                               └── veth ── ns rf<run>h2  ...

Only what this module creates is touched: its namespaces, veths and bridge (names carry the
run's id), the processes it starts in them, and addresses in 198.18.0.0/24. A host's
processes are ended by the PIDs of its namespace (`ip netns pids`), never by name; nothing
like `ray stop` that ends every Ray process on the machine. `close()` undoes everything and
is safe to call twice; use the Network as a context manager so that a failure or Ctrl-C
tears down too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "198.18.0"
ROOT_ADDRESS = f"{SUBNET}.254"


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


class Network:
    def __init__(self, run_id: str | None = None):
        self.run_id = run_id or f"{os.getpid() % 100000}"
        self.bridge = f"rf{self.run_id}br"
        self.hosts: dict[str, Host] = {}
        # Run after the hosts are gone (e.g. removing a database's folder).
        self.cleanups: list = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{ROOT_ADDRESS}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        index = len(self.hosts)
        host = Host(name, f"rf{self.run_id}h{index}", f"{SUBNET}.{index + 1}",
                    f"rf{self.run_id}v{index}")
        inner = f"rf{self.run_id}i{index}"
        _ip("netns", "add", host.namespace)
        self.hosts[name] = host
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.namespace)
        _ip("link", "set", host.veth, "master", self.bridge)
        _ip("link", "set", host.veth, "up")
        inside = ("netns", "exec", host.namespace, "ip")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "set", inner, "name", "eth0")
        _ip(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        return host

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

    def shape(self, host: Host, delay_ms: float, rate_mbit: float | None = None) -> None:
        """tc netem on the host's link (both directions see it: it shapes the root side's
        egress towards the host and the host's eth0 egress)."""
        spec = ["delay", f"{delay_ms}ms"] + (["rate", f"{rate_mbit}mbit"] if rate_mbit else [])
        subprocess.run(["tc", "qdisc", "replace", "dev", host.veth, "root", "netem", *spec],
                       check=True, capture_output=True)
        subprocess.run(["ip", "netns", "exec", host.namespace, "tc", "qdisc", "replace", "dev",
                        "eth0", "root", "netem", *spec], check=True, capture_output=True)

    # ---- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        for host in self.hosts.values():
            for proc in host.processes:  # our own children first, politely
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(h.pids() for h in self.hosts.values()):
            time.sleep(0.2)
        for host in self.hosts.values():
            self.kill_host(host)
            for proc in host.processes:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            _ip("link", "del", host.veth, check=False)
            _ip("netns", "del", host.namespace, check=False)
        self.hosts.clear()
        _ip("link", "del", self.bridge, check=False)
        while self.cleanups:
            self.cleanups.pop()()

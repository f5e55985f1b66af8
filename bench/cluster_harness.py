"""A multi-host Ray cluster on this machine, for tests/cluster and bench/cluster.py: hosts
are network namespaces on a bridge (bench/netns.py), each running a Ray node; PostgreSQL and
the director on the head; the production Serve app (`reelfarm serve --config` ->
serving.app:build_app) with its pools pinned to hosts by node resources.

    ns head    198.18.0.1   Ray head (GCS), the director (resource rf_head), PostgreSQL
    ns high    198.18.0.2   Ray worker: the high-noise pool (rf_high)
    ns low     198.18.0.3   Ray worker: the low-noise pool (rf_low)
    ns decode  198.18.0.4   Ray worker: VAE + text encoder pool (rf_decode)
    this process            198.18.0.254, a client of the gRPC proxy on the head

`start_cluster(root, layout)` takes any layout (role -> the resources its node offers; the
first role is the head): one host offering every resource is the one-host baseline. The
artifact store is a folder every host sees (a shared filesystem, as NFS or a bucket would
be). Every wait has a deadline; everything goes away when the context ends, fails or is
interrupted.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

try:  # run as a script from bench/, or imported as bench.cluster_harness
    from netns import Host, Network
except ImportError:
    from bench.netns import Host, Network

# The scenarios' layout: a host per pool, and the head.
HOSTS = {role: {f"rf_{role}": 10} for role in ("head", "high", "low", "decode")}
ONE_HOST = {"head": {f"rf_{role}": 10 for role in HOSTS}}

BIN = Path(sys.executable).parent
GCS_PORT, GRPC_PORT, HTTP_PORT, PG_PORT = 6379, 9000, 8000, 5432


@dataclass
class Cluster:
    net: Network
    hosts: dict[str, Host]
    root: Path
    address: str  # the Serve gRPC proxy on the head, for clients
    database_url: str
    temp: Path  # the Ray nodes' temp folders (short: socket paths)

    def add_node(self, role: str, resources: dict[str, float]) -> Host:
        """A new host joining the cluster with `resources` (e.g. a spare for a lost one);
        returns once its Ray node is up."""
        host = self.net.add_host(role)
        self.hosts[role] = host
        proc = _start_ray(self.net, host, self.hosts["head"], self.temp, self.root,
                          resources=resources)
        if not _node_alive(self, host):
            log = (self.root / f"ray-{role}.log").read_text()[-3000:]
            raise TimeoutError(f"the Ray node on {role} did not join (exit {proc.poll()})\n{log}")
        return host

    def drain_node(self, role: str, deadline_s: int = 120) -> None:
        """Ask Ray to drain the host's node, as an autoscaler does before it removes one:
        Serve starts its replicas elsewhere and stops these, which leave the director
        cleanly (serving.pool.PoolWorker.__del__)."""
        head, gcs = self.hosts["head"], f"{self.hosts['head'].address}:{GCS_PORT}"
        found = self.net.run(head, [sys.executable, "-c", _NODE_ID, gcs,
                                    self.hosts[role].address], env=_env())
        assert found.returncode == 0, found.stderr
        done = self.net.run(head, [str(BIN / "ray"), "drain-node", "--address", gcs,
                                   "--node-id", found.stdout.strip(),
                                   "--reason", "DRAIN_NODE_REASON_PREEMPTION",
                                   "--reason-message", f"host {role} leaves the cluster",
                                   "--deadline-remaining-seconds", str(deadline_s)], env=_env())
        assert done.returncode == 0, done.stdout + done.stderr

    def stop_node(self, role: str) -> bool:
        """Shut the host down (SIGTERM to its Ray node; SIGKILL after 30 s): True if it
        stopped by itself."""
        return self.net.stop_hosts([self.hosts[role]], grace_s=30.0)

    def host_of(self, worker_id: str) -> str:
        """The role of the host a worker id (`<pool>-<replica>-<n>@<address>`) names."""
        address = worker_id.rsplit("@", 1)[-1]
        return next(name for name, h in self.hosts.items() if h.address == address)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", MKL_CBWR="COMPATIBLE", HF_HUB_OFFLINE="1",
               RAY_USAGE_STATS_ENABLED="0")
    return env


def _wait(what: str, ready, timeout: float, log: Path | None = None,
          proc: subprocess.Popen | None = None) -> None:
    """Until `ready()`; TimeoutError (with the log's end) after `timeout` s or as soon as
    `proc` has exited."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise TimeoutError(f"{what} not ready after {timeout} s\n{tail}")
        time.sleep(0.5)


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


_NODE_UP = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    if any(n["Alive"] and n["NodeManagerAddress"] == sys.argv[2] for n in ray.nodes()):
        sys.exit(0)
    time.sleep(0.5)
sys.exit(1)
"""


_NODE_ID = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
print(next(n["NodeID"] for n in ray.nodes()
           if n["Alive"] and n["NodeManagerAddress"] == sys.argv[2]))
"""


def _node_alive(cluster: Cluster, host: Host, timeout: float = 120.0) -> bool:
    """Whether the cluster lists a live Ray node at the host's address within `timeout`
    (asked from the head: a Ray driver there, which exits once it knows)."""
    head = cluster.hosts["head"]
    done = cluster.net.run(head, [sys.executable, "-c", _NODE_UP, f"{head.address}:{GCS_PORT}",
                                  host.address, str(timeout)], env=_env(), timeout=timeout + 60)
    return done.returncode == 0


def _postgres(net: Network, head: Host, root: Path) -> str:
    """Debian's PostgreSQL in the head's namespace, listening on the head's address."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        raise RuntimeError("PostgreSQL server binaries not installed (.ci/run installs them)")
    # Its own folder: pytest's are private to root, and postgres runs as its own user.
    data = Path(tempfile.mkdtemp(prefix="reelfarm-pg-"))
    shutil.chown(data, "postgres", "postgres")
    net.cleanups.append(lambda: shutil.rmtree(data, ignore_errors=True))
    as_pg = ["runuser", "-u", "postgres", "--"]
    done = net.run(head, [*as_pg, f"{binaries[-1]}/initdb", "-D", str(data), "-A", "trust",
                          "-U", "reelfarm"])
    assert done.returncode == 0, done.stderr
    with (data / "pg_hba.conf").open("a") as hba:  # the hosts' subnet, and nothing else
        hba.write(f"host all reelfarm {head.address.rsplit('.', 1)[0]}.0/24 trust\n")
    opts = f"-c listen_addresses={head.address} -p {PG_PORT} -k {data}"
    done = net.run(head, [*as_pg, f"{binaries[-1]}/pg_ctl", "-D", str(data), "-o", opts,
                          "-l", f"{data}/server.log", "-w", "-t", "60", "start"])
    assert done.returncode == 0, done.stderr
    return f"postgresql+psycopg://reelfarm@{head.address}:{PG_PORT}/postgres"


def _start_ray(net: Network, host: Host, head: Host, temp: Path, root: Path,
               resources: dict[str, float] | None = None) -> subprocess.Popen:
    """A Ray node on `host` (the head if it is the head), offering rf_<role>; its sockets
    and logs under `temp` (short: a socket's path is at most 107 bytes)."""
    # Nodes on one machine share a filesystem: each keeps its sockets and logs apart.
    common = ["--node-ip-address", host.address, "--num-cpus", "2",
              "--temp-dir", str(temp / host.name),
              "--resources", json.dumps(resources or {f"rf_{host.name}": 10}), "--block",
              "--disable-usage-stats"]
    if host is head:
        argv = [str(BIN / "ray"), "start", "--head", "--port", str(GCS_PORT),
                "--include-dashboard", "false", *common]
    else:
        argv = [str(BIN / "ray"), "start", "--address", f"{head.address}:{GCS_PORT}", *common]
    return net.start(host, argv, root / f"ray-{host.name}.log", env=_env())


def serve_config(root: Path, database_url: str, threads: int,
                 high_autoscaling: dict | None = None) -> dict:
    """The production app (serving.app:build_app), its pools pinned by resource: the pool
    holding `high` needs rf_high, and so on (whichever hosts offer them).
    `high_autoscaling`: the high pool's PoolConfig.autoscaling (None: one replica)."""
    def pool(name: str, holds: list[str], role: str) -> dict:
        scaling = {"autoscaling": high_autoscaling} if role == "high" and high_autoscaling else {}
        return {"name": name, "holds": holds, "replicas": 1, "num_cpus": 0.5,
                "torch_threads": threads, "resources": {f"rf_{role}": 1}, **scaling}
    args = {"models": ["tiny"], "artifacts": str(root / "art"), "database_url": database_url,
            "pools": [pool("High", ["high"], "high"), pool("Low", ["low"], "low"),
                      pool("Decode", ["vae", "text"], "decode")],
            "director": {"num_cpus": 0.25, "resources": {"rf_head": 1},
                         "liveness_timeout_s": 5.0}}
    return {"proxy_location": "HeadOnly",
            "http_options": {"host": "0.0.0.0", "port": HTTP_PORT},
            "grpc_options": {"port": GRPC_PORT, "grpc_servicer_functions": [
                "reelfarm.v1.film_service_pb2_grpc.add_FilmServiceServicer_to_server",
                "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server"]},
            "applications": [{"name": "reelfarm", "route_prefix": "/reelfarm",
                              "import_path": "serving.app:build_app", "args": args}]}


@contextmanager
def start_cluster(root: Path, layout: dict[str, dict[str, float]] = HOSTS, *,
                  threads: int = 1, high_autoscaling: dict | None = None,
                  delay_ms: float | None = None) -> Iterator[Cluster]:
    """The cluster of `layout`, its app serving; `threads`: torch threads per pool replica
    (equal to the inline render's for pixel-equal frames); `delay_ms`: every host's link
    holds frames that long each way (bench/netrelay.py; None: plain veth links)."""
    root.mkdir(parents=True, exist_ok=True)
    with Network(delay_ms=delay_ms) as net:
        hosts = {role: net.add_host(role) for role in layout}
        head = hosts["head"]
        url = _postgres(net, head, root)
        temp = Path(tempfile.mkdtemp(prefix="rf"))
        net.cleanups.append(lambda: shutil.rmtree(temp, ignore_errors=True))
        ray_head = _start_ray(net, head, head, temp, root, layout["head"])
        _wait("the Ray head", lambda: _listening(head.address, GCS_PORT), 120,
              root / "ray-head.log", ray_head)
        for role in list(layout)[1:]:
            _start_ray(net, hosts[role], head, temp, root, layout[role])
        (root / "serve.yaml").write_text(yaml.safe_dump(
            serve_config(root, url, threads, high_autoscaling)))
        log = root / "serve.log"
        serve = net.start(head, [str(BIN / "reelfarm"), "serve", "--config",
                                 str(root / "serve.yaml"), "--address",
                                 f"{head.address}:{GCS_PORT}"], log, env=_env())
        _wait("the Serve app", lambda: "running; gRPC on port" in log.read_text(), 400, log,
              serve)
        yield Cluster(net, hosts, root, f"{head.address}:{GRPC_PORT}", url, temp)

"""The multi-host cluster the tests of tests/cluster share (bench/cluster_harness.py): a
host per pool and the head, as network namespaces on this machine. `make cluster-test`;
`make test` (and so CI, which runs as root) runs these tests too."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

from bench.cluster_harness import HOSTS, start_cluster

# The scale-out cluster: the high-noise host has room for one High replica; the pool may
# grow to two when its backlog asks for it (delays short enough for a test).
ONE_HIGH_SLOT = HOSTS | {"high": {"rf_high": 1}}
HIGH_AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "phases_per_replica": 1,
                    "upscale_delay_s": 1, "downscale_delay_s": 30, "look_back_period_s": 15}


def _cluster(tmp_path_factory, layout, **options):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2: the hosts are network namespaces")
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs them)")
    import torch

    return start_cluster(Path(tmp_path_factory.mktemp("cluster")), layout,
                         threads=torch.get_num_threads(), **options)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with _cluster(tmp_path_factory, HOSTS) as running:
        yield running


@pytest.fixture(scope="module")
def scaling_cluster(tmp_path_factory):
    with _cluster(tmp_path_factory, ONE_HIGH_SLOT, high_autoscaling=HIGH_AUTOSCALING) as running:
        yield running

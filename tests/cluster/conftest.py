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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2: the hosts are network namespaces")
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs them)")
    import torch

    with start_cluster(Path(tmp_path_factory.mktemp("cluster")), HOSTS,
                       threads=torch.get_num_threads()) as running:
        yield running

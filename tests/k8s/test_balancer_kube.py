"""The balancer's Kubernetes calls, through the official kubernetes client, against kmock's
KubernetesEmulator on 127.0.0.1.

Why an emulator: no kube-apiserver can run on these machines (none in Debian's archive,
PyPI or npm; kind, k3d and minikube need a Docker engine). KubernetesEmulator is a real HTTP
server that stores objects and applies merge and JSON patches (with `test` operations) the
way the API does, so the client, its kubeconfig loading, URL building and content types
run for real. What it does not do: CRD schema validation, defaulting, resourceVersion and
admission; the rendered objects' schemas are checked by tests/k8s/test_chart.py instead, and
every object the balancer leaves behind is validated again here.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading

import pytest
import yaml

from farm.cli import main
from farm.k8s.balance import run
from farm.k8s.decide import Hysteresis, PoolLoad
from farm.k8s.kube import Conflict, RayServices
from tests.k8s import chartcheck as cc

kmock = pytest.importorskip("kmock")
kubernetes = pytest.importorskip("kubernetes")

NS, NAME = cc.NAMESPACE, cc.RELEASE


@pytest.fixture
def apiserver():
    """(emulator, url): a KubernetesEmulator serving ray.io/v1 rayservices, on its own loop."""
    ready, stop, box = threading.Event(), threading.Event(), {}

    async def serve():
        emulator = kmock.KubernetesEmulator()
        emulator.resources["ray.io/v1/rayservices"] = kmock.ResourceInfo(
            namespaced=True, kind="RayService", verbs={"get", "list", "create", "patch", "update"})
        async with emulator, kmock.Server(emulator) as server:
            box.update(emulator=emulator, url=str(server.url).rstrip("/"))
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield box["emulator"], box["url"]
    stop.set()
    thread.join(10)


@pytest.fixture
def kubeconfig(apiserver, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emu",
        "clusters": [{"name": "emu", "cluster": {"server": apiserver[1]}}],
        "users": [{"name": "me", "user": {}}],
        "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "me",
                                                 "namespace": NS}}]}))
    return str(path)


@pytest.fixture
def api(kubeconfig):
    from farm.k8s.kube import custom_objects_api

    return custom_objects_api(kubeconfig)


@pytest.fixture
def rayservice(api):
    """The chart's default RayService, created through the API."""
    obj = copy.deepcopy(cc.one_object(cc.render({}), "RayService"))
    api.create_namespaced_custom_object("ray.io", "v1", NS, "rayservices", obj)
    return obj


def stored(api) -> dict:
    return api.get_namespaced_custom_object("ray.io", "v1", NS, "rayservices", NAME)


def replicas(obj: dict) -> tuple[dict, dict]:
    args = yaml.safe_load(obj["spec"]["serveConfigV2"])["applications"][0]["args"]
    serve = {p["name"]: p["replicas"] for p in args["pools"]}
    pods = {g["groupName"]: g["replicas"]
            for g in obj["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    return serve, pods


def metrics_file(tmp_path, loads: dict[str, tuple[int, int, int, float]]) -> str:
    lines = []
    for field_i, name in enumerate(["queued_phases", "running_phases", "replicas",
                                    "busy_fraction"]):
        lines.append(f"# TYPE ray_reelfarm_pool_{name} gauge")
        lines += [f'ray_reelfarm_pool_{name}{{pool="{p}",SessionName="s"}} {v[field_i]}'
                  for p, v in loads.items()]
    path = tmp_path / "metrics.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


LOW_HEAVY = {"High": (0, 5, 5, 1.0), "Low": (40, 3, 3, 1.0)}


def test_one_round_patches_serve_replicas_and_worker_groups(apiserver, kubeconfig, api,
                                                            rayservice, tmp_path, capsys):
    code = main(["k8s", "balance", "--rayservice", NAME, "--kubeconfig", kubeconfig,
                 "--metrics-url", metrics_file(tmp_path, LOW_HEAVY), "--max-moves", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "move: High 5->4, Low 3->4" in out
    serve, pods = replicas(stored(api))
    assert serve == {"Decode": 1, "High": 4, "Low": 4}
    assert pods == {"decode": 1, "high": 4, "low": 4}
    # The object the balancer leaves behind is still a valid RayService and ServingConfig.
    assert cc.validate_object(stored(api)) == []
    patches = [r for r in apiserver[0] if r.method.value == "PATCH"]
    assert len(patches) == 1
    assert patches[0].headers["Content-Type"] == "application/json-patch+json"
    assert {op["op"] for op in json.loads(patches[0].body)} == {"test", "replace", "add"}


def test_dry_run_prints_the_patch_and_changes_nothing(apiserver, kubeconfig, api, rayservice,
                                                      tmp_path, capsys):
    before = stored(api)
    code = main(["k8s", "balance", "--rayservice", NAME, "--kubeconfig", kubeconfig,
                 "--metrics-url", metrics_file(tmp_path, LOW_HEAVY), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    patch = json.loads(out.split("JSON Patch (dry run, not applied):\n", 1)[1])
    assert patch[0] == {"op": "test", "path": "/spec/serveConfigV2",
                        "value": before["spec"]["serveConfigV2"]}
    assert stored(api) == before
    assert not [r for r in apiserver[0] if r.method.value == "PATCH"]


def test_a_balanced_farm_is_left_alone(apiserver, kubeconfig, api, rayservice, tmp_path, capsys):
    idle = {"High": (0, 0, 5, 0.0), "Low": (0, 0, 3, 0.0)}
    code = main(["k8s", "balance", "--rayservice", NAME, "--kubeconfig", kubeconfig,
                 "--metrics-url", metrics_file(tmp_path, idle)])
    assert code == 0 and "hold: balanced" in capsys.readouterr().out
    assert not [r for r in apiserver[0] if r.method.value == "PATCH"]


def test_a_change_in_between_is_a_conflict_and_nothing_is_applied(api, rayservice):
    services = RayServices(api)
    read = services.get(NAME, NS)
    from farm.k8s.rayservice import build_patch, read_service

    ops = build_patch(read_service(read), {"High": 4, "Low": 4})
    # Meanwhile `helm upgrade` rewrites the Serve config.
    upgraded = read["spec"]["serveConfigV2"].replace("max_attempts: 3", "max_attempts: 5")
    api.patch_namespaced_custom_object("ray.io", "v1", NS, "rayservices", NAME,
                                       {"spec": {"serveConfigV2": upgraded}})
    with pytest.raises(Conflict):
        services.patch(NAME, NS, ops, read)
    after = stored(api)
    assert after["spec"]["serveConfigV2"] == upgraded
    assert replicas(after) == replicas(read)


def test_the_loop_converges_in_paced_confirmed_moves_then_stops_patching(apiserver, api,
                                                                         rayservice):
    loads = {"High": PoolLoad("High", 0, 5, 5, 1.0), "Low": PoolLoad("Low", 40, 3, 3, 1.0)}
    lines: list[str] = []
    code = run(RayServices(api), NAME, NS, lambda: loads,
               Hysteresis(confirm_rounds=2, max_moves=1), rounds=8, sleep=lambda s: None,
               out=lines.append)
    assert code == 0
    serve, pods = replicas(stored(api))
    # Low's demand asks for its maximum (6 pods) and High keeps its minimum (2).
    assert (serve["High"], serve["Low"], pods["high"], pods["low"]) == (2, 6, 2, 6)
    patches = [r for r in apiserver[0] if r.method.value == "PATCH"]
    assert len(patches) == 3    # one replica per patch; the first move waited for round 2
    assert sum("hold: balanced" in line for line in lines) >= 3


def test_autoscaling_off_is_refused(api, rayservice, kubeconfig, tmp_path, capsys):
    api.patch_namespaced_custom_object(
        "ray.io", "v1", NS, "rayservices", NAME,
        {"spec": {"rayClusterConfig": {"enableInTreeAutoscaling": False}}})
    before = stored(api)
    code = main(["k8s", "balance", "--rayservice", NAME, "--kubeconfig", kubeconfig,
                 "--metrics-url", metrics_file(tmp_path, LOW_HEAVY)])
    assert code == 2 and "enableInTreeAutoscaling is off" in capsys.readouterr().out
    assert stored(api) == before


def test_missing_rayservice_and_unreachable_metrics_exit_2(kubeconfig, tmp_path, capsys):
    code = main(["k8s", "balance", "--rayservice", "nope", "--kubeconfig", kubeconfig,
                 "--metrics-url", metrics_file(tmp_path, LOW_HEAVY)])
    assert code == 2 and "RayService render/nope not found" in capsys.readouterr().out
    code = main(["k8s", "balance", "--rayservice", "nope", "--kubeconfig", kubeconfig,
                 "--metrics-url", str(tmp_path / "missing.txt")])
    assert code == 2 and "missing.txt" in capsys.readouterr().out

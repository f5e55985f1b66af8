"""Reading a RayService for the balancer and building its JSON Patch (pure)."""

from __future__ import annotations

import copy
import json

import jsonpatch
import pytest
import yaml

from farm.k8s.rayservice import ANNOTATION, BalancerConfigError, build_patch, read_service
from tests.k8s import chartcheck as cc


@pytest.fixture(scope="module")
def gpu64():
    return cc.one_object(cc.render(cc.load_values("gpu64")), "RayService")


def test_reads_bindings_bounds_and_replicas_from_the_chart(gpu64):
    view = read_service(gpu64)
    assert view.replicas == {"High": 40, "Low": 22}
    assert [(p.pool, p.steps, p.min_replicas, p.max_replicas) for p in view.policies()] == [
        ("High", 26.0, 16, 48), ("Low", 14.0, 8, 40)]
    assert view.autoscaling


def test_patch_applies_to_exactly_the_balanced_pools(gpu64):
    view = read_service(gpu64)
    assert build_patch(view, {"High": 40, "Low": 22}) == []
    after = jsonpatch.apply_patch(gpu64, build_patch(view, {"High": 42, "Low": 20}))
    assert read_service(after).replicas == {"High": 42, "Low": 20}
    groups = {g["groupName"]: g["replicas"]
              for g in after["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert groups == {"decode": 2, "high": 42, "low": 20}
    before_args = yaml.safe_load(gpu64["spec"]["serveConfigV2"])
    after_args = yaml.safe_load(after["spec"]["serveConfigV2"])
    for pool in after_args["applications"][0]["args"]["pools"]:
        pool.pop("replicas")
    for pool in before_args["applications"][0]["args"]["pools"]:
        pool.pop("replicas")
    assert after_args == before_args      # nothing else in the Serve config moved
    assert cc.validate_object(after) == []


def test_pods_round_up_when_a_pod_hosts_several_replicas(gpu64):
    obj = copy.deepcopy(gpu64)
    policy = json.loads(obj["metadata"]["annotations"][ANNOTATION])
    policy["pools"]["Low"]["replicasPerWorker"] = 4
    obj["metadata"]["annotations"][ANNOTATION] = json.dumps(policy)
    view = read_service(obj)
    ops = build_patch(view, {"High": 39, "Low": 23})
    low = next(o for o in ops if o["path"].endswith("/replicas") and o["value"] in (6,))
    assert low["value"] == 6   # ceil(23 / 4)


@pytest.mark.parametrize("edit, message", [
    (lambda o: o["metadata"]["annotations"].pop(ANNOTATION), "no reelfarm.io/balancer"),
    (lambda o: o["metadata"]["annotations"].__setitem__(ANNOTATION, "{}"), "must be JSON"),
    (lambda o: o["spec"]["rayClusterConfig"]["workerGroupSpecs"].pop(), "no worker group"),
    (lambda o: o["spec"].__setitem__("serveConfigV2", "applications: []"), "expected exactly one"),
])
def test_objects_the_balancer_cannot_handle_are_explained(gpu64, edit, message):
    obj = copy.deepcopy(gpu64)
    edit(obj)
    with pytest.raises(BalancerConfigError, match=message):
        read_service(obj)

"""A reelfarm RayService as the balancer sees it, and the JSON Patch that rebalances it.

Pure functions over the object as the API returns it (a dict): no I/O.

What a patch changes, and why both:
- serveConfigV2, the Serve replicas of each balanced pool (args.pools[].replicas). KubeRay
  applies a serveConfigV2 change in place; Serve starts or stops replicas, and the Ray
  autoscaler (enableInTreeAutoscaling) adds pods to the worker group whose resources fit and
  removes pods once idle.
- rayClusterConfig.workerGroupSpecs[].replicas, the pods those replicas need. KubeRay does
  not push replica counts from a RayService into its running RayCluster (the autoscaler owns
  them there), but a cluster created by the next zero-downtime upgrade starts from them.

The patch is RFC 6902 JSON Patch with `test` operations: on the exact serveConfigV2 string
that was read, and on each worker group's name at its index. If anyone (helm upgrade,
another balancer) changed the object in between, the API server applies nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import yaml

from farm.k8s.decide import PoolPolicy

ANNOTATION = "reelfarm.io/balancer"
IMPORT_PATH = "serving.app:build_app"
HEADER = "# Serve config of reelfarm; pool replicas last set by `reelfarm k8s balance`.\n"


class BalancerConfigError(ValueError):
    """The RayService is not one the balancer can work on (and why)."""


@dataclass(frozen=True, slots=True)
class PoolBinding:
    pool: str                 # Serve pool name (ServingConfig.pools[].name)
    group: str                # KubeRay worker group
    group_index: int
    replicas_per_worker: int
    steps: float
    min_workers: int
    max_workers: int

    def policy(self) -> PoolPolicy:
        rpw = self.replicas_per_worker
        return PoolPolicy(self.pool, self.steps, self.min_workers * rpw, self.max_workers * rpw)

    def workers_for(self, replicas: int) -> int:
        return math.ceil(replicas / self.replicas_per_worker)


@dataclass(frozen=True, slots=True)
class ServiceView:
    name: str
    namespace: str
    bindings: tuple[PoolBinding, ...]
    # Serve replicas per balanced pool, as serveConfigV2 says now.
    replicas: dict[str, int]
    serve_config: str
    autoscaling: bool

    def policies(self) -> list[PoolPolicy]:
        return [b.policy() for b in self.bindings]


def _serving_app(config: dict) -> dict:
    apps = [a for a in config.get("applications") or [] if a.get("import_path") == IMPORT_PATH]
    if len(apps) != 1:
        raise BalancerConfigError(f"serveConfigV2 has {len(apps)} applications with import_path "
                                  f"{IMPORT_PATH}; expected exactly one")
    return apps[0]


def _policy_annotation(obj: dict) -> dict:
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
    if raw is None:
        raise BalancerConfigError(f"no {ANNOTATION} annotation: not deployed by the reelfarm "
                                  "chart, or the chart balances no pool")
    try:
        policy = json.loads(raw)
        pools = policy["pools"]
        assert isinstance(pools, dict) and pools
    except (ValueError, KeyError, TypeError, AssertionError):
        raise BalancerConfigError(f"{ANNOTATION} must be JSON {{\"pools\": {{name: {{group, "
                                  f"replicasPerWorker, steps}}}}}}, got {raw!r}") from None
    return pools


def read_service(obj: dict) -> ServiceView:
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    groups = spec.get("rayClusterConfig", {}).get("workerGroupSpecs") or []
    index = {worker_group.get("groupName"): i for i, worker_group in enumerate(groups)}
    serve_config = spec.get("serveConfigV2") or ""
    try:
        args_pools = _serving_app(yaml.safe_load(serve_config) or {}).get("args", {})["pools"]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise BalancerConfigError(f"serveConfigV2 has no readable args.pools: {exc}") from None
    serve = {entry.get("name"): entry for entry in args_pools}
    bindings, replicas = [], {}
    for pool, policy in sorted(_policy_annotation(obj).items()):
        group = policy.get("group")
        if group not in index:
            raise BalancerConfigError(f"pool {pool}: no worker group {group!r}")
        if pool not in serve:
            raise BalancerConfigError(f"pool {pool}: not in serveConfigV2 args.pools")
        worker_group = groups[index[group]]
        bindings.append(PoolBinding(pool, group, index[group],
                                    int(policy.get("replicasPerWorker", 1)),
                                    float(policy["steps"]),
                                    int(worker_group.get("minReplicas", 0)),
                                    int(worker_group.get("maxReplicas", 0))))
        replicas[pool] = int(serve[pool].get("replicas", 1))
    return ServiceView(meta.get("name", ""), meta.get("namespace", ""), tuple(bindings), replicas,
                       serve_config,
                       bool(spec.get("rayClusterConfig", {}).get("enableInTreeAutoscaling")))


def new_serve_config(view: ServiceView, replicas: dict[str, int]) -> str:
    config = yaml.safe_load(view.serve_config)
    for p in _serving_app(config)["args"]["pools"]:
        if p.get("name") in replicas:
            p["replicas"] = int(replicas[p["name"]])
    return HEADER + yaml.safe_dump(config, sort_keys=False)


def build_patch(view: ServiceView, replicas: dict[str, int]) -> list[dict[str, Any]]:
    """JSON Patch setting the balanced pools to `replicas` (Serve replicas); [] if nothing
    changes."""
    if all(view.replicas[b.pool] == replicas[b.pool] for b in view.bindings):
        return []
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/serveConfigV2", "value": view.serve_config},
        {"op": "replace", "path": "/spec/serveConfigV2", "value": new_serve_config(view, replicas)},
    ]
    for b in view.bindings:
        base = f"/spec/rayClusterConfig/workerGroupSpecs/{b.group_index}"
        ops += [{"op": "test", "path": f"{base}/groupName", "value": b.group},
                # "add" sets the member whether or not it exists (replace needs it).
                {"op": "add", "path": f"{base}/replicas", "value": b.workers_for(replicas[b.pool])}]
    return ops

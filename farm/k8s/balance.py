"""`reelfarm k8s balance`: rounds of read loads -> read RayService -> decide -> patch.

plan_round is pure (the object and the loads in, the decision and the patch out); run()
does the I/O through what it is given, so tests drive it against an emulated API server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from farm.k8s.decide import BalancerState, Decision, Hysteresis, PoolLoad, decide
from farm.k8s.kube import Conflict, KubeError, RayServices
from farm.k8s.metrics import MetricsError
from farm.k8s.rayservice import BalancerConfigError, ServiceView, build_patch, read_service


@dataclass(frozen=True)
class RoundPlan:
    view: ServiceView
    loads: dict[str, PoolLoad]
    decision: Decision
    patch: list[dict] = field(default_factory=list)


def plan_round(obj: dict, loads: dict[str, PoolLoad], hysteresis: Hysteresis,
               state: BalancerState) -> tuple[RoundPlan, BalancerState]:
    view = read_service(obj)
    decision, state = decide(loads, view.replicas, view.policies(), hysteresis, state)
    patch = build_patch(view, decision.next) if decision.changed else []
    return RoundPlan(view, loads, decision, patch), state


def format_plan(plan: RoundPlan) -> str:
    d = plan.decision
    lines = [f"{'pool':<10} {'queued':>6} {'running':>7} {'busy':>5} {'replicas':>8} "
             f"{'ideal':>6} {'target':>6} {'next':>5}"]
    for b in plan.view.bindings:
        load = plan.loads.get(b.pool)
        q, r, busy = ((load.queued_phases, load.running_phases, f"{load.busy_fraction:.2f}")
                      if load else ("-", "-", "-"))
        ideal = f"{d.ideal[b.pool]:.2f}" if b.pool in d.ideal else "-"
        lines.append(f"{b.pool:<10} {q:>6} {r:>7} {busy:>5} {d.current[b.pool]:>8} "
                     f"{ideal:>6} {d.target[b.pool]:>6} {d.next[b.pool]:>5}")
    lines.append(d.reason)
    return "\n".join(lines)


def run(services: RayServices, name: str, namespace: str,
        read_loads: Callable[[], dict[str, PoolLoad]], hysteresis: Hysteresis, *,
        dry_run: bool = False, rounds: int | None = 1, interval: float = 60.0,
        sleep: Callable[[float], None] = time.sleep, out: Callable[[str], None] = print) -> int:
    """Balance for `rounds` rounds (None: forever). With one round, an error is the exit
    status (2); in a loop it is printed and the next round tries again."""
    state, done = BalancerState(), 0
    while rounds is None or done < rounds:
        if done:
            sleep(interval)
        done += 1
        try:
            state = _round(services, name, namespace, read_loads, hysteresis, state, dry_run, out)
        except Conflict as exc:
            out(f"conflict: {exc}; the next round starts over")
            state = BalancerState()
        except (KubeError, MetricsError, BalancerConfigError) as exc:
            out(f"error: {exc}")
            if rounds == 1:
                return 2
    return 0


def _round(services: RayServices, name: str, namespace: str,
           read_loads: Callable[[], dict[str, PoolLoad]], hysteresis: Hysteresis,
           state: BalancerState, dry_run: bool, out: Callable[[str], None]) -> BalancerState:
    loads = read_loads()
    obj = services.get(name, namespace)
    plan, state = plan_round(obj, loads, hysteresis, state)
    out(format_plan(plan))
    if not plan.patch:
        return state
    if dry_run:
        out("JSON Patch (dry run, not applied):\n" + json.dumps(plan.patch, indent=2))
        return state
    if not plan.view.autoscaling:
        raise BalancerConfigError(
            "enableInTreeAutoscaling is off: new Serve replicas would get no pods (KubeRay does "
            "not pass RayService replica counts to a running cluster). Install the chart with "
            "autoscaling.enabled=true")
    services.patch(name, namespace, plan.patch, obj)
    out(f"patched RayService {namespace}/{name}: " + ", ".join(
        f"{b.pool}={plan.decision.next[b.pool]} ({b.workers_for(plan.decision.next[b.pool])} "
        f"pods of {b.group})" for b in plan.view.bindings))
    return state

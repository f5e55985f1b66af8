"""`reelfarm k8s balance`: move GPU replicas between expert pools of a RayService."""

from __future__ import annotations

import argparse
import functools
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "k8s", help="Kubernetes: the pool balancer for the Helm chart's RayService")
    k8s = parser.add_subparsers(dest="k8s_command", required=True, metavar="COMMAND")
    b = k8s.add_parser("balance", help="patch a RayService's pool replicas toward the step split",
                       description=(
                           "Reads per-pool queue gauges (reelfarm_pool_*; see farm/k8s/metrics.py) "
                           "and moves Serve replicas between the balanced pools of a RayService "
                           "deployed by helm/reelfarm, within its worker groups' min/max, with "
                           "hysteresis. One round unless --loop."))
    b.add_argument("--rayservice", required=True, help="the RayService's name")
    b.add_argument("--namespace", help="default: the kubeconfig context's (or the pod's) namespace")
    b.add_argument("--metrics-url", action="append", default=[], metavar="URL",
                   help="Prometheus text exposition (a /metrics or /federate URL, or a file); "
                        "repeatable")
    b.add_argument("--kubeconfig", help="default: in-cluster service account, else KUBECONFIG or "
                                        "~/.kube/config")
    b.add_argument("--context", help="kubeconfig context")
    b.add_argument("--dry-run", action="store_true", help="print the JSON Patch, apply nothing")
    b.add_argument("--loop", action="store_true", help="keep balancing every --interval seconds")
    b.add_argument("--interval", type=float, default=60.0, help="seconds between rounds (60)")
    b.add_argument("--rounds", type=int, help="stop after N rounds (default: 1, or forever "
                                              "with --loop)")
    b.add_argument("--confirm-rounds", type=int, default=3,
                   help="rounds in a row a move must be proposed before it is made (3; a single "
                        "round acts at once)")
    b.add_argument("--min-gain", type=float, default=1.0,
                   help="replicas by which a move must cut the distance to the ideal split (1.0)")
    b.add_argument("--max-moves", type=int, default=2, help="replicas moved per round at most (2)")
    b.add_argument("--prior", type=float, default=1.0,
                   help="pseudo-phases per pool: an idle farm goes to the plain step split (1.0)")
    b.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from farm.k8s.balance import run as balance
    from farm.k8s.decide import Hysteresis
    from farm.k8s.kube import KubeError, RayServices, custom_objects_api, default_namespace
    from farm.k8s.metrics import read_loads

    if not args.metrics_url:
        print("error: --metrics-url is required (where the reelfarm_pool_* gauges are)",
              file=sys.stderr)
        return 2
    rounds = args.rounds if args.rounds is not None else (None if args.loop else 1)
    try:
        # One round cannot wait for confirmation from rounds that never come.
        hysteresis = Hysteresis(confirm_rounds=1 if rounds == 1 else args.confirm_rounds,
                                min_gain=args.min_gain, max_moves=args.max_moves,
                                prior_phases=args.prior)
        services = RayServices(custom_objects_api(args.kubeconfig, args.context))
    except (ValueError, KubeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    namespace = args.namespace or default_namespace(args.kubeconfig, args.context)
    return balance(services, args.rayservice, namespace,
                   functools.partial(read_loads, args.metrics_url), hysteresis,
                   dry_run=args.dry_run, rounds=rounds, interval=args.interval,
                   out=lambda s: print(s, flush=True))

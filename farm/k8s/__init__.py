"""reelfarm on Kubernetes: the pool balancer (`reelfarm k8s balance`).

    decide.py     the decision: pure, unit- and property-tested
    metrics.py    per-pool gauges from Prometheus text exposition (names documented there)
    rayservice.py a RayService as the balancer reads it, and the JSON Patch it writes (pure)
    kube.py       the only module that calls the Kubernetes API (official client)
    balance.py    rounds: read, decide, patch (or print the patch with --dry-run)

The Helm chart that deploys reelfarm as a KubeRay RayService is helm/reelfarm.
"""

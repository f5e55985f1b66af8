"""The balancer's Kubernetes calls, through the official kubernetes client: read a
RayService, apply a JSON Patch to it. Nothing else talks to the API server."""

from __future__ import annotations

import os
from typing import Any

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayservices"


class KubeError(RuntimeError):
    pass


class Conflict(KubeError):
    """The RayService changed between our read and our patch; nothing was applied."""


def custom_objects_api(kubeconfig: str | None = None, context: str | None = None):
    """A CustomObjectsApi for the pod's service account when running in a cluster (and no
    kubeconfig is named), else for the kubeconfig (KUBECONFIG, ~/.kube/config)."""
    from kubernetes import client, config

    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)
        except (config.ConfigException, OSError) as exc:
            raise KubeError(f"kubeconfig: {exc}") from None
    return client.CustomObjectsApi()


def default_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The namespace of the kubeconfig's context, or the pod's own, else 'default'."""
    sa = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(sa):
        with open(sa) as f:
            return f.read().strip()
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError):
        return "default"
    if context:
        contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
        active = next((c for c in contexts if c["name"] == context), active)
    return (active or {}).get("context", {}).get("namespace") or "default"


class RayServices:
    def __init__(self, api: Any):
        self.api = api

    def get(self, name: str, namespace: str) -> dict:
        from kubernetes.client import ApiException

        try:
            return self.api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                raise KubeError(f"RayService {namespace}/{name} not found") from None
            raise KubeError(f"reading RayService {namespace}/{name}: {_why(exc)}") from None

    def patch(self, name: str, namespace: str, ops: list[dict], before: dict) -> dict:
        """Apply JSON Patch `ops`. A failure is a Conflict when the object no longer matches
        what `ops` tested."""
        from kubernetes.client import ApiException

        try:
            # Named explicitly: the client would send a list as a merge patch, which the API
            # server reads as "replace the whole object with this list".
            return self.api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, ops,
                _content_type="application/json-patch+json")
        except ApiException as exc:
            if exc.status == 409 or _changed(self.get(name, namespace), before):
                raise Conflict(f"RayService {namespace}/{name} changed since it was read; "
                               "nothing applied") from None
            raise KubeError(f"patching RayService {namespace}/{name}: {_why(exc)}") from None


def _changed(now: dict, before: dict) -> bool:
    def key(o: dict):
        spec = o.get("spec", {})
        groups = spec.get("rayClusterConfig", {}).get("workerGroupSpecs") or []
        return spec.get("serveConfigV2"), [g.get("groupName") for g in groups]

    return key(now) != key(before)


def _why(exc: Any) -> str:
    return f"HTTP {exc.status} {exc.reason}".strip()

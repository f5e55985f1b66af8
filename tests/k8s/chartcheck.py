"""Render the Helm chart offline and validate every object it produces, strictly.

    python -m tests.k8s.chartcheck          # lint + render + validate every profile (CI)

For each values profile (the chart's defaults, values-tiny.yaml, ci/gpu64-values.yaml):
- `helm lint --strict` (helm-python-sdk embeds the Helm v4 SDK: no helm binary needed);
- render like `helm template` (values.schema.json is enforced on the way);
- built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an
  unknown field fails);
- the RayService against KubeRay's CRD openAPIV3Schema, made strict the way the API server's
  strict field validation is (no unknown fields wherever the CRD lists properties), plus its
  metadata, pod templates and serveService against the Kubernetes schemas again;
- serveConfigV2 against Ray Serve's own ServeDeploySchema (no unknown keys either) and its
  app args against reelfarm's ServingConfig;
- the PodMonitor against a schema of the prometheus-operator fields the chart uses (the
  monitoring.coreos.com CRD is not available offline here).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "reelfarm"
PROFILES: dict[str, Path | None] = {
    "default": None,
    "tiny": CHART / "values-tiny.yaml",
    "gpu64": CHART / "ci" / "gpu64-values.yaml",
}
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "reelfarm", "render"


def kuberay_crds() -> Path:
    """KubeRay's CRDs: shared/ beside the clone (CI), or $REELFARM_KUBERAY_CRDS."""
    candidates = [os.environ.get("REELFARM_KUBERAY_CRDS", ""),
                  ROOT.parent / "shared" / "data" / "kuberay-crds",
                  Path("/work/shared/data/kuberay-crds")]
    for c in candidates:
        if c and (Path(c) / "ray.io_rayservices.yaml").is_file():
            return Path(c)
    raise FileNotFoundError("KubeRay CRDs not found: set REELFARM_KUBERAY_CRDS to the folder "
                            "holding ray.io_rayservices.yaml")


def load_values(profile: str) -> dict:
    path = PROFILES[profile]
    return yaml.safe_load(path.read_text()) if path else {}


def lint(values: dict) -> list[str]:
    """Warnings and errors of `helm lint --strict` (info messages such as 'icon is
    recommended' are not findings)."""
    import helm_python

    report = helm_python.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    found = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
    return found + list(report.get("errors") or [])


def render(values: dict) -> list[dict]:
    """The chart's objects, as `helm template` would print them (raises on bad values)."""
    import helm_python

    chart = helm_python.Chart.load(CHART)
    try:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    finally:
        chart.close()
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects


def one_object(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    if len(found) != 1:
        raise LookupError(f"{len(found)} objects of kind {kind}: {[o['kind'] for o in objects]}")
    return found[0]


def _strict(schema: Any) -> Any:
    """A copy of an OpenAPI schema that rejects keys it does not list, as the API server's
    strict field validation does (pruning would otherwise drop them silently)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def rayservice_validator():
    import jsonschema

    crd = yaml.safe_load((kuberay_crds() / "ray.io_rayservices.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))


def _kube(doc: dict, where: str) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [f"{where}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: {exc.message}"]
    return []


# prometheus-operator v1 fields the chart uses (names and types as in its CRD).
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array"}}}
PODMONITOR_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector"],
                 "properties": {
                     "selector": _SELECTOR, "jobLabel": {"type": "string"},
                     "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                     "namespaceSelector": {"type": "object", "additionalProperties": False,
                                           "properties": {"any": {"type": "boolean"},
                                                          "matchNames": {
                                                              "type": "array",
                                                              "items": {"type": "string"}}}},
                     "podMetricsEndpoints": {"type": "array", "items": {
                         "type": "object", "additionalProperties": False, "properties": {
                             "port": {"type": "string"}, "path": {"type": "string"},
                             "interval": {"type": "string",
                                          "pattern": "^(0|(([0-9]+)(y|w|d|h|m|s|ms))+)$"},
                             "scrapeTimeout": {"type": "string"}}}}}}}}


def validate_object(obj: dict) -> list[str]:
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if obj.get("kind") == "RayService":
        return validate_rayservice(obj)
    if obj.get("kind") == "PodMonitor":
        import jsonschema

        errs = jsonschema.Draft7Validator(PODMONITOR_SCHEMA).iter_errors(obj)
        return [f"{where}: {'/'.join(map(str, e.path))}: {e.message}" for e in errs] + _kube(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}, where)
    return _kube(obj, where)


def validate_rayservice(obj: dict) -> list[str]:
    where = f"RayService/{obj['metadata']['name']}"
    errors = [f"{where}: {'/'.join(map(str, e.path))}: {e.message}"
              for e in rayservice_validator().iter_errors(obj)]
    # The CRD leaves these open ({type: object}) or copies them from an older Kubernetes:
    # check them against the Kubernetes schemas too.
    errors += _kube({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]},
                    f"{where} metadata")
    cluster = obj["spec"]["rayClusterConfig"]
    groups = [("head", cluster["headGroupSpec"])] + [
        (g["groupName"], g) for g in cluster.get("workerGroupSpecs", [])]
    for name, group in groups:
        errors += _kube({"apiVersion": "v1", "kind": "PodTemplate",
                         "metadata": {"name": f"{name}-template"}, "template": group["template"]},
                        f"{where} group {name}")
    if "serveService" in obj["spec"]:
        errors += _kube(dict(obj["spec"]["serveService"], apiVersion="v1", kind="Service"),
                        f"{where} serveService")
    return errors + validate_serve_config(obj["spec"]["serveConfigV2"], where)


def _unknown_keys(model: Any, data: Any, path: str) -> list[str]:
    """Keys of `data` that the pydantic `model` does not declare, recursively (Ray's Serve
    schemas accept and ignore unknown keys, which would hide typos in the chart)."""
    import typing

    from pydantic import BaseModel

    if not isinstance(data, dict):
        return []
    fields = model.model_fields
    found = [f"{path}.{k}: unknown key" for k in data if k not in fields]
    for name, info in fields.items():
        if name not in data:
            continue
        ann = info.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        for arg in args:
            inner = typing.get_args(arg)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found += _unknown_keys(arg, data[name], f"{path}.{name}")
            elif inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
                for i, item in enumerate(data[name] or []):
                    found += _unknown_keys(inner[0], item, f"{path}.{name}[{i}]")
    return found


def validate_serve_config(text: str, where: str) -> list[str]:
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(text)
    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        return [f"{where} serveConfigV2: {exc}"]
    errors = [f"{where} serveConfigV2{e}" for e in _unknown_keys(ServeDeploySchema, config, "")]
    for app in config["applications"]:
        errors += [f"{where} args: {e}" for e in validate_serving_args(app.get("args") or {})]
    return errors


def _stub_model(folder: Path) -> None:
    """Configs only (no weights): enough for ServingConfig to detect a T2V-A14B folder."""
    (folder / "transformer").mkdir(parents=True, exist_ok=True)
    (folder / "vae").mkdir(exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps(
        {"_class_name": "WanPipeline", "boundary_ratio": 0.875}))
    (folder / "transformer" / "config.json").write_text(json.dumps({"in_channels": 16}))
    (folder / "vae" / "config.json").write_text(json.dumps({"z_dim": 16}))


def validate_serving_args(args: dict) -> list[str]:
    """The app's args as serving.app:build_app validates them. Each model folder (any
    served model that is not built in) is swapped for a config-only stub of a T2V-A14B
    folder, in `models` and in the pools naming it (the weights volume is not here)."""
    from pydantic import ValidationError

    from farm.model.loader import BUILTIN_MODELS
    from serving.config import ServingConfig

    args = copy.deepcopy(args)
    with tempfile.TemporaryDirectory() as tmp:
        stubs = {}
        for i, model in enumerate(args.get("models") or []):
            if model not in BUILTIN_MODELS:
                stubs[model] = str(Path(tmp) / f"model{i}")
                _stub_model(Path(stubs[model]))
        if "models" in args:
            args["models"] = [stubs.get(m, m) for m in args["models"]]
        for pool in args.get("pools") or []:
            pool["model"] = stubs.get(pool.get("model"), pool.get("model"))
        try:
            ServingConfig.model_validate(args)
        except ValidationError as exc:
            return [str(exc)]
    return []


@dataclass
class ProfileReport:
    profile: str
    objects: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in self.objects)


def check_profile(profile: str) -> ProfileReport:
    values = load_values(profile)
    report = ProfileReport(profile)
    report.errors += [f"lint: {e}" for e in lint(values)]
    report.objects = render(values)
    for obj in report.objects:
        report.errors += validate_object(obj)
    return report


def main() -> int:
    failed = 0
    for profile in PROFILES:
        report = check_profile(profile)
        status = "ok" if not report.errors else f"{len(report.errors)} error(s)"
        print(f"chart profile {profile}: {len(report.objects)} objects validated strictly: "
              f"{', '.join(report.kinds)} -> {status}")
        for e in report.errors:
            print(f"  {e}")
        failed += bool(report.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Helm chart: strict lint, rendering of every profile, strict validation of every
object (tests/k8s/chartcheck.py), the values schema, and the sizing it claims."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from tests.k8s import chartcheck as cc

helm_python = pytest.importorskip("helm_python")


@pytest.fixture(scope="module")
def rendered():
    return {p: cc.render(cc.load_values(p)) for p in cc.PROFILES}


one = cc.one_object


def serve_config(objects) -> dict:
    return yaml.safe_load(one(objects, "RayService")["spec"]["serveConfigV2"])


@pytest.mark.parametrize("profile", list(cc.PROFILES))
def test_lint_strict_is_clean(profile):
    assert cc.lint(cc.load_values(profile)) == []


@pytest.mark.parametrize("profile", list(cc.PROFILES))
def test_every_rendered_object_validates_strictly(profile, rendered):
    errors = [e for obj in rendered[profile] for e in cc.validate_object(obj)]
    assert errors == []


def test_optional_parts_render_only_when_asked(rendered):
    kinds = {p: sorted(o["kind"] for o in objs) for p, objs in rendered.items()}
    # the default runs its job store: PostgreSQL's Secret, Service and StatefulSet
    assert kinds["default"] == ["PersistentVolumeClaim", "RayService", "Secret", "Service",
                                "StatefulSet"]
    assert kinds["tiny"] == ["PersistentVolumeClaim", "RayService"]
    assert kinds["gpu64"] == sorted(["ConfigMap", "Deployment", "PodMonitor", "RayService", "Role",
                                     "RoleBinding", "Secret", "ServiceAccount"])


# ---- the validators catch what they should -------------------------------------------------

def _rayservice(rendered):
    return copy.deepcopy(one(rendered["default"], "RayService"))


@pytest.mark.parametrize("mutate, expect", [
    (lambda o: o["spec"].__setitem__("bogusField", 1), "bogusField"),
    (lambda o: o["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
     .__setitem__("replicas", "three"), "three"),
    (lambda o: o["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["template"]["spec"]
     ["containers"][0].__setitem__("gpus", 1), "gpus"),
    (lambda o: o["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
     .__setitem__("num-gpus", 0), "num-gpus"),
    (lambda o: o["metadata"].__setitem__("label", {}), "label"),
    (lambda o: o["spec"]["serveService"]["spec"].__setitem__("ports", [{"port": "grpc"}]), "grpc"),
], ids=["unknown-spec-field", "replicas-type", "unknown-container-field", "start-param-type",
        "unknown-metadata-field", "service-port-type"])
def test_rayservice_validation_fails_on_bad_fields(rendered, mutate, expect):
    obj = _rayservice(rendered)
    mutate(obj)
    errors = cc.validate_object(obj)
    assert errors and any(expect in e for e in errors), errors


@pytest.mark.parametrize("edit, expect", [
    (lambda c: c["grpc_options"].__setitem__("grpc_servicer_function", []), "unknown key"),
    (lambda c: c["applications"][0]["args"].__setitem__("gpus", 8), "gpus"),
    (lambda c: c["applications"][0]["args"]["pools"][0].__setitem__("holds", ["dense"]), "dense"),
    (lambda c: c["applications"][0]["args"].__setitem__("dtype", "fp8"), "dtype"),
    (lambda c: c.__setitem__("proxy_location", "Everywhere"), "proxy_location"),
])
def test_serve_config_validation_fails_on_bad_config(rendered, edit, expect):
    obj = _rayservice(rendered)
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    edit(config)
    obj["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    errors = cc.validate_object(obj)
    assert errors and any(expect in e for e in errors), errors


def test_builtin_kinds_and_podmonitor_fail_on_unknown_fields(rendered):
    deploy = copy.deepcopy(one(rendered["gpu64"], "Deployment"))
    deploy["spec"]["template"]["spec"]["containers"][0]["cmd"] = ["x"]
    assert any("cmd" in e for e in cc.validate_object(deploy))
    monitor = copy.deepcopy(one(rendered["gpu64"], "PodMonitor"))
    monitor["spec"]["podMetricsEndpoint"] = []
    assert any("podMetricsEndpoint" in e for e in cc.validate_object(monitor))


# ---- values.schema.json and the template guards ------------------------------------------

@pytest.mark.parametrize("values, message", [
    ({"bogus": 1}, "bogus"),
    ({"pools": {"high": {"bogus": 1}}}, "bogus"),
    ({"pools": {"High": {}}}, "High"),
    ({"pools": {"high": {"workers": {"replicas": -1}}}}, "minimum"),
    ({"pools": {"high": {"numGpus": "one"}}}, "numGpus"),
    ({"pools": {"high": {"holds": ["medium"]}}}, "holds"),
    ({"model": {"dtype": "fp8"}}, "dtype"),
    ({"model": {"path": "tiny"}}, "path"),  # one model per cluster was `model.path`
    ({"model": {"served": []}}, "served"),
    ({"pools": {"high": {"preload": "yes"}}}, "preload"),
    ({"model": {"device": "tpu"}}, "device"),
    ({"api": {"grpcPort": 70000}}, "grpcPort"),
    ({"head": {"memory": "lots"}}, "memory"),
    ({"secret": {"tokens": ["alice short"]}}, "tokens"),
    ({"metrics": {"podMonitor": {"interval": "soon"}}}, "interval"),
    ({"balancer": {"enabled": True}}, "metricsUrl"),
    ({"balancer": {"enabled": True, "metricsUrl": "http://p:9090/metrics"},
      "autoscaling": {"enabled": False}}, "autoscaling"),
    ({"pools": {"high": {"adapterCacheGb": 0}}}, "adapterCacheGb"),
    ({"pools": {"high": {"offload": "disk"}}}, "offload"),
])
def test_values_schema_rejects(values, message):
    with pytest.raises(helm_python.HelmValuesError, match=message):
        cc.render(values)


@pytest.mark.parametrize("values, message", [
    ({"pools": {"high": {"numGpus": 2}}}, "exceeds workers.gpus"),
    ({"pools": {"decode": {"replicasPerWorker": 2}}}, "exceeds workers.cpu"),
    ({"pools": {"low": {"workers": {"replicas": 9}}}}, "must lie within"),
    ({"model": {"device": "cpu"}}, "never used"),
    ({"secret": {"existingSecret": ""}}, "api.auth is on"),
    ({"secret": {"databaseUrl": "postgresql+psycopg://x@db/reelfarm"}},
     "database.postgresql.enabled runs the job store in the chart"),
    ({"pools": {"high": {"model": "toy"}}}, r"pools.high.model \"toy\" is not in model.served"),
    ({"model": {"served": ["/models/a", "/models/b"]}}, "name the model the pool holds"),
])
def test_templates_refuse_values_that_cannot_work(values, message):
    with pytest.raises(helm_python.HelmRenderError, match=message):
        cc.render(values)


# ---- what the chart deploys ----------------------------------------------------------------

def groups(objects) -> dict[str, dict]:
    rs = one(objects, "RayService")
    return {g["groupName"]: g for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]}


def gpus(group) -> int:
    res = group["template"]["spec"]["containers"][0]["resources"]
    n = int(res["limits"].get("nvidia.com/gpu", 0))
    assert int(res["requests"].get("nvidia.com/gpu", 0)) == n
    assert group["rayStartParams"]["num-gpus"] == str(n)
    return n


@pytest.mark.parametrize("profile, total, split", [
    ("default", 8, {"high": 5, "low": 3, "decode": 0}),
    ("tiny", 0, {"high": 0, "low": 0, "decode": 0, "tiny": 0}),
    ("gpu64", 64, {"high": 40, "low": 22, "decode": 2}),
])
def test_gpu_sizing(rendered, profile, total, split):
    g = groups(rendered[profile])
    used = {name: gpus(group) * group["replicas"] for name, group in g.items()}
    assert used == split and sum(used.values()) == total
    pools = {p["name"]: p
             for p in serve_config(rendered[profile])["applications"][0]["args"]["pools"]}
    for name in g:
        pool = pools[name.title()]
        # Serve replicas fit the pods' GPUs exactly or leave none idle.
        assert pool["replicas"] * pool["num_gpus"] == used[name]


def test_every_profile_serves_its_models_from_their_own_pools(rendered):
    for profile, objects in rendered.items():
        args = serve_config(objects)["applications"][0]["args"]
        # One model: pools may leave their model out (ServingConfig fills it in).
        assert all(p.get("model", args["models"][0]) in args["models"] for p in args["pools"])
        # Real checkpoints load before a replica takes work; the built-ins on first use.
        assert all(p["preload"] == (profile != "tiny") for p in args["pools"]), profile


def test_serve_config_rejects_a_pool_of_a_model_not_served(rendered):
    obj = _rayservice(rendered)
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    config["applications"][0]["args"]["pools"][0]["model"] = "toy"
    obj["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    errors = cc.validate_object(obj)
    assert errors and any("model 'toy' is not served" in e for e in errors), errors


def test_default_split_follows_t2v_steps(rendered):
    pools = {p["name"]: p
             for p in serve_config(rendered["default"])["applications"][0]["args"]["pools"]}
    # 26:14 of 8 GPUs is 5.2 : 2.8; 5 : 3 is the nearest whole split.
    assert (pools["High"]["replicas"], pools["Low"]["replicas"]) == (5, 3)
    assert pools["Decode"]["num_gpus"] == 0


def test_serve_config_serves_the_film_service(rendered):
    for objects in rendered.values():
        config = serve_config(objects)
        app = config["applications"][0]
        assert app["import_path"] == "serving.app:build_app"
        assert ("reelfarm.v1.film_service_pb2_grpc.add_FilmServiceServicer_to_server"
                in config["grpc_options"]["grpc_servicer_functions"])
        rs = one(objects, "RayService")
        port = config["grpc_options"]["port"]
        assert rs["spec"]["serveService"]["spec"]["ports"][0]["targetPort"] == port
        head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert {"name": "serve-grpc", "containerPort": port, "protocol": "TCP"} in head["ports"]


def test_serve_config_agrees_with_the_repositorys(rendered):
    # serving/serve_config.yaml is what `reelfarm serve --config` runs and its tests cover.
    ours = serve_config(rendered["default"])
    repo = yaml.safe_load((cc.ROOT / "serving" / "serve_config.yaml").read_text())
    assert ours["grpc_options"]["grpc_servicer_functions"] == \
        repo["grpc_options"]["grpc_servicer_functions"]
    for key in ("name", "route_prefix", "import_path"):
        assert ours["applications"][0][key] == repo["applications"][0][key]
    assert set(ours["applications"][0]["args"]) >= set(repo["applications"][0]["args"])


def test_tiny_profile_needs_no_gpu_no_weights_no_secret(rendered):
    objects = rendered["tiny"]
    text = yaml.safe_dump_all(objects)
    assert "nvidia.com/gpu" not in text and "weights" not in text and "secret" not in text
    args = serve_config(objects)["applications"][0]["args"]
    assert (args["models"], args["device"]) == (["tiny", "toy"], "cpu")
    # Pools are per model: toy (the example film's) as an expert pipeline, tiny whole;
    # built-in weights load on first use.
    pools = {p["name"]: (p["model"], sorted(p["holds"]), p["preload"]) for p in args["pools"]}
    assert pools == {"High": ("toy", ["high"], False), "Low": ("toy", ["low"], False),
                     "Decode": ("toy", ["text", "vae"], False),
                     "Tiny": ("tiny", ["high", "low", "text", "vae"], False)}


def test_secret_and_weights_are_mounted_where_the_app_looks(rendered):
    rs = one(rendered["gpu64"], "RayService")
    args = serve_config(rendered["gpu64"])["applications"][0]["args"]
    secret = one(rendered["gpu64"], "Secret")
    assert secret["stringData"]["tokens"].split("\n")[:2] == [
        "editorial 0123456789abcdef0123456789abcdef", "previs fedcba9876543210fedcba9876543210"]
    assert args["artifacts"] == "s3://studio-renders/reelfarm"
    for group in [rs["spec"]["rayClusterConfig"]["headGroupSpec"],
                  *groups(rendered["gpu64"]).values()]:
        mounts = {m["name"]: m["mountPath"] for m in
                  group["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert args["tokens_file"].startswith(mounts["secret"] + "/")
        assert all(m.startswith(mounts["weights"] + "/") for m in args["models"])
        assert "artifacts" not in mounts   # the object store replaces the volume


def test_balancer_annotation_and_deployment(rendered):
    rs = one(rendered["gpu64"], "RayService")
    policy = json.loads(rs["metadata"]["annotations"]["reelfarm.io/balancer"])
    assert policy == {"pools": {"High": {"group": "high", "replicasPerWorker": 1, "steps": 26},
                                "Low": {"group": "low", "replicasPerWorker": 1, "steps": 14}}}
    deploy = one(rendered["gpu64"], "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--rayservice=reelfarm" in args and "--loop" in args
    role = one(rendered["gpu64"], "Role")
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayservices"],
                              "resourceNames": ["reelfarm"], "verbs": ["get", "patch"]}]


def test_dashboard_is_valid_json_with_the_promised_panels(rendered):
    data = one(rendered["gpu64"], "ConfigMap")["data"]["reelfarm.json"]
    dash = json.loads(data)
    assert json.loads((cc.CHART / "dashboards" / "reelfarm.json").read_text()) == dash
    titles = {p["title"] for p in dash["panels"]}
    assert {"Throughput", "Pool busy fraction (high vs low)", "Queue depth",
            "Time to first frame", "Failures"} <= titles
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    metrics = {m for e in exprs for m in re.findall(r"\$\{prefix\}(reelfarm_[a-z_]+)", e)}
    assert all(m.startswith("reelfarm_") for m in metrics) and len(metrics) >= 6
    from farm.k8s.metrics import METRIC_NAMES
    # The balancer's gauges are the ones the dashboard shows for the pools.
    assert {"reelfarm_pool_busy_fraction", "reelfarm_pool_queued_phases"} <= metrics
    assert metrics & set(METRIC_NAMES) == {m for m in metrics if m.startswith("reelfarm_pool_")}


def test_image_recipe_matches_the_charts_ray_version():
    dockerfile = (cc.CHART / "image" / "Dockerfile").read_text()
    values = yaml.safe_load((cc.CHART / "values.yaml").read_text())
    # KubeRay picks the autoscaler image by rayVersion: it must be the image's Ray.
    assert f"ARG RAY_VERSION={values['rayVersion']}\n" in dockerfile


def test_signing_secret_and_media_settings_reach_the_app(rendered):
    """`signing.existingSecret` mounts the key and chain read-only in every Ray container and
    names them in the app's args (ServingConfig.signing); `media` becomes its media limits.
    Without a Secret, no signing args: the farm signs with its own chain."""
    args = serve_config(rendered["default"])["applications"][0]["args"]
    assert "signing" not in args
    assert args["media"] == {"max_bytes": 536870912, "max_seconds": 600,
                             "require_rights": False}
    values = cc.load_values("default")
    values["signing"] = {"existingSecret": "studio-c2pa"}
    values["media"] = {"maxBytes": 1000, "maxSeconds": 30, "requireRights": True}
    objects = cc.render(values)
    assert [e for obj in objects for e in cc.validate_object(obj)] == []
    args = serve_config(objects)["applications"][0]["args"]
    assert args["signing"] == {"key": "/etc/reelfarm/signing/key.pem",
                               "cert_chain": "/etc/reelfarm/signing/chain.pem"}
    assert args["media"] == {"max_bytes": 1000, "max_seconds": 30, "require_rights": True}
    cluster = one(objects, "RayService")["spec"]["rayClusterConfig"]
    for spec in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = spec["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "signing")
        assert volume["secret"]["secretName"] == "studio-c2pa"
        assert {"name": "signing", "mountPath": "/etc/reelfarm/signing", "readOnly": True} in (
            pod["containers"][0]["volumeMounts"])


def _database_env(objects) -> dict[str, dict]:
    """The job store variables of every Ray container (head and workers), by name."""
    rs = one(objects, "RayService")
    specs = [rs["spec"]["rayClusterConfig"]["headGroupSpec"], *groups(objects).values()]
    envs = [{e["name"]: e for e in spec["template"]["spec"]["containers"][0]["env"]
             if e["name"].startswith("REELFARM_DATABASE")} for spec in specs]
    assert all(env == envs[0] for env in envs)  # the director may be placed on any pod
    return envs[0]


def test_the_director_always_has_a_durable_job_store(rendered):
    """Default: the chart's own PostgreSQL (its URL built from the Service and the password
    Secret); gpu64: the studio's database from the API Secret; tiny: no variable, so the
    director keeps SQLite on the artifacts volume (ServingConfig.job_store_url)."""
    objects = rendered["default"]
    pg = one(objects, "StatefulSet")
    service, secret = one(objects, "Service"), one(objects, "Secret")
    env = _database_env(objects)
    assert env["REELFARM_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": secret["metadata"]["name"], "key": "password"}
    host = f"{service['metadata']['name']}.{cc.NAMESPACE}.svc"
    assert env["REELFARM_DATABASE_URL"]["value"] == (
        f"postgresql+psycopg://reelfarm:$(REELFARM_DATABASE_PASSWORD)@{host}:5432/reelfarm")
    assert service["spec"]["selector"] == pg["spec"]["template"]["metadata"]["labels"]
    assert len(secret["data"]["password"]) >= 32  # base64 of 32 random characters
    claim = pg["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    url = _database_env(rendered["gpu64"])["REELFARM_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    assert _database_env(rendered["tiny"]) == {}


def test_pools_carry_their_adapter_cache_and_offload(rendered):
    pools = {p["name"]: p
             for p in serve_config(rendered["default"])["applications"][0]["args"]["pools"]}
    assert (pools["High"]["adapter_cache_gb"], pools["High"]["offload"]) == (2, "none")
    objects = cc.render({"pools": {"low": {"adapterCacheGb": 6.5, "offload": "group"}}})
    low = {p["name"]: p for p in serve_config(objects)["applications"][0]["args"]["pools"]}["Low"]
    assert (low["adapter_cache_gb"], low["offload"]) == (6.5, "group")
    assert not cc.validate_object(_rayservice({"default": objects}))  # ServingConfig takes them


def test_pools_may_shard_their_experts_and_the_director_order_films_fifo(rendered):
    assert serve_config(rendered["default"])["applications"][0]["args"]["director"][
        "film_order"] == "share"
    objects = cc.render({"pools": {"low": {"offload": "shard"}},
                         "director": {"filmOrder": "fifo"}})
    args = serve_config(objects)["applications"][0]["args"]
    assert {p["name"]: p for p in args["pools"]}["Low"]["offload"] == "shard"
    assert args["director"]["film_order"] == "fifo"
    assert not cc.validate_object(_rayservice({"default": objects}))  # ServingConfig takes them

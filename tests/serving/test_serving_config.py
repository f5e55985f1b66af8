"""ServingConfig: the models a cluster app serves and its per-model pools, validated once
(no Ray here)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from farm.model.loader import BUILTIN_MODELS
from serving.config import PoolConfig, ServingConfig, expert_pools, pool_label
from serving.local import small_machine_pools


def test_by_default_every_builtin_model_gets_one_small_lazy_pool():
    cfg = ServingConfig()
    assert cfg.models == list(BUILTIN_MODELS)
    pools = {p.model: (p.name, sorted(p.holds), p.preload) for p in cfg.pools}
    assert pools["toy"] == ("Toy", ["high", "low", "text", "vae"], False)
    assert pools["tiny-ti2v-5b"] == ("TinyTi2v5b", ["dense", "text", "vae"], False)
    assert len(cfg.pools) == len(BUILTIN_MODELS)
    # one idle replica per model and the director fit a 2-core machine's Ray
    assert sum(p.num_cpus * p.replicas for p in cfg.pools) + cfg.director.num_cpus <= 2


def test_pools_of_a_one_model_config_belong_to_that_model():
    cfg = ServingConfig(models=["toy"], pools=[
        PoolConfig(name="High", holds=["high"]), {"name": "Low", "holds": ["low"]},
        {"name": "Decode", "holds": ["vae", "text"]}])
    assert [(p.name, p.model) for p in cfg.pools] == [("High", "toy"), ("Low", "toy"),
                                                      ("Decode", "toy")]
    assert cfg.sources()["toy"].family == "t2v-a14b"


@pytest.mark.parametrize("args, message", [
    ({"models": ["toy", "tiny"],
      "pools": [{"name": "All", "holds": ["high", "low", "vae", "text"]}]},
     "pool All: give its `model` (one of toy, tiny)"),
    ({"models": ["toy"], "pools": [{"name": "All", "model": "tiny", "holds": ["high"]}]},
     "pool All: model 'tiny' is not served"),
    ({"models": ["toy", "tiny"], "pools": [
        {"name": "Toy", "model": "toy", "holds": ["high", "low", "vae", "text"]},
        {"name": "Tiny", "model": "tiny", "holds": ["high", "vae", "text"]}]},
     "no pool holds ['low'] of model tiny"),
    ({"models": ["tiny-ti2v-5b"], "pools": [{"name": "X", "holds": ["high", "vae", "text"]}]},
     "pool X holds ['high'], not parts of tiny-ti2v-5b"),
    ({"models": ["toy", "tiny-nope"]}, "unknown tiny model 'tiny-nope'; allowed: "
                                       + ", ".join(BUILTIN_MODELS)),
    ({"models": ["toy", "toy"]}, "models must be unique"),
    ({"models": []}, "at least 1 item"),
    ({"model": "tiny"}, "model\n  Extra inputs are not permitted"),  # one model was `model`
])
def test_bad_configs_say_what_is_wrong(args, message):
    with pytest.raises(ValidationError) as info:
        ServingConfig.model_validate(args)
    assert message in str(info.value), str(info.value)


def test_expert_layouts_are_per_model_and_named_after_it():
    assert pool_label("tiny-i2v-a14b") == "TinyI2vA14b"
    assert pool_label("/models/Wan2.2-T2V-A14B-Diffusers") == "Wan22T2VA14BDiffusers"
    one = small_machine_pools("toy", "/tmp/art")  # `reelfarm render --executor ray`
    assert [(p.name, p.model, p.holds) for p in one.pools] == [
        ("High", "toy", ["high"]), ("Low", "toy", ["low"]), ("Decode", "toy", ["vae", "text"])]
    two = expert_pools(["toy", "tiny-ti2v-5b"])
    assert [(p.name, p.model) for p in two.pools] == [
        ("ToyHigh", "toy"), ("ToyLow", "toy"), ("ToyDecode", "toy"),
        ("TinyTi2v5bDense", "tiny-ti2v-5b"), ("TinyTi2v5bDecode", "tiny-ti2v-5b")]
    assert two.models == ["toy", "tiny-ti2v-5b"]


def test_the_job_store_is_durable_by_default():
    """The config's URL, else REELFARM_DATABASE_URL, else SQLite beside the artifacts; an
    object-store artifact URL has no file for SQLite (then films live in memory)."""
    from serving.config import ServingConfig

    cfg = ServingConfig(models=["tiny"], artifacts="/srv/art")
    assert cfg.job_store_url({}) == "sqlite:////srv/art/reelfarm.db"
    assert cfg.job_store_url({"REELFARM_DATABASE_URL": "postgresql+psycopg://h/db"}) == (
        "postgresql+psycopg://h/db")
    pg = ServingConfig(models=["tiny"], artifacts="/srv/art", database_url="postgresql://x/y")
    assert pg.job_store_url({"REELFARM_DATABASE_URL": "other"}) == "postgresql://x/y"
    assert ServingConfig(models=["tiny"], artifacts="s3://bucket/art").job_store_url({}) is None


def test_director_film_order_is_share_or_fifo():
    from serving.config import DirectorSettings

    assert DirectorSettings().film_order == "share"
    assert DirectorSettings(film_order="fifo").film_order == "fifo"
    with pytest.raises(ValidationError, match="(?s)film_order.*'share' or 'fifo'"):
        DirectorSettings(film_order="lifo")

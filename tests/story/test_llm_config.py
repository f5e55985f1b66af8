"""serving/llm_config.yaml (the story writer's LLM as a Ray Serve LLM app) is a valid Ray Serve
config that can sit beside the farm's app, and asks vLLM for compact guided JSON."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_llm_app_config_is_a_valid_serve_config_beside_the_farm():
    from ray.serve.schema import ServeDeploySchema

    llm = yaml.safe_load((ROOT / "serving" / "llm_config.yaml").read_text())
    ServeDeploySchema.model_validate(llm)
    farm = yaml.safe_load((ROOT / "serving" / "serve_config.yaml").read_text())
    prefixes = [a["route_prefix"] for a in llm["applications"] + farm["applications"]]
    assert len(set(prefixes)) == len(prefixes)
    [app] = llm["applications"]
    assert app["import_path"] == "ray.serve.llm:build_openai_app"
    [cfg] = app["args"]["llm_configs"]
    assert cfg["engine_kwargs"]["structured_outputs_config"] == {
        "backend": "xgrammar", "disable_any_whitespace": True}

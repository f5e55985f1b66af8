"""Models named by Hugging Face repo id (farm.model.hub): resolved offline from a hub cache
laid out as huggingface_hub writes it (tests/model/hub_cache.py), never downloaded; and
what `reelfarm models pull` would ask huggingface_hub to fetch (no network here)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from farm.cli import main
from farm.model import hub
from farm.model.loader import EXPERT_SUBFOLDER, ModelLoader, resolve_model
from tests.model.hub_cache import commit_of, repo_folder, write_snapshot

pytestmark = pytest.mark.model
REPO = "Owner/Name"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network in any test here: huggingface_hub refuses any request (the resolution
    never makes one; the pull tests stop at argument checks)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def cache(tmp_path, tiny_dirs) -> Path:
    """A cache holding REPO: the tiny T2V model at refs/main."""
    root = tmp_path / "hf" / "hub"
    write_snapshot(root, REPO, Path(tiny_dirs("t2v-a14b")), commit_of("t2v"))
    return root


def test_repo_ids_are_told_from_folders_and_builtins(tmp_path, monkeypatch):
    assert hub.parse_hub_ref(REPO) == hub.HubRef(REPO, None)
    assert hub.parse_hub_ref("Wan-AI/Wan2.2-T2V-A14B-Diffusers@v1.0") == hub.HubRef(
        "Wan-AI/Wan2.2-T2V-A14B-Diffusers", "v1.0")
    for not_a_repo in ("tiny", "tiny-ti2v-5b", "/models/wan", "./models/wan", "~/wan/x",
                       "a/b/c", "Owner/Name@", "Owner/na--me", "../wan"):
        assert hub.parse_hub_ref(not_a_repo) is None, not_a_repo
    # an existing folder of that form wins: it is never looked up in the cache
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Owner" / "Name").mkdir(parents=True)
    assert hub.find_snapshot(REPO, tmp_path / "no-cache") is None
    assert hub.find_snapshot("tiny", tmp_path / "no-cache") is None


def test_a_repo_id_resolves_offline_to_its_snapshot(cache):
    source = resolve_model(REPO, cache)
    snapshot = repo_folder(cache, REPO) / "snapshots" / commit_of("t2v")
    assert (source.ref, source.family, source.path) == (REPO, "t2v-a14b", snapshot.resolve())
    import huggingface_hub

    # huggingface_hub itself reads the hand-made cache as a sound one
    [repo] = huggingface_hub.scan_cache_dir(cache).repos
    assert (repo.repo_id, [r.commit_hash for r in repo.revisions]) == (REPO, [commit_of("t2v")])
    assert not huggingface_hub.scan_cache_dir(cache).warnings
    loader = ModelLoader(source)
    assert loader.transformer_config()["_class_name"] == "WanTransformer3DModel"
    loader.expert("low")  # weights read through the snapshot's symlinks


def test_without_a_cache_dir_huggingface_hubs_default_is_used(cache, tmp_path):
    """What a serve config's workers do (serving/config.py resolves names alone): the
    cache of their process's environment, as huggingface_hub reads it at import."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    code = "from farm.model.loader import resolve_model; print(resolve_model(%r).path)"
    done = subprocess.run([sys.executable, "-c", code % REPO], capture_output=True, text=True,
                          env={**env, "HF_HOME": str(cache.parent), "HF_HUB_OFFLINE": "1"},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == repo_folder(cache, REPO).resolve() / "snapshots"


def test_revisions_by_branch_tag_and_commit(cache, tiny_dirs):
    other = commit_of("ti2v")
    write_snapshot(cache, REPO, Path(tiny_dirs("ti2v-5b")), other, refs=("v2",))
    assert resolve_model(REPO, cache).family == "t2v-a14b"            # refs/main
    assert resolve_model(f"{REPO}@main", cache).family == "t2v-a14b"
    v2 = resolve_model(f"{REPO}@v2", cache)
    assert (v2.ref, v2.family, v2.path.name) == (f"{REPO}@v2", "ti2v-5b", other)
    assert resolve_model(f"{REPO}@{other}", cache).family == "ti2v-5b"  # a commit: no ref


def test_not_in_the_cache_names_the_repo_the_cache_and_the_pull_command(cache):
    with pytest.raises(ValueError) as err:
        resolve_model("Owner/Missing", cache)
    text = str(err.value)
    assert "Owner/Missing" in text and str(cache) in text
    assert "`reelfarm models pull Owner/Missing --cache-dir " in text
    with pytest.raises(ValueError, match=r"revision nope\) is not in the Hugging Face cache.*"
                                         r"models pull Owner/Name --revision nope"):
        resolve_model(f"{REPO}@nope", cache)


def test_a_partial_pull_resolves_and_its_pools_load(tmp_path, tiny_dirs):
    """After `models pull --pools text,vae` the snapshot lacks the experts (the tree listing
    names them): resolving needs the configs only; the VAE loads."""
    folder = Path(tiny_dirs("t2v-a14b"))
    patterns = hub.pull_patterns(("text", "vae"))
    from huggingface_hub.utils import filter_repo_objects

    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    pulled = list(filter_repo_objects(files, allow_patterns=patterns))
    assert "transformer/config.json" in pulled
    assert not any(p.startswith("transformer") and p.endswith(".safetensors") for p in pulled)
    cache = tmp_path / "hub"
    write_snapshot(cache, REPO, folder, commit_of("partial"), only=pulled)
    loader = ModelLoader(resolve_model(REPO, cache))
    loader.vae()
    loader.text()
    # a snapshot missing a config the listing names: incomplete, and how to complete it
    write_snapshot(cache, "Owner/Broken", folder, commit_of("broken"),
                   only=[p for p in pulled if p != "vae/config.json"])
    with pytest.raises(ValueError, match=r"incomplete.*vae/config.json.*models pull Owner/Broken"):
        resolve_model("Owner/Broken", cache)


def _board(tmp_path: Path, model: str | None = None) -> Path:
    story = {"title": "hub", "fps": 16, "width": 32, "height": 32, "steps": 2,
             "scenes": [{"id": "s1", "prompt": "waves", "frames": 5, "seed": 3}]}
    if model:
        story["model"] = model
    path = tmp_path / "film.yaml"
    path.write_text(yaml.safe_dump(story))
    return path


def test_render_by_repo_id_from_hf_home(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(cache.parent))  # the command reads it at its edge
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    out, frames = tmp_path / "film.mp4", tmp_path / "frames"
    assert main(["render", str(_board(tmp_path)), "-o", str(out), "--model", REPO,
                 "--frames-dir", str(frames)]) == 0
    assert len(list((frames / "s1").glob("*.png"))) == 5 and out.stat().st_size > 0
    manifest = json.loads((frames / "s1" / "provenance.json").read_text())
    assert manifest["model"]["ref"] == REPO  # logs and manifests name the repo, not a path
    assert manifest["model"]["weights"]  # hashed through the snapshot's symlinks
    # `model:` in the storyboard, the same way
    assert main(["validate", str(_board(tmp_path, f"{REPO}@main"))]) == 0


def test_validate_names_the_pull_command_when_missing(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert main(["validate", str(_board(tmp_path, "Owner/Missing"))]) == 2
    err = capsys.readouterr().err
    assert "model: model 'Owner/Missing'" in err and str(cache) in err
    assert "reelfarm models pull Owner/Missing" in err


def test_pull_patterns_per_pool():
    from huggingface_hub.utils import filter_repo_objects

    from farm.model.s2v.weights import WAV2VEC_DIR
    from farm.spec.profiles import PROFILES

    assert set(hub.POOLS) == {p for prof in PROFILES.values() for p in prof.parts}
    for expert, sub in EXPERT_SUBFOLDER.items():
        assert f"{sub}/*" in hub.POOL_PATTERNS[expert]
    assert f"{WAV2VEC_DIR}/*" in hub.POOL_PATTERNS["vae"]
    folders = ("transformer", "transformer_2", "text_encoder", "vae")
    repo = ["model_index.json", "README.md", "assets/demo.mp4", "scheduler/scheduler_config.json",
            *(f"{d}/{f}" for d in folders
              for f in ("config.json", "diffusion_pytorch_model-00001-of-00002.safetensors")),
            "tokenizer/spiece.model"]

    def fetched(pools: str) -> set[str]:
        patterns = hub.pull_patterns(hub.parse_pools(pools))
        return set(filter_repo_objects(repo, allow_patterns=patterns))

    configs = {"model_index.json", "scheduler/scheduler_config.json",
               *(f"{d}/config.json" for d in folders)}
    assert fetched("high") == configs | {"transformer/diffusion_pytorch_model-00001-of-00002"
                                         ".safetensors"}
    assert fetched("low") - configs == {"transformer_2/diffusion_pytorch_model-00001-of-00002"
                                        ".safetensors"}
    assert fetched("text") - configs == {"text_encoder/diffusion_pytorch_model-00001-of-00002"
                                         ".safetensors", "tokenizer/spiece.model"}
    assert fetched("high,low,text,vae") == set(repo) - {"README.md", "assets/demo.mp4"}
    assert fetched("high") < fetched("high,vae")


def test_pull_arguments_and_their_validation(tmp_path, capsys):
    from huggingface_hub import snapshot_download

    args = hub.pull_arguments("Wan-AI/Wan2.2-T2V-A14B-Diffusers@v1", ("high", "text"),
                              cache_dir=tmp_path)
    inspect.signature(snapshot_download).bind(**args)  # what `pull` passes, accepted as is
    assert (args["repo_id"], args["revision"], args["cache_dir"]) == (
        "Wan-AI/Wan2.2-T2V-A14B-Diffusers", "v1", str(tmp_path))
    assert "local_files_only" not in args
    assert hub.pull_arguments(REPO, revision="abc")["revision"] == "abc"
    with pytest.raises(ValueError, match="--pools: unknown pool.*allowed: high, low, dense, "
                                         "text, vae"):
        hub.parse_pools("high,middle")
    with pytest.raises(ValueError, match="--pools"):
        hub.parse_pools(",")
    with pytest.raises(ValueError, match="--revision: 'v2' differs"):
        hub.pull_arguments(f"{REPO}@v1", revision="v2")
    with pytest.raises(ValueError, match="REPO: './folder' is not a Hugging Face repo id"):
        hub.pull_arguments("./folder")
    assert main(["models", "pull", REPO, "--pools", "high,middle"]) == 2
    assert "allowed: high, low, dense, text, vae" in capsys.readouterr().err


def test_the_pull_command_reads_the_cache_from_its_environment_or_flag():
    from farm.cli import build_parser
    from farm.cli.models import pull_request

    args = build_parser().parse_args(["models", "pull", f"{REPO}@v1", "--pools", "low"])
    request = pull_request(args, {"HF_HOME": "/h"})
    assert (request["cache_dir"], request["revision"]) == ("/h/hub", "v1")
    assert request["allow_patterns"] == [*hub.BASE_PATTERNS, "transformer_2/*"]
    args = build_parser().parse_args(["models", "pull", REPO, "--cache-dir", "/d"])
    assert pull_request(args, {"HF_HOME": "/h"})["cache_dir"] == "/d"


def test_the_cache_folder_follows_huggingface_hub_precedence(tmp_path):
    home = Path("~").expanduser()
    assert hub.cache_from_env({}) == home / ".cache" / "huggingface" / "hub"
    assert hub.cache_from_env({"XDG_CACHE_HOME": "/x"}) == Path("/x/huggingface/hub")
    assert hub.cache_from_env({"XDG_CACHE_HOME": "/x", "HF_HOME": "/h"}) == Path("/h/hub")
    assert hub.cache_from_env({"HF_HOME": "/h", "HF_HUB_CACHE": "/c"}) == Path("/c")
    assert hub.cache_from_env({"HUGGINGFACE_HUB_CACHE": "/old", "HF_HOME": "/h"}) == Path("/old")

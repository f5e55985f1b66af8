"""Models named by Hugging Face repo id: resolved offline from the local Hugging Face cache,
and put there by `reelfarm models pull` (the only command that touches the network).

How a model reference is read (farm.model.loader.resolve_model), first match wins:

    1. a built-in name: "tiny", "toy", "tiny-<family>";
    2. an existing folder, absolute or relative to the working directory;
    3. OWNER/NAME or OWNER/NAME@REVISION (a valid Hub repo id with exactly one "/", not
       starting with ".", "/" or "~"): the repo's snapshot in the cache, at REVISION (a
       branch, tag or commit; default "main");
    4. anything else: an error.

So `models/wan` is a folder when one exists there and a repo id otherwise; write
`./models/wan` to mean a folder that must exist. The cache is laid out as huggingface_hub
writes it (CACHE/models--OWNER--NAME/{refs/REVISION, snapshots/COMMIT/...}) and read with
huggingface_hub's own `snapshot_download(..., local_files_only=True)`: no path guessing.
Which cache: the caller's `cache_dir` (the command line reads HF_HUB_CACHE / HF_HOME at
its edge: `cache_from_env`), else huggingface_hub's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What a worker of each pool reads, as snapshot_download allow_patterns (fnmatch on the
# repo path; "*" also matches "/"). Keys are the parts of farm.spec.profiles (experts,
# "text", "vae"); expert folders are farm.model.loader.EXPERT_SUBFOLDER's (a test checks).
POOL_PATTERNS: dict[str, tuple[str, ...]] = {
    "high": ("transformer/*",),
    "low": ("transformer_2/*",),
    # TI2V-5B, Animate-14B: transformer/; S2V-14B: the DiT at the top of its own layout
    "dense": ("transformer/*", "diffusion_pytorch_model*"),
    "text": ("text_encoder/*", "tokenizer/*"),
    # VAE workers also encode the media inputs: Animate's CLIP image encoder, S2V's wav2vec2
    "vae": ("vae/*", "image_encoder/*", "image_processor/*",
            "wav2vec2-large-xlsr-53-english/*"),
}
POOLS = tuple(POOL_PATTERNS)
# Every pull takes the small files any worker needs to resolve the model: the family is
# detected from model_index.json and the transformer / VAE configs (config.json at the top
# for S2V's layout), the footprint check sizes pools from configs, the solver reads the
# scheduler config. Kilobytes, whatever the pools.
BASE_PATTERNS = ("model_index.json", "config.json", "*/config.json", "scheduler/*")
# What resolving checks is complete in a snapshot: the configs, not the weights a pool
# did not pull (a worker fails at load naming the missing file if it needs them).
RESOLVE_PATTERNS = ("model_index.json", "config.json", "*/config.json")


@dataclass(frozen=True, slots=True)
class HubRef:
    repo_id: str          # OWNER/NAME
    revision: str | None  # None: huggingface_hub's default ("main")

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def parse_hub_ref(ref: str) -> HubRef | None:
    """OWNER/NAME[@REVISION] as a HubRef; None if `ref` does not have that form (it may
    still be a folder: find_snapshot lets an existing folder win)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id, at, revision = ref.partition("@")
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")) or (at and not revision):
        return None
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return None
    return HubRef(repo_id, revision or None)


def cache_from_env(env: Mapping[str, str]) -> Path:
    """The hub cache folder huggingface_hub uses under `env`, by its precedence: HF_HUB_CACHE,
    HUGGINGFACE_HUB_CACHE (legacy), HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
    ~/.cache/huggingface/hub. For the command line's edge: huggingface_hub fixes its own
    default when first imported, before a test or a wrapper may have set the variables."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(env[name]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path("~/.cache")
    return (base / "huggingface" / "hub").expanduser()


def default_cache() -> Path:
    """huggingface_hub's own default cache folder (what cache_dir=None means)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def pull_command(hub: HubRef, cache_dir: Path | None = None) -> str:
    rev = f" --revision {hub.revision}" if hub.revision else ""
    cache = f" --cache-dir {cache_dir}" if cache_dir is not None else ""
    return f"reelfarm models pull {hub.repo_id}{rev}{cache}"


def find_snapshot(ref: str, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot folder of a repo id; None if `ref` is not one (an existing
    folder never is). ValueError naming the repo id, the cache folder searched and the
    pull command when the repo (or that revision, or its configs) is not in the cache."""
    if Path(ref).expanduser().exists():
        return None
    hub = parse_hub_ref(ref)
    if hub is None:
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    searched = cache_dir if cache_dir is not None else default_cache()
    try:
        folder = snapshot_download(hub.repo_id, revision=hub.revision, cache_dir=cache_dir,
                                   local_files_only=True, allow_patterns=list(RESOLVE_PATTERNS))
    except IncompleteSnapshotError as exc:
        raise ValueError(f"model {ref!r}: the Hugging Face cache {searched} holds an incomplete "
                         f"snapshot ({exc}); complete it with `{pull_command(hub, cache_dir)}`"
                         ) from None
    except LocalEntryNotFoundError:
        raise ValueError(f"model {ref!r}: Hugging Face repo {hub.repo_id} (revision "
                         f"{hub.revision or 'main'}) is not in the Hugging Face cache {searched} "
                         f"(and no folder {ref!r} exists); rendering never downloads: fetch it "
                         f"with `{pull_command(hub, cache_dir)}`") from None
    return Path(folder)


def parse_pools(text: str | None) -> tuple[str, ...]:
    """--pools "high,low" -> ("high", "low"); None: every pool. ValueError naming the
    allowed values."""
    if text is None:
        return POOLS
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in names if p not in POOL_PATTERNS]
    if unknown or not names:
        raise ValueError(f"--pools: unknown pool(s) {', '.join(unknown) or repr(text)}; "
                         f"allowed: {', '.join(POOLS)} (comma-separated)")
    return names


def pull_patterns(pools: Sequence[str]) -> list[str]:
    """The allow_patterns of a pull for `pools`: the configs, then each pool's folders."""
    patterns = list(BASE_PATTERNS)
    for pool in pools:
        patterns += [p for p in POOL_PATTERNS[pool] if p not in patterns]
    return patterns


def pull_arguments(repo: str, pools: Sequence[str] = POOLS, revision: str | None = None,
                   cache_dir: Path | None = None) -> dict[str, Any]:
    """The keyword arguments of huggingface_hub.snapshot_download for `models pull` (pure:
    what is fetched is decided and tested here; `pull` only calls it)."""
    hub = parse_hub_ref(repo)
    if hub is None:
        raise ValueError(f"REPO: {repo!r} is not a Hugging Face repo id; expected "
                         "OWNER/NAME or OWNER/NAME@REVISION, e.g. Wan-AI/Wan2.2-T2V-A14B-Diffusers")
    if hub.revision and revision and hub.revision != revision:
        raise ValueError(f"--revision: {revision!r} differs from the revision in REPO "
                         f"({hub.revision!r}); give one")
    return {"repo_id": hub.repo_id, "revision": revision or hub.revision,
            "cache_dir": None if cache_dir is None else str(cache_dir),
            "allow_patterns": pull_patterns(pools)}


def pull(arguments: Mapping[str, Any]) -> Path:
    """Download into the cache (huggingface_hub's progress bars on stderr); the snapshot."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(**arguments))

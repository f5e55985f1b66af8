"""The serving configuration: typed, frozen, validated once in build_app.

Models and pools. A config serves `models` (default: every built-in one); a film names one
of them (the first is the default of films naming none). Pools are per model: a pool's
replicas hold parts of one model (PoolConfig.model) and advertise them as "<model>/<part>",
so the scheduler never gives a film to a replica holding another model's weights, not
even one of the same family ("toy" and "tiny"). Without `pools`, each model gets one
small pool holding all of it (whole_model_pools), whose weights load when a film first
needs them: a server of every built-in model costs one idle process per model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NonNegative = Annotated[float, Field(ge=0)]
# A CPU share of the default pools (whole_model_pools): a Ray placement token, small
# enough that one idle replica per built-in model and the director fit on 2 cores.
IDLE_POOL_CPUS = 0.1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolAutoscaling(_Frozen):
    """A pool whose replica count follows its backlog (serving.autoscale): Serve adds a
    replica wherever the cluster offers the pool's resources, e.g. on a host that joined."""

    # At least one: the backlog is reported by the pool's own replicas.
    min_replicas: Annotated[int, Field(ge=1)] = 1
    max_replicas: Annotated[int, Field(ge=1)]
    # Queued + running phases one replica should carry (its slots, or more to keep fewer
    # replicas for a short burst).
    phases_per_replica: Annotated[float, Field(gt=0)] = 1.0
    # How long the backlog must ask for more / fewer replicas before Serve moves. A real
    # expert takes minutes to load (PoolConfig.preload), so scaling down waits longer.
    upscale_delay_s: NonNegative = 30.0
    downscale_delay_s: NonNegative = 600.0
    # Window the reported backlog is averaged over.
    look_back_period_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _bounds(self) -> PoolAutoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"autoscaling.max_replicas ({self.max_replicas}) must be >= "
                             f"autoscaling.min_replicas ({self.min_replicas})")
        return self


class PoolConfig(_Frozen):
    """One worker deployment: what its replicas hold and what each replica gets."""

    # Deployment name suffix: the deployment is called "Pool<name>", e.g. PoolHigh.
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    # The served model whose parts the pool holds (one of ServingConfig.models); may be
    # left out in a config serving one model (ServingConfig fills it in).
    model: str | None = None
    # Parts of that model: expert names ("high", "low", "dense") and/or "text", "vae".
    holds: Annotated[list[str], Field(min_length=1)]
    replicas: Annotated[int, Field(ge=1)] = 1
    # Units of work one replica runs at once.
    slots: Annotated[int, Field(ge=1)] = 1
    num_cpus: NonNegative = 1.0
    num_gpus: NonNegative = 0.0
    accelerator_type: str | None = None
    # Custom Ray resources each replica needs, e.g. {"pool_high": 1}: with matching
    # resources on the Kubernetes worker groups, a pool's replicas land only on its group.
    resources: dict[str, float] = {}
    # torch intra-op threads per replica (0 = torch's default).
    torch_threads: Annotated[int, Field(ge=0)] = 0
    # Load the parts at start, before the replica registers for work: for real
    # checkpoints (a replica the balancer adds must not take a phase, then spend minutes
    # loading 28 GB). False: load each part when work first needs it (the built-in
    # models; a server of many models loads only those its films use).
    preload: bool = False
    # Wire format of the handoffs this pool's phases pass to the next phase (latents +
    # solver state, e.g. high -> low expert; ~34 MB at 480p in fp32). "exact": float32,
    # bit-identical results. "bf16" (half the bytes) / "fp8" (e4m3, a scale per channel
    # and latent frame; about a quarter) trade exactness for a slow link between pools:
    # the tiny model's frames stay within 50 / 45 dB PSNR of exact (measured 64 / 57;
    # tests/kernels/test_codec_tiny_model.py). Encoded where the tensors live (the Triton
    # kernel on GPU); the reader decodes whatever the handoff names, so consumers need no
    # setting. Latents after the last step go to the decoder exact under every codec.
    handoff_codec: Literal["exact", "bf16", "fp8"] = "exact"
    # None: `replicas` is fixed. Set: `replicas` is the start, and the backlog moves the
    # count between autoscaling.min_replicas and max_replicas.
    autoscaling: PoolAutoscaling | None = None
    # How long a replica Serve stops (scale-down, a draining host) may finish the work it
    # holds and hand it in before it is killed (Serve's graceful_shutdown_timeout_s):
    # longer than a phase, or that phase runs again elsewhere.
    drain_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    # Where the pool's experts wait between uses, for GPUs smaller than an expert plus its
    # activations (farm.model.offload; docs/weights.md "Offload"): "none" on the GPU;
    # "model" in host memory, the whole expert moved in for its phase (one expert on the
    # GPU at a time); "group" block by block, each streamed in for its forward; "shard"
    # as "model" on one GPU, and in a gang each rank keeps 1/n of every expert's blocks
    # with the open gang, all-gathering a block for its forward (both A14B experts fit
    # beside each other: a gang never switches). Slower
    # (farm.spec.weights.offload_seconds); results are the same bit for bit.
    offload: Literal["none", "model", "group", "shard"] = "none"
    # The GPU memory of one replica (GB). Given: a pool whose weights (under its offload)
    # do not fit is refused at start, naming the pool, the bytes and this budget.
    gpu_memory_gb: Annotated[float, Field(gt=0)] | None = None
    # The LoRA adapters a replica keeps on its device between phases (GB; least recently
    # used leave first; farm.model.adapter_cache).
    adapter_cache_gb: Annotated[float, Field(gt=0, le=1024)] = 2.0

    @model_validator(mode="after")
    def _start_within_bounds(self) -> PoolConfig:
        scaling = self.autoscaling
        if scaling is not None and not (scaling.min_replicas <= self.replicas
                                        <= scaling.max_replicas):
            raise ValueError(f"pool {self.name}: replicas ({self.replicas}) must be within "
                             f"autoscaling.min_replicas..max_replicas "
                             f"({scaling.min_replicas}..{scaling.max_replicas})")
        return self

    @model_validator(mode="after")
    def _one_expert_at_a_time(self) -> PoolConfig:
        # "model" (and "shard", on one GPU) offload moves an expert out when another one
        # is asked for: with two units at once, one would lose its weights mid-phase.
        experts = [h for h in self.holds if h in ("high", "low", "dense")]
        if self.offload in ("model", "shard") and len(experts) > 1 and self.slots > 1:
            raise ValueError(f"pool {self.name}: offload {self.offload!r} keeps one of its "
                             f"experts ({', '.join(experts)}) on the GPU at a time; give it "
                             "slots: 1, or offload 'group' / 'none'")
        return self


class SpeedupTableSettings(_Frozen):
    """A measured speedup table (farm.sched.speedup.SpeedupTable) besides the published
    H100 ones: seconds of one clip (all steps, CFG) by GPU count on Ulysses."""

    family: str
    height: Annotated[int, Field(ge=1)]
    heads: Annotated[int, Field(ge=1)]
    seconds: dict[int, Annotated[float, Field(gt=0)]]
    fixed_s: NonNegative = 0.0
    swap_s: NonNegative = 0.0
    a2a_bytes_at_8: NonNegative = 0.0
    pred_bytes: NonNegative = 0.0

    @model_validator(mode="after")
    def _points(self) -> SpeedupTableSettings:
        need = {1} if self.heads == 1 else {1, 4, 8}
        if not need <= set(self.seconds):
            raise ValueError(f"seconds needs the times at {sorted(need)} GPUs, "
                             f"got {sorted(self.seconds)}")
        return self


class GangSettings(_Frozen):
    """Gangs inside a segment (farm.sched.gangs): a phase on a CFG x Ulysses gang of a
    pool's replicas when replicas are idle and few segments wait."""

    min_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.8
    max_size: Annotated[int, Field(ge=1)] = 80
    # Between nodes, bytes per second (Ulysses beyond 8 GPUs, CFG all-gathers).
    link_bytes_per_s: Annotated[float, Field(gt=0)] = 50e9
    # Tables besides the published H100 ones (other GPUs, resolutions or models).
    tables: list[SpeedupTableSettings] = []

    def policy(self):
        from farm.sched.gangs import GangPolicy
        from farm.sched.speedup import SpeedupTable, published_tables

        extra = tuple(SpeedupTable(t.family, t.height, t.heads, tuple(sorted(t.seconds.items())),
                                   t.fixed_s, t.swap_s, t.a2a_bytes_at_8, t.pred_bytes)
                      for t in self.tables)
        return GangPolicy(tables=extra + published_tables(), link_bytes_per_s=self.link_bytes_per_s,
                          min_efficiency=self.min_efficiency, max_size=self.max_size)


class DirectorSettings(_Frozen):
    max_unfinished_films: Annotated[int, Field(ge=1)] = 100
    max_unfinished_per_tenant: Annotated[int, Field(ge=1)] = 20
    # A worker that sends no heartbeat for this long is lost; its tasks are retried.
    liveness_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    num_cpus: NonNegative = 0.5
    # Custom Ray resources the director's replica needs: pin it to a node (e.g. the head,
    # beside the job store) by a resource only that node offers.
    resources: dict[str, float] = {}
    max_attempts: Annotated[int, Field(ge=1)] = 3
    # Between one tenant's films at one priority (farm.sched.config.SchedulerConfig):
    # "share" (fair share: short films go early) or "fifo" (admission order).
    film_order: Literal["share", "fifo"] = "share"
    # None: every segment's phase on one replica; else gangs inside a segment.
    gangs: GangSettings | None = None
    # Memory of the expert workers (GB): films whose windows would not fit are refused.
    worker_memory_gb: Annotated[float, Field(gt=0)] = 80.0


def builtin_models() -> list[str]:
    """Every model reelfarm ships (farm.model.loader.BUILTIN_MODELS; imported late: torch)."""
    from farm.model.loader import BUILTIN_MODELS

    return list(BUILTIN_MODELS)


class MediaSettings(_Frozen):
    """Uploaded media (UploadMedia): limits per file, and whether films need rights."""

    max_bytes: Annotated[int, Field(ge=1)] = 512 * 1024 * 1024
    max_seconds: Annotated[float, Field(gt=0)] = 600.0
    # Refuse films whose photo, video or voice inputs carry no rights statement.
    require_rights: bool = False


class SigningSettings(_Frozen):
    """The key that signs the content credentials of every frame and mp4 the app delivers
    (PEM files every director replica can read, e.g. a mounted Secret): the key, and its
    certificate chain (its certificate, then the intermediates). Neither: the farm's own
    chain, made once in `signing/` beside the artifact folder (on no trust list)."""

    key: str | None = None
    cert_chain: str | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> SigningSettings:
        if (self.key is None) != (self.cert_chain is None):
            raise ValueError("signing: give both `key` and `cert_chain`, or neither")
        return self

    def signer(self, artifacts: str) -> Any:
        """The loaded signer (ValueError naming what is wrong with the files)."""
        from farm.director.delivery import default_signer
        from farm.media.credentials import SigningConfig

        if self.key is None or self.cert_chain is None:
            return default_signer(artifacts)
        return SigningConfig(Path(self.key), Path(self.cert_chain)).load()


class ServingConfig(_Frozen):
    # Models served, by the name films give: built-in names (tiny, toy, tiny-<family>)
    # and/or diffusers-format model folders visible to every replica. The first is the
    # default of films that name none.
    models: Annotated[list[str], Field(min_length=1, default_factory=builtin_models)]
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # Folder (shared by replicas of the director) where film archives are written, and
    # uploaded media are kept (media/: every pool worker reads the inputs it decodes here).
    artifacts: str = ".reelfarm/artifacts"
    # Per-model pools; none given: one pool per model holding all of it (whole_model_pools).
    pools: list[PoolConfig] = []
    director: DirectorSettings = DirectorSettings()
    media: MediaSettings = MediaSettings()
    signing: SigningSettings = SigningSettings()
    # File of `<tenant> <token>` lines for the API (a mounted Secret); None: open API.
    tokens_file: str | None = None
    # SQLAlchemy URL of the job store (films survive a director restart); None: the
    # REELFARM_DATABASE_URL environment variable of the director, else a SQLite file in
    # the artifact folder (durable by default; give PostgreSQL for a real cluster).
    database_url: str | None = None

    def job_store_url(self, environ: Mapping[str, str]) -> str | None:
        """The job store the director uses: the config's, the environment's, else SQLite
        beside the artifacts; None only when the artifacts are an object store URL (no
        file for SQLite: films then live in the director's memory)."""
        url = self.database_url or environ.get("REELFARM_DATABASE_URL")
        if url:
            return url
        if "://" in self.artifacts:
            return None
        return f"sqlite:///{Path(self.artifacts).resolve() / 'reelfarm.db'}"

    @model_validator(mode="before")
    @classmethod
    def _complete_pools(cls, data: Any) -> Any:
        """Fill in what depends on the models: no pools -> one pool per model; a pool with
        no model in a config of one model -> that model."""
        if not isinstance(data, dict):
            return data
        models = data["models"] if "models" in data else builtin_models()
        if not (isinstance(models, list) and models and all(isinstance(m, str) for m in models)):
            return data  # the field's own validation says what is wrong
        pools = data.get("pools") or whole_model_pools(models)
        if len(models) == 1:
            pools = [_with_model(p, models[0]) for p in pools]
        return {**data, "pools": pools}

    @model_validator(mode="after")
    def _pools_cover_the_models(self) -> ServingConfig:
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be unique, got {self.models}")
        parts = {m: _parts(m) for m in self.models}  # ValueError naming the built-ins
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        held: dict[str, set[str]] = {m: set() for m in self.models}
        for p in self.pools:
            if p.model not in parts:
                raise ValueError(f"pool {p.name}: model {p.model!r} is not served; name one of "
                                 f"models ({', '.join(self.models)})" if p.model else
                                 f"pool {p.name}: give its `model` "
                                 f"(one of {', '.join(self.models)})")
            unknown = set(p.holds) - parts[p.model]
            if unknown:
                raise ValueError(f"pool {p.name} holds {sorted(unknown)}, not parts of {p.model}; "
                                 f"allowed: {sorted(parts[p.model])}")
            held[p.model] |= set(p.holds)
        for m in self.models:
            if missing := parts[m] - held[m]:
                raise ValueError(f"no pool holds {sorted(missing)} of model {m}; every expert, "
                                 "'text' and 'vae' of every model must be held by some pool")
        return self

    @model_validator(mode="after")
    def _pools_fit_their_gpus(self) -> ServingConfig:
        """A pool with a gpu_memory_gb whose weights cannot fit it is refused before
        anything starts (sizes from the model's configs, no weights read)."""
        from farm.model.footprint import pool_weight_bytes
        from farm.model.loader import resolve_model

        for p in self.pools:
            if p.gpu_memory_gb is None:
                continue
            need = pool_weight_bytes(resolve_model(p.model), p.holds, self.dtype,
                                     offload=p.offload)
            if need > p.gpu_memory_gb * 1e9:
                raise ValueError(
                    f"pool {p.name}: {', '.join(p.holds)} of {p.model} at {self.dtype} with "
                    f"offload {p.offload!r} keep {need / 1e9:.1f} GB of weights on the GPU; its "
                    f"gpu_memory_gb is {p.gpu_memory_gb:g} GB. Hold fewer parts per pool, or "
                    "offload (none | model | group | shard; docs/weights.md)")
        return self

    def sources(self) -> dict:
        """Served name -> farm.model.loader.ModelSource (configs only; no weights read)."""
        from farm.model.loader import resolve_model

        return {m: resolve_model(m) for m in self.models}


def _parts(model: str) -> set[str]:
    """What a pool of `model` may hold: its experts, "text", "vae"."""
    from farm.model.loader import resolve_model
    from farm.spec.profiles import profile_for

    return set(profile_for(resolve_model(model).family).parts)


def _with_model(pool: Any, model: str) -> Any:
    if isinstance(pool, PoolConfig):
        return pool if pool.model else pool.model_copy(update={"model": model})
    if isinstance(pool, dict) and not pool.get("model"):
        return {**pool, "model": model}
    return pool


def pool_label(model: str) -> str:
    """A pool name for a model: "tiny-i2v-a14b" -> "TinyI2vA14b", a folder by its base name."""
    words = re.findall(r"[A-Za-z0-9]+", Path(model).name if "/" in model else model)
    label = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return label if label[0].isalpha() else f"M{label}"


def whole_model_pools(models: Sequence[str], **options: Any) -> list[PoolConfig]:
    """The default layout: per model, one replica holding all of it, idle until a film
    needs that model (no expert pipelining: give `pools` for throughput)."""
    options = {"num_cpus": IDLE_POOL_CPUS, **options}
    return [PoolConfig(name=pool_label(m), model=m, holds=sorted(_parts(m)), **options)
            for m in models]


def expert_layout(model: str, prefix: str = "", **options: Any) -> list[PoolConfig]:
    """A model's pools for throughput: one per expert (High, Low or Dense), one holding its
    VAE and text encoder (Decode); names start with `prefix` (e.g. "Toy")."""
    from farm.model.loader import resolve_model
    from farm.spec.profiles import profile_for

    experts = profile_for(resolve_model(model).family).experts
    pools = [PoolConfig(name=f"{prefix}{e.capitalize()}", model=model, holds=[e], **options)
             for e in experts]
    pools.append(PoolConfig(name=f"{prefix}Decode", model=model, holds=["vae", "text"], **options))
    return pools


def expert_pools(models: str | Sequence[str] = "tiny", **overrides: object) -> ServingConfig:
    """Expert pools for each model (High, Low, Decode; prefixed by the model's label when
    there are several models)."""
    models = [models] if isinstance(models, str) else list(models)
    pools = [p for m in models
             for p in expert_layout(m, pool_label(m) if len(models) > 1 else "")]
    return ServingConfig(models=models, pools=pools, **overrides)  # type: ignore[arg-type]

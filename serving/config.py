"""The serving configuration: typed, frozen, validated once in build_app."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NonNegative = Annotated[float, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolConfig(_Frozen):
    """One worker deployment: what its replicas hold and what each replica gets."""

    # Deployment name suffix: the deployment is called "Pool<name>", e.g. PoolHigh.
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    # Expert names ("high", "low", "dense") and/or "text", "vae".
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
            raise ValueError(f"seconds needs the times at {sorted(need)} GPUs, got {sorted(self.seconds)}")
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
    max_attempts: Annotated[int, Field(ge=1)] = 3
    # None: every segment's phase on one replica; else gangs inside a segment.
    gangs: GangSettings | None = None
    # Memory of the expert workers (GB): films whose windows would not fit are refused.
    worker_memory_gb: Annotated[float, Field(gt=0)] = 80.0


class ServingConfig(_Frozen):
    # tiny | tiny-<family> | a diffusers-format model folder visible to every replica.
    model: str = "tiny"
    device: Literal["cpu", "cuda"] = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # Folder (shared by replicas of the director) where film archives are written.
    artifacts: str = ".reelfarm/artifacts"
    pools: Annotated[list[PoolConfig], Field(min_length=1)]
    director: DirectorSettings = DirectorSettings()
    # File of `<tenant> <token>` lines for the API (a mounted Secret); None: open API.
    tokens_file: str | None = None
    # SQLAlchemy URL of the job store (films survive a director restart); None: the
    # REELFARM_DATABASE_URL environment variable of the director, else in memory only.
    database_url: str | None = None

    @model_validator(mode="after")
    def _pools_cover_the_model(self) -> ServingConfig:
        from farm.model.loader import resolve_model
        from farm.spec.profiles import profile_for

        experts = profile_for(resolve_model(self.model).family).experts
        allowed = {*experts, "text", "vae"}
        held = {h for p in self.pools for h in p.holds}
        unknown = held - allowed
        if unknown:
            raise ValueError(f"pools hold {sorted(unknown)}, not parts of {self.model}; "
                             f"allowed: {sorted(allowed)}")
        missing = allowed - held
        if missing:
            raise ValueError(f"no pool holds {sorted(missing)}; every expert, 'text' and 'vae' "
                             "must be held by some pool")
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"pool names must be unique, got {names}")
        return self


def expert_pools(model: str = "tiny", **overrides: object) -> ServingConfig:
    """The default layout: one pool per expert, one pool with the VAE and text encoder."""
    from farm.model.loader import resolve_model
    from farm.spec.profiles import profile_for

    experts = profile_for(resolve_model(model).family).experts
    pools = [PoolConfig(name=e.capitalize(), holds=[e]) for e in experts]
    pools.append(PoolConfig(name="Decode", holds=["vae", "text"]))
    return ServingConfig(model=model, pools=pools, **overrides)  # type: ignore[arg-type]

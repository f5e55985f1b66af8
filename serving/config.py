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


class DirectorSettings(_Frozen):
    max_unfinished_films: Annotated[int, Field(ge=1)] = 100
    max_unfinished_per_tenant: Annotated[int, Field(ge=1)] = 20
    # A worker that sends no heartbeat for this long is lost; its tasks are retried.
    liveness_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    num_cpus: NonNegative = 0.5
    max_attempts: Annotated[int, Field(ge=1)] = 3
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

"""Ulysses sequence parallel for diffusers' WanTransformer3DModel.

The sp ranks of a gang each hold every weight and 1/sp of the tokens. Everything in a
Wan block is per token except self-attention, so only self-attention talks:

    tokens (B, S, C) ── shard ──> (B, S_r, C) on rank r            before blocks[0]
    RoPE (1, S, 1, D) ── shard ──> (1, S_r, 1, D): rank r's GLOBAL positions
    self-attention (attn1):
        q, k, v     (B, S_r, H, D)      projections, RMS norm, RoPE on my tokens
        all-to-all  (B, S, H/sp, D)     heads scattered, sequence gathered
        attention   (B, S, H/sp, D)     my heads over the whole sequence
        all-to-all  (B, S_r, H, D)      back: sequence scattered, heads gathered
    cross-attention, MLP, norms         per token: nothing to exchange
    proj_out (B, S_r, X) ── gather ──> (B, S, X)                    then unpatchify
    per-token timesteps (TI2V, (B, S)) are sharded like the tokens.

The hooks and the attention processor are installed once per model and do nothing
unless the calling thread runs inside `sequence_parallel(model, group)`: a model that
never runs a gang is not touched, and other threads sharing the model are not affected.
S need not divide by sp (chunks differ by at most one token); sp must divide the heads.
"""

from __future__ import annotations

import contextlib
import threading
from contextvars import ContextVar

import torch

_ACTIVE: ContextVar[SeqGroup | None] = ContextVar("reelfarm_ulysses", default=None)
_INSTALL_LOCK = threading.Lock()


class PeerFailed(RuntimeError):
    """A collective failed: another rank of the gang failed (or its link). Runtimes blame
    the rank whose own failure came first, not its echoes."""

    gang_echo = True


def wait(work) -> None:
    """Wait for a c10d work item; a broken peer raises PeerFailed."""
    try:
        work.wait()
    except RuntimeError as exc:
        raise PeerFailed(f"a peer of the gang failed: {exc}") from exc


class SeqGroup:
    """The SP ranks of a gang and the collectives Ulysses needs (any c10d backend)."""

    def __init__(self, pg, rank: int, size: int):
        self.pg, self.rank, self.size = pg, rank, size

    @staticmethod
    def sizes(total: int, parts: int) -> list[int]:
        """Chunk sizes of torch.tensor_split(range(total), parts)."""
        return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]

    def shard(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """My chunk of x along dim (no communication)."""
        return torch.tensor_split(x, self.size, dim=dim)[self.rank].contiguous()

    def gather(self, x: torch.Tensor, dim: int, total: int,
               sizes: list[int] | None = None) -> torch.Tensor:
        """Every rank's chunk along dim, concatenated: (.., S_r, ..) -> (.., S, ..); chunk
        sizes are tensor_split's unless given."""
        sizes = sizes or self.sizes(total, self.size)
        part = x.movedim(dim, 0)  # (S_r, ...)
        out = part.new_empty((total, *part.shape[1:]))
        send = torch.cat([part] * self.size).contiguous()  # an all-gather as an all-to-all
        wait(self.pg.alltoall_base(out, send, sizes, [part.shape[0]] * self.size))
        return out.movedim(0, dim)

    def heads_to_sequence(self, x: torch.Tensor, total: int) -> torch.Tensor:
        """(B, S_r, H, D) -> (B, S, H/sp, D): scatter heads, gather the sequence."""
        b, s_r, h, d = x.shape
        send = x.reshape(b, s_r, self.size, h // self.size, d).permute(2, 1, 0, 3, 4)
        send = send.reshape(self.size * s_r, b, h // self.size, d).contiguous()
        out = x.new_empty((total, b, h // self.size, d))
        wait(self.pg.alltoall_base(out, send, self.sizes(total, self.size), [s_r] * self.size))
        return out.permute(1, 0, 2, 3)  # (B, S, H/sp, D)

    def sequence_to_heads(self, x: torch.Tensor, local: int) -> torch.Tensor:
        """(B, S, H/sp, D) -> (B, S_r, H, D): scatter the sequence, gather heads."""
        b, s, hp, d = x.shape
        send = x.permute(1, 0, 2, 3).contiguous()  # (S, B, H/sp, D), chunk j goes to rank j
        out = x.new_empty((self.size * local, b, hp, d))
        wait(self.pg.alltoall_base(out, send, [local] * self.size, self.sizes(s, self.size)))
        out = out.reshape(self.size, local, b, hp, d).permute(2, 1, 0, 3, 4)
        return out.reshape(b, local, self.size * hp, d)


@contextlib.contextmanager
def sequence_parallel(model, group: SeqGroup | None):
    """Run `model` forwards in this block split over `group` (None or size 1: as is)."""
    if group is None or group.size == 1:
        yield
        return
    heads = model.config.num_attention_heads
    if heads % group.size:
        raise ValueError(f"Ulysses degree {group.size} must divide the {heads} attention heads "
                         f"of this model; valid degrees: {valid_degrees(heads)}")
    install(model)
    token = _ACTIVE.set(group)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def valid_degrees(heads: int) -> str:
    return ", ".join(str(d) for d in range(1, heads + 1) if heads % d == 0)


def install(model) -> None:
    """Hooks and processors, once per model; inert outside `sequence_parallel`."""
    with _INSTALL_LOCK:
        if getattr(model, "_reelfarm_ulysses", False):
            return
        model.register_forward_pre_hook(_shard_timestep, with_kwargs=True)
        model.rope.register_forward_hook(_shard_rope)
        model.blocks[0].register_forward_pre_hook(_shard_tokens)
        model.proj_out.register_forward_hook(_gather_tokens)
        for block in model.blocks:
            block.attn1.set_processor(UlyssesAttnProcessor(block.attn1.processor))
        model._reelfarm_ulysses = True


def _shard_timestep(module, args, kwargs):
    group = _ACTIVE.get()
    t = kwargs.get("timestep")
    if group is None or t is None or t.ndim != 2:
        return None
    # Wan2.2 TI2V: one timestep per token (B, S) -> (B, S_r), like the tokens.
    return args, {**kwargs, "timestep": group.shard(t, 1)}


def _shard_rope(module, args, output):
    group = _ACTIVE.get()
    if group is None:
        return None
    cos, sin = output  # (1, S, 1, D) each
    return group.shard(cos, 1), group.shard(sin, 1)


def _shard_tokens(module, args):
    group = _ACTIVE.get()
    if group is None:
        return None
    hidden, *rest = args  # (B, S, C) -> (B, S_r, C)
    group.total = hidden.shape[1]
    return (group.shard(hidden, 1), *rest)


def _gather_tokens(module, args, output):
    group = _ACTIVE.get()
    if group is None:
        return None
    return group.gather(output, 1, group.total)  # (B, S_r, X) -> (B, S, X)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's RoPE on (B, S, H, D), as in diffusers' WanAttnProcessor."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


class UlyssesAttnProcessor:
    """Self-attention over a sharded sequence; the wrapped processor when inactive."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 rotary_emb=None):
        group = _ACTIVE.get()
        if group is None or encoder_hidden_states is not None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask,
                              rotary_emb)
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.transformers.transformer_wan import _get_qkv_projections

        local = hidden_states.shape[1]
        # 1. projections and RMS norm (across heads, per token) on my tokens: (B, S_r, H*D)
        q, k, v = _get_qkv_projections(attn, hidden_states, None)
        q, k = attn.norm_q(q), attn.norm_k(k)
        # 2. heads, and RoPE at my tokens' global positions: (B, S_r, H, D)
        q, k, v = (t.unflatten(2, (attn.heads, -1)) for t in (q, k, v))
        if rotary_emb is not None:
            q, k = _rotate(q, *rotary_emb), _rotate(k, *rotary_emb)
        # 3. all-to-all: (B, S_r, H, D) -> (B, S, H/sp, D)
        q, k, v = (group.heads_to_sequence(t, group.total) for t in (q, k, v))
        # 4. attention of my heads over the whole sequence: (B, S, H/sp, D)
        out = dispatch_attention_fn(q, k, v, attn_mask=attention_mask, dropout_p=0.0,
                                    is_causal=False,
                                    backend=getattr(self.inner, "_attention_backend", None))
        # 5. all-to-all back: (B, S, H/sp, D) -> (B, S_r, H, D) -> (B, S_r, H*D)
        out = group.sequence_to_heads(out.type_as(q), local).flatten(2, 3)
        # 6. output projection: (B, S_r, C)
        return attn.to_out[1](attn.to_out[0](out))

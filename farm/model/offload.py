"""Keeping an expert in host memory and bringing it to its device when it runs, with the
libraries' own hooks (no copy loop of ours), for GPUs smaller than the expert plus its
activations (PoolConfig.offload; docs/weights.md "Offload"):

    none   the expert lives on its device
    model  the whole expert waits in host memory and moves to the device for its phase
           (accelerate's cpu_offload_with_hook: diffusers' model CPU offload); the
           worker's other experts move back out then (ModelLoader.expert), so one
           expert is on the device at a time, as the official `--offload_model`
    group  block by block: each block moves in for its forward and out after, the
           next one prefetched on a CUDA stream (diffusers' apply_group_offloading,
           block_level, one block per group: ComfyUI's block swap)
    shard  as "model" for a phase on one GPU; as one rank of a gang of n, 1/n of every
           block stays on the device with the open gang and each block is all-gathered
           for its forward (farm.model.shard: our hooks, FSDP-style)

What each mode needs on the device is farm.spec.weights' Weights.resident_bytes, what it
costs in time farm.spec.weights.offload_seconds.
"""

from __future__ import annotations

from typing import Any

import torch

from farm.spec.weights import OFFLOAD_MODES


def check_mode(offload: str) -> str:
    if offload not in OFFLOAD_MODES:
        raise ValueError(f"offload {offload!r}; allowed: {', '.join(OFFLOAD_MODES)}")
    return offload


def offload(module: torch.nn.Module, mode: str, device: torch.device, name: str = "") -> Any:
    """Hook `module` (loaded on the CPU; expert `name`) to run on `device`; returns the
    hook whose `offload()` moves a "model"- or "shard"-offloaded module back to host
    memory (for "shard" the farm.model.shard.HostExpert), else None."""
    check_mode(mode)
    if mode == "shard":
        from farm.model.shard import HostExpert

        host = HostExpert(module, device, name)
        module._reelfarm_host = host  # for run_device
        return host
    if mode == "model":
        from accelerate import cpu_offload_with_hook

        _, hook = cpu_offload_with_hook(module, execution_device=device)
        return hook
    if mode == "group":
        from diffusers.hooks import apply_group_offloading

        apply_group_offloading(module, onload_device=device, offload_device=torch.device("cpu"),
                               offload_type="block_level", num_blocks_per_group=1,
                               use_stream=device.type == "cuda")
    return None


def run_device(module: torch.nn.Module) -> torch.device:
    """Where `module` computes: its offload hook's device (its parameters wait in host
    memory in between), else its parameters'."""
    host = getattr(module, "_reelfarm_host", None)  # shard: whole or sharded, there
    if host is not None:
        return host.device
    hook = getattr(module, "_hf_hook", None)  # accelerate: model offload
    if getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    registry = getattr(module, "_diffusers_hook", None)  # diffusers: group offload
    group = registry.get_hook("group_offloading") if registry is not None else None
    if group is not None:
        return torch.device(group.group.onload_device)
    return next(module.parameters()).device

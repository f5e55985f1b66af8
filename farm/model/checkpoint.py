"""Reading one component of a checkpoint at its run dtype, once, onto its device.

A 14B expert is 28.5 GB in bfloat16 and 57 GB in float32: it must never pass through
float32, nor exist twice. So each component is read by its library's own loader at the
run dtype (`from_pretrained(..., torch_dtype=...)` for diffusers, `dtype=` for
transformers): tensors come straight from the mmapped safetensors, converted one at a
time where the file's dtype differs, and the modules the library keeps in float32 are
read as float32. On an accelerator the library places each tensor there as it is read
(`device_map`); nothing is built on the CPU first.

Tensors read at the file's own dtype stay views of the mmapped file (no copy: on the
CPU a bfloat16 model read from a bfloat16 checkpoint is its page cache). `realign` then
copies, one tensor at a time, only the CPU float32 tensors that must not stay views:
- in a half-precision model, the few modules kept in float32 (~0.1% of an expert): read
  from a float32 checkpoint they are views whose mapping would keep every page of the
  file read during the conversion resident (measured: +0.85 GB on a 1.9 GB model);
- in a float32 model, the misaligned ones: MKL's float32 results depend on the
  alignment of the weights and safetensors' offsets are not 64-byte aligned, so a loaded
  model would not compute bit for bit like a freshly built one (the farm == diffusers
  tests). Only CPU float32 runs (tests, the toy model) pay this copy; their peak is the
  model plus the file pages still mapped, at worst two models' worth while copying.
bfloat16 and GPU runs copy nothing more.
"""

from __future__ import annotations

from pathlib import Path

import torch

# PyTorch's CPU allocator aligns every allocation to 64 bytes (c10 gAlignment).
ALIGNMENT = 64


def fp32_modules(cls: type, dtype: torch.dtype) -> tuple[str, ...]:
    """Names of the submodules `cls`'s library keeps in float32 when run at `dtype`.

    diffusers: `_keep_in_fp32_modules` under any half dtype. transformers:
    `_keep_in_fp32_modules` only under float16 (it exists for bf16 -> fp16 overflow)
    and `_keep_in_fp32_modules_strict` under both half dtypes: the libraries' own rules,
    so a component built in memory (`cast`) and one read from a folder agree."""
    if dtype == torch.float32:
        return ()
    keep = list(getattr(cls, "_keep_in_fp32_modules_strict", None) or [])
    plain = list(getattr(cls, "_keep_in_fp32_modules", None) or [])
    if not _is_transformers(cls) or dtype == torch.float16:
        keep += plain
    return tuple(keep)


def _is_transformers(cls: type) -> bool:
    return any(c.__module__.startswith("transformers.") for c in cls.__mro__)


def _is_diffusers(cls: type) -> bool:
    return any(c.__module__.startswith("diffusers.") for c in cls.__mro__)


def cast(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """A model built in memory onto `device` at `dtype`, tensor by tensor (one extra
    tensor at a time, never a second model), float32 where its library keeps it so."""
    keep = fp32_modules(type(module), dtype)
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        target = tensor.dtype
        if tensor.is_floating_point():
            target = torch.float32 if any(k in name.split(".") for k in keep) else dtype
        tensor.data = tensor.data.to(device, target)
    return module


def read_component(cls: type, folder: Path, dtype: torch.dtype,
                   device: torch.device) -> torch.nn.Module:
    """`cls` (a diffusers ModelMixin or transformers PreTrainedModel) from the folder of
    its config and safetensors, at `dtype` (float32 where its library keeps it so), on
    `device`, in eval mode."""
    if _is_diffusers(cls):
        kwargs: dict = {"torch_dtype": dtype}
    elif _is_transformers(cls):
        kwargs = {"dtype": dtype}
    else:
        raise TypeError(f"{cls.__name__} is neither a diffusers nor a transformers model")
    if device.type != "cpu":  # each tensor goes to the device as it is read
        kwargs["device_map"] = {"": str(device)}
    return realign(cls.from_pretrained(folder, **kwargs), dtype).eval()


def realign(module: torch.nn.Module, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """Copy the CPU float32 tensors of a model run at `dtype` that must not stay views of
    the checkpoint file (see above), one at a time."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
            continue
        if dtype != torch.float32 or tensor.data_ptr() % ALIGNMENT:
            tensor.data = tensor.data.clone()
    return module


def read_safetensors(files: list[Path], dtype: torch.dtype,
                     device: torch.device | str) -> dict[str, torch.Tensor]:
    """Every tensor of `files` at `dtype` (floating point ones) on `device`, converted one
    at a time as read (a model not written by diffusers or transformers: S2V's)."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    for f in files:
        with safe_open(str(f), framework="pt", device="cpu") as st:
            for key in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                t = st.get_tensor(key)
                out[key] = t.to(device, dtype if t.is_floating_point() else t.dtype)
    return out

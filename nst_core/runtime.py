"""Devices and precision: the settings a run uses on its device, restored afterwards."""
from __future__ import annotations

import contextlib

import torch

from .options import Options, StylizeError
from .vgg import VGGFeatures


@contextlib.contextmanager
def device_settings(device: torch.device, opts: Options):
    """cuDNN's autotuner (when the options say; else the host's choice) and TF32 on CUDA for the
    duration of a run (restored afterwards)."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if opts.cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = opts.cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = opts.tf32
    torch.backends.cudnn.allow_tf32 = opts.tf32
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = old


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with AMX tiles (Xeon Sapphire Rapids and later), where oneDNN runs bf16
    convolutions several times faster than fp32 (6× for VGG19 at 512 px measured here)."""
    try:
        return bool(torch.cpu._is_amx_tile_supported()) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:   # private APIs: a torch without them gets fp32
        return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` → bf16 on CUDA GPUs that support it and on CPUs with AMX, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def _reduced_dtype(precision: str) -> torch.dtype:
    """bf16/fp16 → their dtype; anything else is refused with the valid choices."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        raise StylizeError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    return dtype


def runtime_model(model: VGGFeatures, device: torch.device, opts: Options):
    """The model as the loop runs it: for fp32 in NCHW the model itself; otherwise a copy with its
    weights cast once to bf16/fp16 (instead of autocast, which would recast every weight at every
    pass: ~10 ms a pass on the CPU) and laid out channels_last when that is on (else a convolution
    copies its weight into the input's layout at every pass, forward and backward). The copy is
    kept on the model for the next run with the same settings."""
    precision = resolve_precision(device, opts.precision)
    fmt = memory_format_for(device, opts.channels_last)
    if precision == "fp32" and fmt is None:
        return model
    dtype = torch.float32 if precision == "fp32" else _reduced_dtype(precision)
    key = (dtype, fmt, str(device))
    cached = getattr(model, "_runtime_copy", None)
    if cached is None or cached[0] != key:
        with torch.inference_mode(False), torch.no_grad():
            # Built on the meta device and filled from the model: no fp32 random init to throw away.
            with torch.device("meta"):
                copy = VGGFeatures(model.arch, model.pooling, model.convention)
            copy = copy.to(dtype=dtype).to_empty(device=device)
            copy.load_state_dict(model.state_dict())
            # The input normalisation stays fp32 (the image is normalised, then cast; see VGGFeatures).
            copy.register_buffer("mean", model.mean.detach().to(device).clone(), persistent=False)
            copy.register_buffer("std", model.std.detach().to(device).clone(), persistent=False)
            copy.source = model.source
            if fmt is not None:
                copy = copy.to(memory_format=fmt)
        object.__setattr__(model, "_runtime_copy", (key, copy))   # a plain attribute, not a submodule
        cached = (key, copy)
    return cached[1]


def drop_runtime_copy(model: VGGFeatures) -> None:
    """Free the copy :func:`runtime_model` keeps (e.g. before the GPU is reused)."""
    object.__setattr__(model, "_runtime_copy", None)


def memory_format_for(device: torch.device, setting: str):
    """``auto`` → channels_last on CUDA and CPU (cuDNN's and oneDNN's fast layout), not on MPS."""
    on = device.type in ("cuda", "cpu") if setting == "auto" else setting == "on"
    return torch.channels_last if on else None

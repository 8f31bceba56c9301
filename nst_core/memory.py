"""How much memory a CPU run needs, estimated before it starts (past what the system has, Linux's
out-of-memory killer ends the whole process, ComfyUI with it, instead of raising an error)."""
from __future__ import annotations

from typing import Optional

import torch

from .options import StylizeError

# What a run adds to its process per pixel of its largest scale (measured: 1.1–1.2 GB at 1024 px in
# bf16; 2.7 KB a pixel in fp32 at 512 px), rounded up.
BYTES_PER_PIXEL = {"reduced": 1500, "fp32": 3000}
# What a tiled run holds per pixel of the whole image besides one tile's pass (the image, its
# gradient, the content, the optimiser's history), rounded up.
TILED_BYTES_PER_PIXEL = 320


def available_memory() -> Optional[int]:
    """MemAvailable from /proc/meminfo in bytes (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_need(pixels: int, reduced_precision: bool, tile: int = 0) -> int:
    """Estimated bytes a run adds to its process when its largest image has ``pixels`` pixels,
    whole (``tile`` 0) or with its VGG pass in tiles of at most ``tile`` px a side."""
    per_px = BYTES_PER_PIXEL["reduced" if reduced_precision else "fp32"]
    if tile <= 0:
        return pixels * per_px
    return min(pixels, 2 * tile * tile) * per_px + pixels * TILED_BYTES_PER_PIXEL


def largest_tile(avail: int, reduced_precision: bool, pixels: int) -> int:
    """The largest tile size (a multiple of 64 px) whose run on an image of ``pixels`` pixels is
    estimated to need at most ``avail`` bytes; 0 where not even 64 px tiles would."""
    t = 0
    while run_need(pixels, reduced_precision, t + 64) <= avail and t < 8192:
        t += 64
    return t


def check_memory(job) -> None:
    """On the CPU, refuse a run (``job.Job``) estimated to need more memory than the system has
    available: past that, Linux's out-of-memory killer ends the whole process (ComfyUI with it)
    instead of an error. GPUs raise an out-of-memory error, which the loop turns into a message."""
    if job.device.type != "cpu":
        return
    avail = available_memory()
    if avail is None:
        return
    h, w = job.plan[-1][0]
    reduced = next(job.model.parameters()).dtype != torch.float32
    tile = job.tile_at((h, w))
    need = run_need(h * w, reduced, tile)
    if need <= avail:
        return
    what = f"in {tile} px tiles " if tile else ""
    fit = largest_tile(avail, reduced, h * w)
    if fit:
        hint = f"Set a {'smaller ' if tile else ''}tile size (about {fit} px) to optimise in tiles, or lower the output size"
    else:
        hint = "Lower the output size"
    if not reduced:
        hint += ", or use bf16 precision (about half the memory)"
    raise StylizeError(
        f"a {w}×{h} px run {what}on the CPU needs about {_amount(need)} of memory and "
        f"{_amount(avail)} is available. {hint}.")


def _amount(n: int) -> str:
    return f"{n / 1024 ** 3:.1f} GB" if n >= 1024 ** 3 else f"{n / 1024 ** 2:.0f} MB"

"""Video frames: where the previous stylised frame goes in the next one.

Deviation from Ruder et al. (2016): the motion between two input frames is one global shift,
found by phase correlation (no optical flow); the temporal loss applies where the input, moved by
that shift, did not change.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from . import color as colorlib
from .image import resize


def estimate_shift(a: torch.Tensor, b: torch.Tensor) -> Tuple[int, int]:
    """Integer (dy, dx) such that ``b`` ≈ ``a`` moved by (dy, dx), by phase correlation."""
    ga, gb = colorlib.luminance(a)[0, 0].float(), colorlib.luminance(b)[0, 0].float()
    fa, fb = torch.fft.rfft2(ga - ga.mean()), torch.fft.rfft2(gb - gb.mean())
    r = fb * fa.conj()
    r = r / r.abs().clamp_min(1e-8)
    corr = torch.fft.irfft2(r, s=ga.shape)
    idx = int(torch.argmax(corr))
    h, w = ga.shape
    dy, dx = idx // w, idx % w
    return (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)


def shift_image(x: torch.Tensor, dy: int, dx: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Move ``x`` by (dy, dx); returns the moved image and a validity mask ([1, 1, H, W])."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    valid = torch.zeros((1, 1, h, w), device=x.device, dtype=x.dtype)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    valid[..., yd, xd] = 1
    return out, valid


def soft_edges(valid: torch.Tensor, r: int) -> torch.Tensor:
    """A 0/1 validity mask with linear ramps, ``r`` px wide, inside its edges that border invalid
    areas (image borders keep 1): the previous frame fades into the area entering the view."""
    blur = F.avg_pool2d(valid, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return valid * (2 * blur - 1).clamp(0, 1)


def follow_previous(prev_in: torch.Tensor, prev_out: torch.Tensor, frame: torch.Tensor):
    """The previous stylised frame moved onto ``frame`` (``[1, 3, H, W]``, the input at this
    scale): ``(warped, valid, reliable)``. ``valid`` (soft-edged, ``[1, 1, H, W]``) is where the
    warped frame has content; ``reliable`` is where the temporal loss applies."""
    hw = tuple(frame.shape[-2:])
    prev_small = resize(prev_in, hw)
    dy, dx = estimate_shift(prev_small, frame)
    warped, valid = shift_image(prev_out, dy, dx)
    valid = soft_edges(valid, max(2, max(hw) // 32))
    moved_in, _ = shift_image(prev_small, dy, dx)
    # Stable where the input, moved by the global shift, did not change.
    same = torch.exp(-((moved_in - frame).abs().mean(1, keepdim=True) / 0.05) ** 2)
    return warped, valid, valid * same

"""Loss building blocks. Deviations from Gatys et al. (2016), one line each:

- statistics are averaged over positions (a Gram is ``F Fᵀ / (H·W)``), so they describe the
  texture, not the image size;
- content and style terms are *relative* squared errors (divided by the mean square of their
  target), so the same weights give the same balance at any resolution and with either input
  convention of the weights;
- TV is the mean squared difference of neighbouring pixels of the 0..1 image, scaled by
  ``TV_SCALE`` so that neural-style's default of 1e-3 gives a similar gentle smoothing.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

EPS = 1e-8
TV_SCALE = 1000.0   # so that neural-style's TV weight of 1e-3 smooths about as gently


def as_matrix(features: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """``[B, C, H, W]`` → ``(M, nhwc)``: ``M`` is ``[B, C, N]``, or ``[B, N, C]`` for channels_last
    features (``nhwc``), so it is a view in either memory format and never a copy."""
    b, c, h, w = features.shape
    if not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(b, h * w, c), True
    return features.reshape(b, c, h * w), False


def gram(features: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gram matrix ``[B, C, C]`` (fp32) of ``[B, C, H, W]`` features, averaged over positions
    (weighted by ``mask``, ``[H, W]`` in 0..1, where given). Differentiable (used by tests and
    benchmarks; the optimisation uses ``style_stats``' moments)."""
    f, nhwc = as_matrix(features.float())
    if nhwc:
        f = f.transpose(1, 2)
    if mask is None:
        return f @ f.transpose(1, 2) / f.shape[2]
    w = mask.reshape(1, 1, -1).to(f)
    return (f * w) @ f.transpose(1, 2) / w.sum().clamp_min(EPS)


def sum_sq(t: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """``Σ t²`` in fp32 without an fp32 copy of a reduced-precision ``t``: chunks of about ``chunk``
    elements are cast one at a time."""
    if t.dtype in (torch.float32, torch.float64) or t.numel() <= chunk:
        return torch.linalg.vector_norm(t, dtype=torch.float32).pow(2)
    m, _ = as_matrix(t)
    step = max(1, chunk // max(1, m.shape[2]))
    return sum(torch.linalg.vector_norm(m[:, i:i + step], dtype=torch.float32).pow(2)
               for i in range(0, m.shape[1], step))


class _TV(torch.autograd.Function):
    """``mean(dx²) + mean(dy²)`` with a hand-written backward that keeps nothing but the image (an
    input, so no extra memory) and recomputes one difference at a time into one gradient buffer
    (autograd's slice backwards would allocate a zero image per slice and add them up)."""

    @staticmethod
    def forward(ctx, image):
        acc = torch.float64 if image.dtype == torch.float64 else torch.float32
        ctx.save_for_backward(image)
        total = image.new_zeros((), dtype=acc)
        for d in _tv_diffs(image):
            total = total + torch.linalg.vector_norm(d, dtype=acc).pow(2) / max(d.numel(), 1)
        return total

    @staticmethod
    def backward(ctx, grad):
        (image,) = ctx.saved_tensors
        g = torch.zeros_like(image, memory_format=torch.contiguous_format)
        for axis, d in enumerate(_tv_diffs(image)):
            d.mul_((grad * (2.0 / max(d.numel(), 1))).to(d.dtype))
            hi, lo = ((..., slice(None), slice(1, None)), (..., slice(None), slice(None, -1))) if axis == 0 else \
                ((..., slice(1, None), slice(None)), (..., slice(None, -1), slice(None)))
            g[hi] += d
            g[lo] -= d
            del d
        return g


def _tv_diffs(image: torch.Tensor):
    """The horizontal, then the vertical neighbour differences, each made when asked for."""
    yield image[..., :, 1:] - image[..., :, :-1]
    yield image[..., 1:, :] - image[..., :-1, :]


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between horizontally and vertically neighbouring pixels."""
    return _TV.apply(image)


def resize_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """Resize an ``[H, W]`` (or ``[1, 1, H, W]``) 0..1 mask to ``size`` by area averaging."""
    m = mask.reshape(1, 1, *mask.shape[-2:]).float()
    if tuple(m.shape[-2:]) == tuple(size):
        return m[0, 0]
    if m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(m, size)[0, 0]
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)

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

import functools
from typing import Dict, Optional, Tuple

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


class _TVClosedForm(torch.autograd.Function):
    """``w·(mean dx² + mean dy²)`` = xᵀAx with A = w·(DxᵀDx/Nx + DyᵀDy/Ny), a discrete Laplacian:
    ``h = Ax`` is one depthwise 3×3 convolution of the edge-replicated image (wrapped around for a
    periodic image, whose last row and column neighbour the first), the value is x·h and the
    gradient 2h (kept for the backward, one multiply). Three operations forward and one back, where
    the differences take a dozen each way."""

    @staticmethod
    def forward(ctx, image, weight: float, periodic: bool):
        padded = F.pad(image, (1, 1, 1, 1), mode="circular" if periodic else "replicate")
        h = F.conv2d(padded, _laplacian(image, weight, periodic), groups=image.shape[1])
        ctx.save_for_backward(h)
        return torch.dot(image.reshape(-1), h.reshape(-1))

    @staticmethod
    def backward(ctx, grad):
        (h,) = ctx.saved_tensors
        return h * (2 * grad), None, None


def _laplacian(image: torch.Tensor, weight: float, periodic: bool = False) -> torch.Tensor:
    b, c, hh, ww = image.shape
    nx, ny = (b * c * hh * ww,) * 2 if periodic else (b * c * hh * (ww - 1), b * c * (hh - 1) * ww)
    return _laplacian_kernel(c, weight / max(nx, 1), weight / max(ny, 1), image.dtype, image.device)


@functools.lru_cache(maxsize=16)
def _laplacian_kernel(c: int, ax: float, ay: float, dtype, device) -> torch.Tensor:
    """Made once per size and weight: a kernel made from host numbers is a copy to the device."""
    exact = torch.promote_types(dtype, torch.float32)   # float32 for reduced precision; float64 only if asked
    k = torch.tensor([[0.0, -ay, 0.0], [-ax, 2 * (ax + ay), -ax], [0.0, -ay, 0.0]], dtype=exact)
    return k.to(dtype).expand(c, 1, 3, 3).contiguous().to(device)


def tv_closed_form(image: torch.Tensor, weight: float = 1.0, periodic: bool = False) -> torch.Tensor:
    """``weight · (mean dx² + mean dy²)`` over neighbouring pixels, in closed form (the optimisation
    loop's TV term); where ``periodic``, the last row and column also
    neighbour the first, and the means run over every pixel. ``image`` is ``[B, C, H, W]``."""
    return _TVClosedForm.apply(image, float(weight), bool(periodic))


def stacked_terms(parts: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The loss terms and their total as views of one vector ``[terms…, total]`` (made by one stack
    and one sum; :class:`loop.LossLog` writes the vector in one operation)."""
    values = list(parts.values())
    vec = torch.empty(len(values) + 1, device=values[0].device, dtype=torch.float32)
    torch.stack([v.float() for v in values], out=vec[:-1])
    torch.sum(vec[:-1], dim=0, out=vec[-1])
    return dict(zip([*parts, "total"], vec.unbind(0)))


def base_vector(terms: Dict[str, torch.Tensor]):
    """The one vector the terms are consecutive views of (see :func:`stacked_terms`), or None."""
    values = list(terms.values())
    base = values[0]._base
    if base is None or base.dim() != 1 or base.numel() != len(values):
        return None
    ok = all(v._base is base and v.storage_offset() == base.storage_offset() + i for i, v in enumerate(values))
    return base if ok else None


def resize_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """Resize an ``[H, W]`` (or ``[1, 1, H, W]``) 0..1 mask to ``size`` by area averaging."""
    m = mask.reshape(1, 1, *mask.shape[-2:]).float()
    if tuple(m.shape[-2:]) == tuple(size):
        return m[0, 0]
    if m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(m, size)[0, 0]
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)

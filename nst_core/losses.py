"""Loss terms. Deviations from Gatys et al. (2016), one line each:

- Gram matrices are averaged over positions (``F Fᵀ / (H·W)``, optionally mask-weighted), so a
  Gram is a statistic of the texture, not of the image size.
- Content and style terms are *relative* squared errors (divided by the mean square of their
  target), so every layer counts equally, and the same weights give the same balance whatever the
  resolution (all terms are means over positions) and whichever input convention the weights use.
- TV is the mean squared difference of neighbouring pixels of the 0..1 image, scaled by
  ``TV_SCALE`` so that neural-style's default of 1e-3 gives a similar gentle smoothing.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

EPS = 1e-8
# Calibration constants: chosen so that neural-style's defaults (content 5, style 100, TV 1e-3)
# keep their meaning and give a pleasing, balanced result at 512 px.
CONTENT_SCALE = 1.0
STYLE_SCALE = 1.0
TV_SCALE = 1000.0


class _Gram(torch.autograd.Function):
    """``G = F·diag(w)·Fᵀ / s`` with a one-matmul backward, ``dF = (dG + dGᵀ)·F·diag(w) / s``
    (autograd's generic matmul backward would do two)."""

    @staticmethod
    def forward(ctx, f, w, s):
        fw = f if w is None else f * w
        ctx.save_for_backward(fw)
        ctx.s = s
        return torch.bmm(fw, f.transpose(1, 2)) / s

    @staticmethod
    def backward(ctx, grad):
        (fw,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), fw) / ctx.s, None, None


def gram(features: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gram matrix ``[B, C, C]`` of ``[B, C, H, W]`` features, averaged over (mask-weighted) positions.

    ``mask`` is ``[H, W]`` or ``[B, 1, H, W]`` in 0..1; positions are weighted by it.
    """
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()  # reduced-precision features: Grams and losses in fp32
    if mask is None:
        return _Gram.apply(f, None, float(h * w))
    m = mask.reshape(-1, 1, h * w).to(f)
    # The mask's sum is a constant of the image, so it is fine outside the graph.
    return _Gram.apply(f, m, m.sum(-1, keepdim=True).clamp_min(EPS))


def relative_mse(x: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                 norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean(weight·(x - target)²) / mean(target²)`` (the normaliser may be given precomputed)."""
    diff = (x.float() - target.float()).pow(2)
    if weight is not None:
        diff = diff * weight
    if norm is None:
        norm = target.float().pow(2).mean()
    return diff.mean() / (norm + EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Relative MSE between feature maps; ``mask`` ([H, W], 0..1) restricts it to a region."""
    if mask is None:
        return relative_mse(features, target)
    m = mask.reshape(1, 1, *features.shape[-2:]).to(features)
    # Normalise by the masked region so a small region is not down-weighted by its size.
    frac = m.mean().clamp_min(EPS)
    return relative_mse(features, target, weight=m) / frac


def style_loss(features: torch.Tensor, target_gram: torch.Tensor, mask: Optional[torch.Tensor] = None,
               norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Relative MSE between the Gram of ``features`` (mask-weighted) and a target Gram."""
    return relative_mse(gram(features, mask), target_gram, norm=norm)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between horizontally and vertically neighbouring pixels."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.float().pow(2).mean() + dy.float().pow(2).mean()


def resize_mask(mask: torch.Tensor, size) -> torch.Tensor:
    """Resize an ``[H, W]`` (or ``[1, 1, H, W]``) 0..1 mask to ``size`` by area averaging."""
    m = mask.reshape(1, 1, *mask.shape[-2:]).float()
    if tuple(m.shape[-2:]) == tuple(size):
        return m[0, 0]
    if m.shape[-2] >= size[0] and m.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(m, size)[0, 0]
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)

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

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

EPS = 1e-8
# Calibration constants: chosen so that neural-style's defaults (content 5, style 100, TV 1e-3)
# keep their meaning and give a pleasing, balanced result at 512 px.
CONTENT_SCALE = 1.0
STYLE_SCALE = 1.0
TV_SCALE = 1000.0


def as_matrix(features: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """``[B, C, H, W]`` → ``(M, nhwc)``: ``M`` is ``[B, C, N]``, or ``[B, N, C]`` for channels_last
    features (``nhwc``), so it is a view in either memory format and never a copy."""
    b, c, h, w = features.shape
    if not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(b, h * w, c), True
    return features.reshape(b, c, h * w), False


def _gram_mm(f: torch.Tensor, fw: torch.Tensor, nhwc: bool) -> torch.Tensor:
    """``fw·fᵀ`` (``[B, C, C]``) for either layout of :func:`as_matrix`."""
    return torch.bmm(f.transpose(1, 2), fw) if nhwc else torch.bmm(fw, f.transpose(1, 2))


def _weighted(f: torch.Tensor, mask: Optional[torch.Tensor], nhwc: bool):
    """``(F·diag(w), s)``: the mask-weighted features and the positions' total weight."""
    n = f.shape[1] if nhwc else f.shape[2]
    if mask is None:
        return f, float(n)
    m = mask.reshape(-1, n, 1) if nhwc else mask.reshape(-1, 1, n)
    # The mask's sum is a constant of the image, so it is fine outside any graph.
    return f * m.to(f.dtype), m.float().sum((1, 2), keepdim=True).clamp_min(EPS)


class _Gram(torch.autograd.Function):
    """``G = F·diag(w)·Fᵀ / s`` with a one-matmul backward, ``dF = (dG + dGᵀ)·F·diag(w) / s``
    (autograd's generic matmul backward would do two)."""

    @staticmethod
    def forward(ctx, f, fw, s, nhwc):
        ctx.save_for_backward(fw)
        ctx.s, ctx.nhwc = s, nhwc
        return _gram_mm(f, fw, nhwc) / s

    @staticmethod
    def backward(ctx, grad):
        (fw,) = ctx.saved_tensors
        sym = (grad + grad.transpose(1, 2)) / ctx.s      # scale the small C×C matrix, not C×N
        return (torch.bmm(fw, sym) if ctx.nhwc else torch.bmm(sym, fw)), None, None, None


def gram(features: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gram matrix ``[B, C, C]`` (fp32) of ``[B, C, H, W]`` features, averaged over (mask-weighted) positions.

    ``mask`` is ``[H, W]`` or ``[B, 1, H, W]`` in 0..1; positions are weighted by it. Either memory
    format works without a copy; reduced-precision features are taken to fp32 first (this path
    keeps the autograd graph and is used for small maps; see :class:`GramGradient` for the rest).
    """
    f, nhwc = as_matrix(features)
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    # F·diag(w) is a constant for the backward (which gives f its whole gradient): keep it out of the graph.
    fw, s = _weighted(f.detach(), mask, nhwc)
    return _Gram.apply(f, fw, s, nhwc)


def _sum_sq(t: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """``Σ t²`` in fp32 without an fp32 copy of a reduced-precision ``t``: chunks of about ``chunk``
    elements are cast one at a time (the whole copy came at the peak of the iteration: 24 MB at 1024 px)."""
    if t.dtype in (torch.float32, torch.float64) or t.numel() <= chunk:
        return torch.linalg.vector_norm(t, dtype=torch.float32).pow(2)
    m, _ = as_matrix(t)                      # a view in either memory format
    step = max(1, chunk // max(1, m.shape[2]))
    return sum(torch.linalg.vector_norm(m[:, i:i + step], dtype=torch.float32).pow(2)
               for i in range(0, m.shape[1], step))


class FusedGradient:
    """Adds loss terms' gradients to a feature map's gradient inside the backward pass, fused.

    For a feature map that deeper layers also consume, autograd would compute ``dF`` of each
    loss term as a new tensor and add it to the gradient from above (two or three full-size
    passes each, and slow ones when the two gradients differ in layout or precision). Here the
    terms are evaluated outside the graph and one hook on the features adds their gradients to
    the incoming one in place, in the features' own memory format and precision:

    - Gram terms (:meth:`gram`): the loss is evaluated on a detached Gram, ``dL/dG`` (C×C) is
      taken by autograd on that small graph, and the hook adds ``(dG + dGᵀ)·F·diag(w) / s`` with
      one ``baddbmm`` (bf16 features: bf16 products with fp32 accumulation; Grams are fp32);
    - content terms (:meth:`content`): ``c·mean(m·(F - T)²)`` has the gradient ``2c·m·(F - T)/n``;
      the difference is kept from the forward and added with one ``addcmul_``.

    The deepest tapped layer cannot use this: the graph must reach it for the hook to fire.
    """

    def __init__(self, features: torch.Tensor):
        self.features = features
        self.parts = []    # (leaf Gram, F·diag(w) as a matrix, s)
        self.direct = []   # (F - T, scale): content terms' gradients are scale·(F - T)

    def gram(self, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The (mask-weighted) Gram of the features as an fp32 leaf that requires grad."""
        f, nhwc = as_matrix(self.features.detach())
        fw, s = _weighted(f, mask, nhwc)
        g = (_gram_mm(f, fw, nhwc).float() / s).requires_grad_(True)
        self.parts.append((g, fw, s))
        return g

    def content(self, target: torch.Tensor, weight: float, mask: Optional[torch.Tensor] = None,
                norm: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:func:`content_loss` of the features (a detached fp32 scalar); ``weight`` is the factor
        the caller will multiply it by, so that the gradient added in the backward is the weighted one."""
        f = self.features.detach()
        if norm is None:
            norm = target.float().pow(2).mean()
        d = f - target.to(f.dtype)
        denom = (norm.float() + EPS) * d.numel()
        if mask is None:
            loss = _sum_sq(d) / denom
            scale = 2.0 * weight / denom                        # a 0-dim tensor: no host sync
        else:
            m = mask.reshape(1, 1, *f.shape[-2:]).to(torch.float32)
            denom = denom * m.mean().clamp_min(EPS)   # normalised by the region, as content_loss
            loss = (d.float().pow(2) * m).sum() / denom
            scale = m * (2.0 * weight / denom)        # [1, 1, H, W]
        self.direct.append((d, scale if scale.dim() == 0 else scale.to(f.dtype)))
        return loss

    def attach(self, loss: Optional[torch.Tensor] = None) -> None:
        """Route the gradients of the content terms, and of ``loss`` (a function of the Grams from
        :meth:`gram`), into the backward pass."""
        parts = []
        if self.parts and loss is not None:
            grams = [g for g, _, _ in self.parts]
            dgs = torch.autograd.grad(loss, grams, allow_unused=True)
            parts = [(((dg + dg.transpose(1, 2)) / s).to(fw.dtype), fw)
                     for dg, (_, fw, s) in zip(dgs, self.parts) if dg is not None]
        direct, self.parts, self.direct = self.direct, [], []
        if (not parts and not direct) or not self.features.requires_grad:
            return
        feats = self.features
        dtype = feats.dtype
        nhwc = as_matrix(feats)[1]
        fmt = torch.channels_last if nhwc else torch.contiguous_format

        def hook(grad: torch.Tensor) -> torch.Tensor:
            # The gradient here is the engine's own buffer (a convolution's backward output, or
            # the sum of several); adding in place saves a full-size allocation and copy. Anything
            # unusual (another layout or dtype, an expanded or shared view) gets a fresh copy.
            own = (grad.dtype == dtype and grad.is_contiguous(memory_format=fmt) and grad._base is None
                   and as_matrix(grad)[1] == nhwc)
            out = grad if own else grad.to(dtype).contiguous(memory_format=fmt).clone(memory_format=fmt)
            g, _ = as_matrix(out)
            for sym, fw in parts:
                g.baddbmm_(*((fw, sym) if nhwc else (sym, fw)))
            for d, scale in direct:
                out.addcmul_(d, scale)
            parts.clear()   # the graph (and so this hook) may outlive the backward: drop the features
            direct.clear()
            return out if own else out.to(grad.dtype)
        feats.register_hook(hook)


def relative_mse(x: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                 norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean(weight·(x - target)²) / mean(target²)`` (the normaliser may be given precomputed)."""
    if norm is None:
        norm = target.float().pow(2).mean()
    if weight is None:   # fused: one temporary fewer than (x - t)² then mean
        return F.mse_loss(x.float(), target.float()) / (norm + EPS)
    return ((x.float() - target.float()).pow(2) * weight).mean() / (norm + EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor, mask: Optional[torch.Tensor] = None,
                 norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Relative MSE between feature maps; ``mask`` ([H, W], 0..1) restricts it to a region;
    ``norm`` is ``mean(target²)`` when the caller keeps it (a constant of the target)."""
    if mask is None:
        return relative_mse(features, target, norm=norm)
    m = mask.reshape(1, 1, *features.shape[-2:]).to(features)
    # Normalise by the masked region so a small region is not down-weighted by its size.
    frac = m.mean().clamp_min(EPS)
    return relative_mse(features, target, weight=m, norm=norm) / frac


def style_loss(features: torch.Tensor, target_gram: torch.Tensor, mask: Optional[torch.Tensor] = None,
               norm: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Relative MSE between the Gram of ``features`` (mask-weighted) and a target Gram."""
    return relative_mse(gram(features, mask), target_gram, norm=norm)


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

"""Photorealistic style transfer: a photo in the look of another photo, without painterly distortion.

After Luan, Paris, Shechtman & Bala, "Deep Photo Style Transfer" (CVPR 2017), whose regulariser is
the matting Laplacian of Levin, Lischinski & Weiss (2008): in every 3×3 window of the content photo,
each colour channel of the output should be an affine function of the photo's colours. Edges,
textures and shapes then stay the photo's; only the colour mapping may change from place to place.

Pieces (``LossWeights.photoreal > 0`` switches the term on; the objective calls
:func:`laplacian_term` once per scale):

- :func:`matting_laplacian`: the matting Laplacian ``M`` of the content at one scale, ε = 1e-7 as
  in Luan et al. for 0..1 images (it keeps ``M``'s null space close to the locally affine images).
- :func:`laplacian_term`: ``Σ_c V_c[O]ᵀ·M·V_c[O] / (H·W)`` over the output's colour channels, with
  the analytic gradient ``2·M·V_c / (H·W)``. Divided by the pixel count it is a mean per pixel of
  the windows' affine-fit residuals, so a weight does not grow or shrink with the pixel count.
- :func:`smooth`: a final guided filter (He, Sun & Tang 2010) of the output, guided by the content
  photo: removes what is left of the painterly texture, keeping the photo's edges.
- :func:`photorealistic_settings`: what ``--photorealistic`` sets (the CLI flags given explicitly
  still win): the regulariser, a stronger content weight, shallow style layers (relu1_1..relu3_1,
  relu4_1 light: no large-scale patterns that would move objects), init from the content, colour
  mode none (the style photo's colours are the point), and the final smoothing.

``M`` only couples pixels less than 3 px apart (3×3 windows), so it is stored by its 25 diagonals
(the DIA sparse format, ``[25, H, W]``): the same non-zeros as COO/CSR without index arrays or a
sort to coalesce (25 MB instead of ~77 MB as CSR at 512×512 px), and ``M·v`` is 25 shifted
multiply-adds of dense tensors, which every device runs (torch's sparse support differs between
devices). :meth:`Laplacian.to_sparse` gives the COO matrix. The build runs in float64 (on the CPU for
MPS, which has none) because near-flat windows make ``Σ + ε/9·U`` nearly singular.

The weight 1e4 was chosen by eye at 256 px (bench/photoreal.py): 1e3 leaves speckle and streaks,
1e5 holds the style back (its style loss 1.6× that at 1e4); at 1e4 the colours move about as far
toward the style photo as plain Gatys moves them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .spec import option

EPS = 1e-7            # Luan et al.'s ε, for 0..1 images
WINDOW = 3            # window side (radius 1), as Levin et al. and Luan et al.
REACH = WINDOW - 1    # farthest offset that two pixels of one window can have
OFFSETS = [(dy, dx) for dy in range(-REACH, REACH + 1) for dx in range(-REACH, REACH + 1)]
CHUNK_WINDOWS = 1 << 17   # windows per build chunk: bounds the build's transient memory (~100 MB)


class PhotorealError(ValueError):
    """Inputs the photorealism pieces cannot use; the message says what to do."""


@dataclass
class Smoothing:
    """The final guided filter (:func:`smooth`)."""
    radius: int = option(0, "Final edge-preserving smoothing (a guided filter with the content photo as guide): "
                            "the window radius in px; 0: off.", low=0, high=64, flag="--smooth-radius")
    eps: float = option(1e-4, "Which edges of the photo the smoothing keeps: variations below about √eps (in 0..1 "
                              "units) are smoothed away.", low=1e-6, high=1.0, step=1e-5, cli=False)


@dataclass(frozen=True)
class PhotorealSettings:
    """What ``--photorealistic`` sets (see the module docstring)."""
    photoreal: float = 1e4          # LossWeights.photoreal
    content: float = 10.0           # LossWeights.content (the default too)
    style_layers: Dict[str, float] = field(default_factory=lambda: {
        "relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 0.2})
    init: str = "content"
    color: str = "none"
    smooth_radius: int = 2          # guided filter radius in px at the output size (0: no smoothing)
    smooth_eps: float = 1e-4        # guided filter ε for 0..1 images ((0.01)²: edges stronger than 1% stay)


def photorealistic_settings() -> PhotorealSettings:
    """The photorealistic mode's settings."""
    return PhotorealSettings()


def cli_defaults(settings: Optional[PhotorealSettings] = None) -> Dict[str, object]:
    """The settings under the CLI's argument names (argparse ``dest``s), for ``set_defaults``."""
    s = settings or photorealistic_settings()
    return {"photoreal_weight": s.photoreal, "content_weight": s.content,
            "style_layers": ",".join(f"{n}:{w:g}" for n, w in s.style_layers.items()),
            "init": s.init, "color": s.color, "smooth_radius": s.smooth_radius}


# ---------------------------------------------------------------------------------------------
# The matting Laplacian

@dataclass
class Laplacian:
    """The matting Laplacian of an ``H×W`` image by its diagonals: ``bands[o, y, x]`` is the entry
    of pixel ``(y, x)``'s row and pixel ``(y + dy, x + dx)``'s column, ``(dy, dx) = OFFSETS[o]``
    (zero where that pixel is outside the image)."""
    bands: torch.Tensor     # [25, H, W]

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.bands.shape[-2:])

    def nnz(self) -> int:
        return int((self.bands != 0).sum())

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``M·v`` for each channel of ``v`` (``[C, H, W]``)."""
        h, w = self.shape
        padded = F.pad(v, (REACH, REACH, REACH, REACH))
        out = torch.zeros_like(v)
        for o, (dy, dx) in enumerate(OFFSETS):
            out.addcmul_(self.bands[o], padded[:, REACH + dy:REACH + dy + h, REACH + dx:REACH + dx + w])
        return out

    def to_sparse(self) -> torch.Tensor:
        """The ``(H·W)×(H·W)`` matrix as a coalesced sparse COO tensor (rows and columns in raster order)."""
        h, w = self.shape
        dev = self.bands.device
        ys, xs = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
        rows, cols, vals = [], [], []
        for o, (dy, dx) in enumerate(OFFSETS):
            inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w) & (self.bands[o] != 0)
            rows.append((ys * w + xs)[inside])
            cols.append(((ys + dy) * w + xs + dx)[inside])
            vals.append(self.bands[o][inside])
        index = torch.stack([torch.cat(rows), torch.cat(cols)])
        return torch.sparse_coo_tensor(index, torch.cat(vals), (h * w, h * w), check_invariants=True).coalesce()


def _build_device(device: torch.device) -> torch.device:
    """Where the build runs in float64: the image's device, or the CPU where float64 is missing (MPS)."""
    return torch.device("cpu") if device.type == "mps" else device


def _inverse3(m: torch.Tensor) -> torch.Tensor:
    """Inverse of symmetric positive definite ``[3, 3, ...]`` matrices by their adjugate (any device)."""
    a, b, c = m[0, 0], m[0, 1], m[0, 2]
    d, e, f = m[1, 1], m[1, 2], m[2, 2]
    cof = torch.stack([torch.stack([d * f - e * e, c * e - b * f, b * e - c * d]),
                       torch.stack([c * e - b * f, a * f - c * c, b * c - a * e]),
                       torch.stack([b * e - c * d, b * c - a * e, a * d - b * b])])
    det = a * cof[0, 0] + b * cof[0, 1] + c * cof[0, 2]
    return cof / det


def _add_windows(bands: torch.Tensor, image: torch.Tensor, r0: int, r1: int, eps: float) -> None:
    """Add the contributions of the windows whose top rows are ``r0 .. r1 - 1`` to ``bands``.

    Window ``k`` (mean ``μ``, covariance ``Σ``, ``n = 9`` pixels) adds, for each pair ``i, j`` of its
    pixels, ``δ_ij − (1 + (I_i − μ)ᵀ (Σ + ε/n·U)⁻¹ (I_j − μ)) / n`` (Levin et al., eq. 12)."""
    n = WINDOW * WINDOW
    wk = image.shape[-1] - REACH
    pix = [(py, px) for py in range(WINDOW) for px in range(WINDOW)]
    # The window's 9 pixels, centred on its mean: [9, 3, rows, wk].
    d = torch.stack([image[:, r0 + py:r1 + py, px:px + wk] for py, px in pix])
    d = d - d.mean(0)
    cov = torch.einsum("pahw,pbhw->abhw", d, d) / n
    cov = cov + (eps / n) * torch.eye(3, dtype=d.dtype, device=d.device)[:, :, None, None]
    ad = torch.einsum("abhw,qbhw->qahw", _inverse3(cov), d)
    del cov
    # Pairs with q after p (and p itself) only: they fill the diagonals of M's upper triangle,
    # :func:`_mirror` the rest (M is symmetric).
    for p, (py, px) in enumerate(pix):
        for q, (qy, qx) in enumerate(pix[p:], start=p):
            g = (1.0 + (d[p] * ad[q]).sum(0)) / n
            value = (1.0 if p == q else 0.0) - g
            o = (qy - py + REACH) * (2 * REACH + 1) + (qx - px + REACH)
            bands[o, r0 + py:r1 + py, px:px + wk] += value


def _mirror(bands: torch.Tensor) -> None:
    """Fill the diagonals below M's main one from those above: ``M[j, i] = M[i, j]``."""
    h, w = bands.shape[-2:]
    centre = len(OFFSETS) // 2
    for o in range(centre + 1, len(OFFSETS)):
        dy, dx = OFFSETS[o]
        dst = bands[len(OFFSETS) - 1 - o]
        dst[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            bands[o, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]


def matting_laplacian(image: torch.Tensor, eps: float = EPS) -> Laplacian:
    """The matting Laplacian (3×3 windows) of an RGB 0..1 image ``[1, 3, H, W]`` or ``[3, H, W]``.

    Symmetric, positive semi-definite, rows summing to zero; built in float64 by chunks of window
    rows (vectorised over the windows of a chunk), stored in float32 on the image's device."""
    img = image[0] if image.dim() == 4 else image
    if img.dim() != 3 or img.shape[0] != 3:
        raise PhotorealError(f"the matting Laplacian needs an RGB image [1, 3, H, W], got {tuple(image.shape)}")
    h, w = img.shape[-2:]
    if h < WINDOW or w < WINDOW:
        raise PhotorealError(f"the image is {w}×{h} px; the matting Laplacian needs at least {WINDOW}×{WINDOW}")
    if not eps > 0:
        raise PhotorealError(f"eps must be > 0 (got {eps}); Luan et al. use 1e-7")
    dev = _build_device(img.device)
    x = img.detach().to(device=dev, dtype=torch.float64)
    bands = torch.zeros((len(OFFSETS), h, w), dtype=torch.float64, device=dev)
    step = max(1, CHUNK_WINDOWS // (w - REACH))
    for r0 in range(0, h - REACH, step):
        _add_windows(bands, x, r0, min(h - REACH, r0 + step), eps)
    _mirror(bands)
    return Laplacian(bands.to(device=img.device, dtype=torch.float32))


# ---------------------------------------------------------------------------------------------
# The loss term

class _Quadratic(torch.autograd.Function):
    """``Σ_c v_cᵀ·M·v_c / N`` of ``x`` (``[1, C, H, W]``) with the gradient ``2·M·v_c / N`` (``M`` symmetric)."""

    @staticmethod
    def forward(ctx, x, bands):
        v = x[0].float()
        mv = Laplacian(bands).matvec(v)
        ctx.save_for_backward(mv)
        ctx.dtype = x.dtype
        return (v * mv).sum() / (v.shape[-2] * v.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        (mv,) = ctx.saved_tensors
        scale = 2.0 * grad / (mv.shape[-2] * mv.shape[-1])
        return (scale * mv).unsqueeze(0).to(ctx.dtype), None


class LaplacianTerm:
    """``term(x)``: the photorealism loss of an output ``x`` (``[1, 3, H, W]``) given the content's Laplacian."""

    def __init__(self, laplacian: Laplacian):
        self.laplacian = laplacian

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.laplacian.shape or x.dim() != 4 or x.shape[0] != 1:
            raise PhotorealError(f"the image is {tuple(x.shape)} but the Laplacian was built for "
                                 f"{self.laplacian.shape}; build it from the content at this scale")
        return _Quadratic.apply(x, self.laplacian.bands)


def laplacian_term(content: torch.Tensor, eps: float = EPS) -> LaplacianTerm:
    """The photorealism term for outputs of ``content``'s size (built once per scale)."""
    return LaplacianTerm(matting_laplacian(content, eps))


# ---------------------------------------------------------------------------------------------
# The final smoothing: a guided filter

def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)² window around each pixel, clipped at the borders (separable)."""
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)
    return F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)


def smooth(output: torch.Tensor, guide: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Guided filter (He et al. 2010) of ``output`` (``[B, 3, H, W]``, 0..1) with the colour ``guide``.

    Each output channel is replaced by the best local affine function of the guide's colours over
    (2r+1)² windows, averaged over the windows covering a pixel: the guide's edges stay sharp, and
    texture the guide does not have is smoothed away. ``eps`` (for 0..1 images) sets which guide
    edges count: variations below about √eps are smoothed. The guide is resized to the output's
    size if it differs; ``radius`` 0 returns the output unchanged."""
    if radius < 0 or not eps > 0:
        raise PhotorealError(f"smoothing needs radius >= 0 and eps > 0 (got radius {radius}, eps {eps})")
    if radius == 0:
        return output
    if output.dim() != 4 or output.shape[1] != 3 or guide.dim() != 4 or guide.shape[1] != 3:
        raise PhotorealError(f"smoothing needs RGB images [B, 3, H, W]; got {tuple(output.shape)} and "
                             f"guide {tuple(guide.shape)}")
    from .image import resize
    p = output.float()
    g = resize(guide.float().to(p.device), tuple(p.shape[-2:]))
    g = g.expand(p.shape[0], -1, -1, -1) if g.shape[0] == 1 else g
    # Centred on the image means: the variances below are then differences of small numbers (fp32).
    g = g - g.mean((2, 3), keepdim=True)
    p_mean = p.mean((2, 3), keepdim=True)
    p = p - p_mean
    mg, mp = _box(g, radius), _box(p, radius)
    gg = torch.stack([_box(g[:, a:a + 1] * g, radius) - mg[:, a:a + 1] * mg for a in range(3)], 1)   # [B,3,3,H,W]
    gp = torch.stack([_box(g[:, a:a + 1] * p, radius) - mg[:, a:a + 1] * mp for a in range(3)], 1)   # [B,3(g),3(p),H,W]
    gg = gg + eps * torch.eye(3, device=p.device)[None, :, :, None, None]
    inv = _inverse3(gg.permute(1, 2, 0, 3, 4)).permute(2, 0, 1, 3, 4)
    a = torch.einsum("bxyhw,byzhw->bxzhw", inv, gp)         # [B, 3 (guide), 3 (output), H, W]
    b = mp - torch.einsum("bxzhw,bxhw->bzhw", a, mg)
    a_mean = _box(a.flatten(1, 2), radius).unflatten(1, (3, 3))
    q = torch.einsum("bxzhw,bxhw->bzhw", a_mean, g) + _box(b, radius)
    return (q + p_mean).clamp(0, 1).to(output.dtype)

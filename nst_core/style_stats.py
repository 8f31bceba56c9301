"""Style statistics: what of a painting's VGG features the output must match.

Every statistic but the sliced one is a function of weighted *moments* of a layer's features over
positions (``f`` = E[f], ``f2`` = E[f²], ``ffT`` = E[f fᵀ]). Moments are sums, so they add up
exactly over tiles, blend across styles by a weighted mean, and their gradient goes back into the
features in one pass (:func:`add_moment_gradient`) instead of autograd through the C×N matrix.

- ``gram`` (Gatys et al. 2016): E[f fᵀ];
- ``mean_std``: per-channel mean and standard deviation (the statistics AdaIN matches);
- ``w2``: the Wasserstein-2 distance between Gaussians with the features' mean and covariance;
- ``sliced_w``: the sliced Wasserstein distance of the feature distributions (Heitz et al. 2021);
- ``gram_deep_ms``: Gram at the shallow layers, mean and std at relu4_1 and deeper.

Deviations, one line each:
- every distance is relative to the size of its target, so each layer counts equally;
- the sliced distance projects on fixed random directions per layer (L-BFGS needs an objective that
  does not change between iterations), as many as the layer has channels;
- blending styles averages moments (a mixture's moments), or quantiles for the sliced distance (the
  1-D Wasserstein barycentre).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .losses import EPS, as_matrix

Moments = Dict[str, torch.Tensor]


class StyleStatError(ValueError):
    """A statistic asked for something its maths does not allow."""


# ---------------------------------------------------------------------------------------------
# Moments of a layer's features and their gradient

def _weighted(m: torch.Tensor, w: Optional[torch.Tensor], nhwc: bool) -> torch.Tensor:
    """The feature matrix with each position scaled by its weight ``w`` ([N])."""
    if w is None:
        return m
    return m * (w.view(-1, 1) if nhwc else w.view(1, -1)).to(m.dtype)


def moment_sums(features: torch.Tensor, weights: Optional[torch.Tensor], names: Sequence[str],
                mass: bool = True) -> Moments:
    """Weighted sums over the positions of ``[1, C, H, W]`` features (detached, fp32): ``mass`` = Σw
    (unless ``mass`` is False), and for each name in ``names`` Σw·f, Σw·f² or Σw·f fᵀ. ``weights`` is
    ``[H·W]`` or None (all 1)."""
    m, nhwc = as_matrix(features.detach())
    m = m[0]                                        # [N, C] (nhwc) or [C, N]
    out = {}
    if mass:
        n = m.shape[0] if nhwc else m.shape[1]
        # A fill, not a tensor made from a host number: no copy to the device.
        out["mass"] = m.new_full((), n, dtype=torch.float32) if weights is None else weights.float().sum()
    mw = _weighted(m, weights, nhwc)
    if "ffT" in names:
        out["ffT"] = (mw.t() @ m if nhwc else mw @ m.t()).float()
    if "f" in names:
        out["f"] = mw.float().sum(0 if nhwc else 1)
    if "f2" in names:
        out["f2"] = (mw.float() * m.float()).sum(0 if nhwc else 1)
    return out


@dataclass
class Symmetric:
    """The gradient ``alpha · t`` with respect to Σw·f fᵀ, ``t`` symmetric: it goes back into the
    features as one product with ``2·alpha`` folded in (no ``t + tᵀ``, no scaling pass)."""
    t: torch.Tensor
    alpha: float


def add_moment_gradient(grad: torch.Tensor, features: torch.Tensor, weights: Optional[torch.Tensor],
                        dsums: Moments) -> None:
    """``grad += ∂L/∂features`` in place, given ``dsums`` = ∂L/∂(each moment sum): one matrix product
    for Σw f fᵀ, one outer product for Σw f, one multiply-add for Σw f² (same layout as the features)."""
    m, nhwc = as_matrix(features.detach())
    g, g_nhwc = as_matrix(grad)
    assert g_nhwc == nhwc, "the gradient must have the features' memory format"
    m, g = m[0], g[0]
    mw = _weighted(m, weights, nhwc)
    dt = g.dtype
    if "ffT" in dsums:
        d = dsums["ffT"]
        sym, alpha = (d.t.to(dt), 2.0 * d.alpha) if isinstance(d, Symmetric) else ((d + d.t()).to(dt), 1.0)
        g.addmm_(mw, sym, alpha=alpha) if nhwc else g.addmm_(sym, mw, alpha=alpha)
    if "f" in dsums:
        w = torch.ones(m.shape[0] if nhwc else m.shape[1], device=m.device, dtype=dt) if weights is None \
            else weights.to(dt)
        g.addr_(w, dsums["f"].to(dt)) if nhwc else g.addr_(dsums["f"].to(dt), w)
    if "f2" in dsums:
        scale = 2 * dsums["f2"].to(dt)
        g.addcmul_(mw, scale.view(1, -1) if nhwc else scale.view(-1, 1))


# ---------------------------------------------------------------------------------------------
# Statistics from moments

class Gram:
    """E[f fᵀ] (Gatys et al.); distance: mean squared difference over mean square of the target."""
    needs, tileable = ("ffT",), True

    def stat(self, e: Moments) -> Dict[str, torch.Tensor]:
        return {"gram": e["ffT"]}

    def prepare(self, target: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return dict(target, norm=target["gram"].pow(2).mean())

    def distance(self, s, t) -> torch.Tensor:
        return (s["gram"] - t["gram"]).pow(2).mean() / (t["norm"] + EPS)

    def view_constants(self, t, mass: float, weight: float) -> "GramView":
        """What one (style, layer) view's term needs at every evaluation, computed once: the target
        scaled by the view's mass, and the factors of the value and the gradient (host numbers)."""
        coef = weight / (t["gram"].numel() * (float(t["norm"]) + EPS) * mass * mass)
        return GramView(t["gram"] * mass, coef)

    def squared_error(self, sums: Moments, view: "GramView", out: torch.Tensor) -> Moments:
        """``out`` (a 0-d slot) = Σ (Σw f fᵀ − mass·T)², the view's term over ``view.coef``; returns
        the gradient per sum. With D = Σw f fᵀ − mass·T, the term is coef·ΣD² and its gradient
        2·coef·D (D symmetric): the value takes a subtraction and a dot product."""
        d = torch.sub(sums["ffT"], view.mass_target)
        flat = d.view(-1)
        torch.dot(flat, flat, out=out)
        return {"ffT": Symmetric(d, 2.0 * view.coef)}


@dataclass
class GramView:
    mass_target: torch.Tensor    # mass · target Gram
    coef: float                  # the view's term = coef · Σ(Σw f fᵀ − mass·T)²


class MeanStd:
    """Per-channel mean and standard deviation."""
    needs, tileable = ("f", "f2"), True

    def stat(self, e: Moments) -> Dict[str, torch.Tensor]:
        var = (e["f2"] - e["f"].pow(2)).clamp_min(0)
        return {"mean": e["f"], "std": (var + EPS).sqrt()}

    def prepare(self, target):
        return dict(target, norm=target["mean"].pow(2).mean() + target["std"].pow(2).mean())

    def distance(self, s, t) -> torch.Tensor:
        d = (s["mean"] - t["mean"]).pow(2).mean() + (s["std"] - t["std"]).pow(2).mean()
        return d / (t["norm"] + EPS)


class W2:
    """The Wasserstein-2 distance between N(μ, Σ) of the output and of the painting:
    ‖μ − μₜ‖² + tr Σ + tr Σₜ − 2 tr (Σₜ^½ Σ Σₜ^½)^½, over ‖μₜ‖² + tr Σₜ."""
    needs, tileable = ("f", "ffT"), True

    def stat(self, e: Moments) -> Dict[str, torch.Tensor]:
        mu = e["f"]
        return {"mean": mu, "cov": e["ffT"] - torch.outer(mu, mu)}

    def prepare(self, target):
        cov = _precise(_symmetric(target["cov"]))
        vals, vecs = torch.linalg.eigh(cov)
        root = (vecs * vals.clamp_min(0).sqrt()) @ vecs.t()
        return dict(target, root=root.float(), trace=cov.trace().float(),
                    norm=target["mean"].pow(2).sum() + cov.trace().float())

    def distance(self, s, t) -> torch.Tensor:
        cov = _symmetric(s["cov"])
        cross = _symmetric(t["root"] @ cov @ t["root"])
        # eigvalsh's gradient is stable for distinct eigenvalues; the clamp keeps sqrt's finite.
        root_trace = torch.linalg.eigvalsh(_precise(cross)).clamp_min(EPS).sqrt().sum().float()
        d = (s["mean"] - t["mean"]).pow(2).sum() + cov.trace() + t["trace"] - 2 * root_trace
        return d.clamp_min(0) / (t["norm"] + EPS)


class DeepMeanStd:
    """Gram at the shallow layers; per-channel mean and standard deviation at ``DEEP_LAYERS``."""
    # Deviation from Gatys: a deep layer's Gram asks for its channels to fire *together*, i.e. for the
    # painting's objects (a face); its channels' mean and spread carry the painting's large-scale texture.
    needs, tileable = ("ffT", "f", "f2"), True
    DEEP_LAYERS = ("relu4_1", "relu4_2", "relu4_3", "relu4_4", "relu5_1", "relu5_2", "relu5_3", "relu5_4")

    def __init__(self):
        self.gram, self.mean_std = Gram(), MeanStd()

    def stat(self, e: Moments) -> Dict[str, torch.Tensor]:
        return e

    def prepare_layer(self, name: str, e: Moments) -> Dict[str, object]:
        sub = self.mean_std if name in self.DEEP_LAYERS else self.gram
        return dict(sub.prepare(sub.stat(e)), stat=sub)

    def prepare(self, e: Moments) -> Dict[str, object]:
        return dict(self.gram.prepare(self.gram.stat(e)), stat=self.gram)

    def distance(self, s, t) -> torch.Tensor:
        return t["stat"].distance(t["stat"].stat(s), t)


def _symmetric(a: torch.Tensor) -> torch.Tensor:
    return (a + a.t()) / 2


def _precise(a: torch.Tensor) -> torch.Tensor:
    """float64 for the eigen-solvers, except on MPS, which has no float64."""
    return a if a.device.type == "mps" else a.double()


# ---------------------------------------------------------------------------------------------
# Sliced Wasserstein: sorted projections, not moments

class SlicedW:
    """Mean squared difference of the sorted projections of output and painting features on fixed
    random directions (the painting's quantiles resampled to the output's number of positions)."""
    needs, tileable = (), False

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._dirs: Dict[Tuple[int, str], torch.Tensor] = {}

    def directions(self, channels: int, device) -> torch.Tensor:
        key = (channels, str(device))
        if key not in self._dirs:
            g = torch.Generator().manual_seed(self.seed + channels)
            d = torch.randn(channels, channels, generator=g)
            self._dirs[key] = (d / d.norm(dim=0, keepdim=True)).to(device)
        return self._dirs[key]

    def projections(self, features: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``[N', K]`` projections of the positions (those with mask > 0.5 where a mask is given)."""
        m, nhwc = as_matrix(features.detach())
        m = m[0] if nhwc else m[0].t()                      # [N, C]
        if mask is not None:
            m = m[mask.reshape(-1) > 0.5]
        return m.float() @ self.directions(m.shape[1], m.device)

    @staticmethod
    def blend(quantiles: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
        q = max(t.shape[1] for t in quantiles)
        total = sum(weights)
        return sum(w / total * _resample(t, q) for t, w in zip(quantiles, weights))

    def loss_and_gradient(self, features: torch.Tensor, mask: Optional[torch.Tensor], target: torch.Tensor):
        """The distance and its gradient with respect to ``features`` (same shape and layout)."""
        m, nhwc = as_matrix(features.detach())
        flat = m[0] if nhwc else m[0].t()                   # [N, C]
        keep = None if mask is None else (mask.reshape(-1) > 0.5)
        sel = flat if keep is None else flat[keep]
        dirs = self.directions(flat.shape[1], flat.device)
        p = sel.float() @ dirs                              # [N', K]
        if p.shape[0] == 0:
            return p.new_zeros(()), None
        sorted_p, order = p.sort(0)
        t = _resample(target, p.shape[0]).t()               # [N', K]
        norm = target.pow(2).mean() + EPS
        diff = sorted_p - t
        loss = diff.pow(2).mean() / norm
        dp = torch.empty_like(p).scatter_(0, order, diff * (2.0 / (diff.numel() * norm)))
        d_sel = dp @ dirs.t()
        grad = torch.zeros_like(flat, dtype=torch.float32)
        if keep is None:
            grad = d_sel
        else:
            grad[keep] = d_sel
        out = torch.zeros_like(features)
        o, _ = as_matrix(out)
        (o[0] if nhwc else o[0].t()).copy_(grad)
        return loss, out


def _resample(quantiles: torch.Tensor, n: int) -> torch.Tensor:
    """``[K, Q]`` sorted values → ``[K, n]`` at the same quantile levels (linear interpolation)."""
    if quantiles.shape[1] == n:
        return quantiles
    return F.interpolate(quantiles[None], size=n, mode="linear", align_corners=True)[0]


STATISTICS = {"gram": Gram, "mean_std": MeanStd, "w2": W2, "sliced_w": SlicedW, "gram_deep_ms": DeepMeanStd}


def statistic(name: str):
    """The statistic called ``name`` (one of :data:`STATISTICS`)."""
    if name not in STATISTICS:
        raise StyleStatError(f"unknown style loss {name!r}; use one of {', '.join(STATISTICS)}")
    return STATISTICS[name]()


def expectations(sums: Moments) -> Moments:
    """Moment sums → expectations (divided by the total weight)."""
    mass = sums["mass"].clamp_min(EPS)
    return {k: v / mass for k, v in sums.items() if k != "mass"}

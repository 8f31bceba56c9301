"""A small L-BFGS for one tensor, written to stay off the host: no ``.item()`` in the loop.

Deviations from ``torch.optim.LBFGS`` (one line each):
- one gradient evaluation per iteration and a fixed step of 1 (no line search), as in neural-style;
- curvature pairs with ``sᵀy <= 0`` are neutralised with ``torch.where`` instead of a host-side test;
- the first step is scaled so the mean pixel change is one 8-bit grey level.
- the initial inverse Hessian is ``γ·P`` with ``P`` a 1/frequency spectral filter (capped at 64×),
  not ``γ·I``: early steps move low frequencies (layout, colour areas) as fast as pixel noise;
- the iterate is projected back into the box [lo, hi] after every step; ``s`` is the step actually
  taken, so the secant pairs stay consistent with the projection.
"""
from __future__ import annotations

from typing import List

import math

import torch


class LBFGS:
    def __init__(self, x: torch.Tensor, history_size: int = 20, lo: float = 0.0, hi: float = 1.0,
                 first_step: float = 1.0 / 255.0, precondition=None):
        self.x = x
        self.P = precondition or (lambda v: v)
        self.m = max(1, int(history_size))
        self.lo, self.hi = lo, hi
        self.first_step = first_step
        self.s: List[torch.Tensor] = []
        self.y: List[torch.Tensor] = []
        self.rho: List[torch.Tensor] = []
        self.prev_x = None
        self.prev_g = None

    def step(self, grad: torch.Tensor) -> None:
        """Update ``self.x`` in place, given the gradient at the current ``self.x``."""
        x = self.x.detach()
        g = grad.detach().flatten().float()
        if self.prev_g is not None:
            s = (x.flatten().float() - self.prev_x)
            y = g - self.prev_g
            ys = torch.dot(y, s)
            ok = ys > 1e-10 * torch.dot(y, y).clamp_min(1e-30)
            rho = torch.where(ok, 1.0 / ys.clamp_min(1e-30), torch.zeros_like(ys))
            if len(self.s) == self.m:
                self.s.pop(0), self.y.pop(0), self.rho.pop(0)
            self.s.append(s), self.y.append(y), self.rho.append(rho)
            # Initial Hessian scale from the newest pair (kept from the last good one otherwise).
            gamma_new = ys / torch.dot(y, self.P(y)).clamp_min(1e-30)
            self.gamma = torch.where(ok, gamma_new, getattr(self, "gamma", gamma_new.new_ones(())))
        q = -g
        if not self.s:
            d = self.P(q)
            d = d * (self.first_step / d.abs().mean().clamp_min(1e-30))
        else:
            alphas = []
            for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
                a = rho * torch.dot(s, q)
                q.addcmul_(y, a, value=-1.0)   # q -= a·y in one pass, no temporaries
                alphas.append(a)
            d = self.P(q).mul_(self.gamma)
            for (s, y, rho), a in zip(zip(self.s, self.y, self.rho), reversed(alphas)):
                b = rho * torch.dot(y, d)
                d.addcmul_(s, a - b)
        self.prev_x = x.flatten().float().clone()
        self.prev_g = g
        with torch.no_grad():
            self.x.add_(d.view_as(self.x).to(self.x.dtype)).clamp_(self.lo, self.hi)

    def reset(self) -> None:
        self.s.clear(), self.y.clear(), self.rho.clear()
        self.prev_x = self.prev_g = None


def spectral_preconditioner(shape, cap: float = 64.0):
    """``v ↦ F⁻¹(p·F v)`` over the last two dims, ``p(f) = min(cap, f_max / f)``: symmetric, positive."""
    h, w = shape[-2:]
    fy = torch.fft.fftfreq(h).abs().view(-1, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    f = (fy ** 2 + fx ** 2).sqrt()
    p = (math.sqrt(0.5) / f.clamp_min(1e-9)).clamp(max=cap)
    cache = {}

    def apply(v: torch.Tensor) -> torch.Tensor:
        key = (v.device, v.dtype)
        if key not in cache:
            cache[key] = p.to(v.device)
        x = v.view(shape).float()
        return torch.fft.irfft2(torch.fft.rfft2(x) * cache[key], s=(h, w)).reshape(-1).to(v.dtype)
    return apply
